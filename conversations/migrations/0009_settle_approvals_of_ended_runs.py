"""Approvals left pending by runs that ended stopped or failed before their end settled
them (services.run_finish): rejected, as such an end rejects them now."""

from django.db import migrations
from django.db.models import OuterRef, Subquery

# As services.SETTLED_BECAUSE words them, by the run's end.
SETTLED_BECAUSE = {"cancelled": "The run was stopped.", "failed": "The run failed."}


def settle(apps, schema_editor):
    Approval = apps.get_model("conversations", "Approval")
    Run = apps.get_model("conversations", "Run")
    ended_at = Subquery(Run.objects.filter(pk=OuterRef("run_id")).values("finished_at")[:1])
    for status, reason in SETTLED_BECAUSE.items():
        Approval.objects.filter(status="pending", run__status=status).update(
            status="rejected", comment=reason, decided_at=ended_at
        )


class Migration(migrations.Migration):
    dependencies = [("conversations", "0008_replies_usage_summaries")]
    operations = [migrations.RunPython(settle, migrations.RunPython.noop)]
