import django.utils.timezone
from django.db import migrations, models
from django.db.models import F, OuterRef, Subquery


def turns_of_existing_messages(apps, schema_editor):
    """A user message's turn is its own time; a reply's, its run's user message's."""
    Message = apps.get_model("conversations", "Message")
    Run = apps.get_model("conversations", "Run")
    Message.objects.update(turn_at=F("created_at"))
    user_message_time = Run.objects.filter(pk=OuterRef("run_id")).values("user_message__created_at")[:1]
    Message.objects.exclude(role="user").filter(run__user_message__isnull=False).update(turn_at=Subquery(user_message_time))


class Migration(migrations.Migration):
    dependencies = [("conversations", "0006_run_active_index")]

    operations = [
        migrations.AddField(
            model_name="message",
            name="turn_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.RunPython(turns_of_existing_messages, migrations.RunPython.noop),
        migrations.AlterModelOptions(name="message", options={"ordering": ["turn_at", "created_at", "id"]}),
        migrations.RemoveIndex(model_name="message", name="message_timeline"),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["conversation", "turn_at", "created_at"], name="message_turns"),
        ),
    ]
