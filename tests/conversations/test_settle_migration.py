"""The migration that settles approvals left pending by runs that ended before their end
settled them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("conversations", "0008_replies_usage_summaries")]
AFTER = [("conversations", "0009_settle_approvals_of_ended_runs")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_pending_approvals_of_ended_runs_are_rejected_with_the_reason():
    apps = migrate(BEFORE)
    try:
        User, Conversation = apps.get_model("auth", "User"), apps.get_model("conversations", "Conversation")
        Run, Approval = apps.get_model("conversations", "Run"), apps.get_model("conversations", "Approval")
        conversation = Conversation.objects.create(user=User.objects.create(username="alice"))
        for status in ("cancelled", "failed", "waiting", "running"):
            run = Run.objects.create(conversation=conversation, status=status)
            Approval.objects.create(id=status, conversation=conversation, run=run, tool="send_email", description="d")
        decided = Approval.objects.create(id="decided", conversation=conversation, run=run, tool="t",
                                          description="d", status="approved")
    finally:
        apps = migrate(AFTER)

    Approval = apps.get_model("conversations", "Approval")
    settled = {a.id: (a.status, a.comment) for a in Approval.objects.all()}
    assert settled == {
        "cancelled": ("rejected", "The run was stopped."),
        "failed": ("rejected", "The run failed."),
        "waiting": ("pending", ""),
        "running": ("pending", ""),
        decided.id: ("approved", ""),
    }
