"""Creates LangGraph's checkpoint tables at migrate time, in Django's database."""

from django.db import migrations

from agent.checkpointer import create_checkpoint_tables, drop_checkpoint_tables


def forwards(apps, schema_editor):
    create_checkpoint_tables(schema_editor.connection.settings_dict)


def backwards(apps, schema_editor):
    drop_checkpoint_tables(schema_editor.connection)


class Migration(migrations.Migration):
    # setup() creates indexes CONCURRENTLY, which cannot run inside a transaction.
    atomic = False
    dependencies = []
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
