"""transitions.run_start with the run as this process queued it: trusted only while the row
still matches it."""

import re
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.errors import Conflict
from conversations.models import Conversation, Run
from conversations.runs import transitions
from conversations.services.branches import branch_switch
from conversations.services.conversations import conversation_create
from conversations.services.turns import message_send

pytestmark = pytest.mark.django_db

OWNER = "host:1:abc"


def queued_run() -> Run:
    """A run that was queued behind an earlier run of its conversation, which then ended."""
    user = User.objects.create_user("alice")
    conversation = conversation_create(user=user)
    earlier = message_send(conversation=conversation, content="earlier", client_id=None, owner=OWNER).run
    run = message_send(conversation=conversation, content="hello", client_id=None, owner=OWNER).run
    transitions.run_finish(run_id=earlier.id, status=Run.Status.SUCCEEDED)
    return run


def test_a_send_to_an_idle_conversation_starts_its_run_in_the_same_transaction():
    conversation = conversation_create(user=User.objects.create_user("alice"))
    sent_first = message_send(conversation=conversation, content="one", client_id=None, owner=OWNER)
    sent_second = message_send(conversation=conversation, content="two", client_id=None, owner=OWNER)
    first, second = sent_first.run, sent_second.run
    assert (first.status, first.attempts, sent_first.started is not None, sent_first.started.first_start) == (Run.Status.RUNNING, 1, True, True)
    assert first.started_at is not None and first.user_message.conversation == conversation
    # The first is active: the second waits for its turn, and starts as every queued run does.
    assert (second.status, second.attempts, sent_second.started is not None, second.started_at) == (Run.Status.QUEUED, 0, False, None)
    stored = {run.id: run for run in Run.objects.all()}
    assert (stored[first.id].status, stored[first.id].attempts) == (Run.Status.RUNNING, 1)
    assert stored[first.id].started_at == first.started_at
    assert stored[second.id].status == Run.Status.QUEUED


def test_a_fresh_known_run_starts_without_reading_it_back(django_assert_num_queries):
    run = queued_run()
    with django_assert_num_queries(1):  # the conditional UPDATE
        started = transitions.run_start(run_id=run.id, owner=OWNER, known=run)
    assert started.run is run and started.first_start and started.run.attempts == 1
    assert started.run.user_message.content == "hello"
    stored = Run.objects.get(pk=run.id)
    assert (stored.status, stored.attempts, stored.started_at) == (Run.Status.RUNNING, 1, started.run.started_at)
    assert stored.lease_expires_at == started.run.lease_expires_at


def test_a_stale_known_run_is_read_again():
    run = queued_run()
    transitions.run_start(run_id=run.id, owner=OWNER)  # an attempt this object did not see
    started = transitions.run_start(run_id=run.id, owner=OWNER, known=run)
    assert started.run is not run
    assert started.run.attempts == 2 and not started.first_start
    assert Run.objects.get(pk=run.id).attempts == 2


def test_a_switch_while_a_run_is_active_is_refused_by_the_lock_alone(django_assert_num_queries):
    first = queued_run()
    conversation = Conversation.objects.get(pk=first.conversation_id)
    # The lock with its runs; (inside the test's transaction) the savepoint, its rollback and release.
    with django_assert_num_queries(4), pytest.raises(Conflict):
        branch_switch(conversation=conversation, message_id=str(first.user_message_id))


def test_a_known_run_that_is_not_its_turn_does_not_start():
    first = queued_run()
    conversation = Conversation.objects.get(pk=first.conversation_id)
    second = message_send(conversation=conversation, content="and", client_id=None, owner=OWNER).run
    transitions.run_start(run_id=first.id, owner=OWNER, known=first)
    assert transitions.run_start(run_id=second.id, owner=OWNER, known=second) is None
    assert Run.objects.get(pk=second.id).status == Run.Status.QUEUED
    assert transitions.run_start(run_id=first.id, owner="another:2:def") is None  # not its owner


def test_a_send_locks_and_counts_the_queue_in_one_query(settings, django_assert_num_queries):
    settings.RUN_QUEUE_MAX = 2
    first = queued_run()
    conversation = Conversation.objects.get(pk=first.conversation_id)
    # Lock with the queue's length, the message, the run, the conversation's time, and
    # (inside the test's transaction) a savepoint and its release.
    with django_assert_num_queries(6):
        message_send(conversation=conversation, content="two", client_id=None, owner=OWNER)
    with pytest.raises(Conflict, match="2 messages already wait"):
        message_send(conversation=conversation, content="three", client_id=None, owner=OWNER)
    assert Run.objects.filter(conversation=conversation, status=Run.Status.QUEUED).count() == 2


def test_only_leases_running_out_before_the_round_after_next_are_renewed(settings):
    settings.RUN_LEASE_SECONDS, settings.RUN_RECOVERY_INTERVAL_SECONDS = 10, 1.5
    near, far = queued_run(), run_of_another_user()
    soon, later = timezone.now() + timedelta(seconds=2), timezone.now() + timedelta(seconds=9)
    Run.objects.filter(pk=near.pk).update(lease_expires_at=soon)
    Run.objects.filter(pk=far.pk).update(lease_expires_at=later)
    assert async_to_sync(transitions.arun_renew_leases)(owner=OWNER) == 1
    assert Run.objects.get(pk=near.pk).lease_expires_at > later  # renewed: a full lease from now
    assert Run.objects.get(pk=far.pk).lease_expires_at == later  # not written


def run_of_another_user() -> Run:
    user = User.objects.create_user("bob")
    conversation = conversation_create(user=user)
    return message_send(conversation=conversation, content="hi", client_id=None, owner=OWNER).run


@pytest.mark.postgres
def test_a_send_and_a_start_read_only_the_conversations_active_runs():
    """However many runs a conversation has had, counting its queue on a send and looking
    for an earlier active run on a start go through the index of active runs."""
    if connection.vendor != "postgresql":
        pytest.skip("query plans are PostgreSQL's (set DATABASE_URL)")
    first = queued_run()
    conversation = Conversation.objects.get(pk=first.conversation_id)
    Run.objects.bulk_create(Run(conversation=conversation, status=Run.Status.SUCCEEDED) for _ in range(2000))
    with CaptureQueriesContext(connection) as send:
        run = message_send(conversation=conversation, content="again", client_id=None, owner=OWNER).run
    Run.objects.filter(pk=first.pk).update(status=Run.Status.SUCCEEDED)
    with CaptureQueriesContext(connection) as start:
        assert transitions.run_start(run_id=run.id, owner=OWNER, known=run) is not None
    statements = [*reading_runs(send, "SELECT"), *reading_runs(start, "UPDATE")]
    assert len(statements) == 2  # the send's lock with its queue's length and activity; the start
    for sql in statements:
        plan = explained(sql)
        assert "run_active" in plan, (sql, plan)
        assert max(map(int, re.findall(r"Rows Removed by Filter: (\d+)", plan)), default=0) < 10, (sql, plan)


def reading_runs(captured: CaptureQueriesContext, verb: str) -> list[str]:
    """The statements of this kind that read conversations_run, as run (values inlined)."""
    return [q["sql"] for q in captured.captured_queries if q["sql"].startswith(verb) and '"conversations_run"' in q["sql"]]


def explained(sql: str) -> str:
    """PostgreSQL's plan as run (EXPLAIN ANALYZE), the statement's effects rolled back."""
    with transaction.atomic(), connection.cursor() as cursor:
        sid = transaction.savepoint()
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.savepoint_rollback(sid)
    return plan


def test_claiming_expired_runs_asks_about_each_other_owner_once():
    """Every maintenance round asks whether the owners of other processes' active runs are
    dead (a syscall or three each): once per owner, not once per run."""
    user = User.objects.create_user("alice")
    for owner in ["host:2:aaa", "host:2:aaa", "host:2:aaa", "host:3:bbb"]:
        message_send(conversation=conversation_create(user=user), content="hi", client_id=None, owner=owner)
    asked = []

    def dead_owner(owner):
        asked.append(owner)
        return owner == "host:3:bbb"

    claimed = async_to_sync(transitions.arun_claim_expired)(owner=OWNER, dead_owner=dead_owner)
    assert sorted(asked) == ["host:2:aaa", "host:3:bbb"]
    assert [run.owner for run in claimed] == [OWNER]  # the dead owner's run, not the live one's (leases still run)
