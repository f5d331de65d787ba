"""A read-only view over LangGraph's checkpoint table, for the admin (agent.Checkpoint)."""

from django.db import migrations, models

UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

# A conversation's thread id, and the run id in the metadata, are UUIDs with dashes;
# Django stores UUIDs as uuid on PostgreSQL and as 32 hex digits on SQLite.
POSTGRES_VIEW = f"""
CREATE OR REPLACE VIEW agent_checkpoint AS
SELECT thread_id || '/' || checkpoint_ns || '/' || checkpoint_id AS id,
       thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
       CASE WHEN thread_id ~ '{UUID_PATTERN}' THEN thread_id::uuid END AS conversation_id,
       CASE WHEN metadata->>'chat_run_id' ~ '{UUID_PATTERN}' THEN (metadata->>'chat_run_id')::uuid END AS run_id,
       metadata->>'source' AS source,
       (metadata->>'step')::integer AS step
FROM checkpoints
"""

SQLITE_VIEW = """
CREATE VIEW IF NOT EXISTS agent_checkpoint AS
SELECT thread_id || '/' || checkpoint_ns || '/' || checkpoint_id AS id,
       thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
       CASE WHEN length(thread_id) = 36 THEN replace(thread_id, '-', '') END AS conversation_id,
       CASE WHEN length(json_extract(CAST(metadata AS TEXT), '$.chat_run_id')) = 36
            THEN replace(json_extract(CAST(metadata AS TEXT), '$.chat_run_id'), '-', '') END AS run_id,
       json_extract(CAST(metadata AS TEXT), '$.source') AS source,
       json_extract(CAST(metadata AS TEXT), '$.step') AS step
FROM checkpoints
"""


def create_view(apps, schema_editor):
    sql = POSTGRES_VIEW if schema_editor.connection.vendor == "postgresql" else SQLITE_VIEW
    schema_editor.execute(sql)


def drop_view(apps, schema_editor):
    schema_editor.execute("DROP VIEW IF EXISTS agent_checkpoint")


class Migration(migrations.Migration):
    dependencies = [
        ("agent", "0002_task_toolexecution"),
    ]

    operations = [
        migrations.CreateModel(
            name="Checkpoint",
            fields=[
                ("id", models.CharField(max_length=300, primary_key=True, serialize=False)),
                ("thread_id", models.CharField(max_length=100)),
                ("checkpoint_ns", models.CharField(blank=True, max_length=100)),
                ("checkpoint_id", models.CharField(max_length=100)),
                ("parent_checkpoint_id", models.CharField(max_length=100, null=True)),
                ("source", models.CharField(max_length=20, null=True)),
                ("step", models.IntegerField(null=True)),
            ],
            options={
                "db_table": "agent_checkpoint",
                "ordering": ["-checkpoint_id"],
                "managed": False,
            },
        ),
        migrations.RunPython(create_view, drop_view, elidable=False),
    ]
