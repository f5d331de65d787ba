"""CPU per ORM operation of a turn, against the same statement through Django's cursor.
Not a bench: an investigation aid. One process, one
thread, no load, a fresh PostgreSQL (or SQLite) database; each figure is the mean of N
calls after one warm-up call.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/experiments/orm_costs.py [N]
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
from bench.common import choose_backend  # noqa: E402
from tests.live import Templates  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000


def cpu_per_call(fn) -> float:
    fn()
    began = time.process_time()
    for _ in range(N):
        fn()
    return (time.process_time() - began) / N * 1e6


def main() -> None:
    backend = choose_backend(None)
    templates = Templates(Path(tempfile.mkdtemp(prefix="orm-costs-")))
    database = templates.new_database(backend)
    admin_url = os.environ.get("DATABASE_URL")
    os.environ.update(database.env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "chatproject.settings"
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from django.utils import timezone

    from conversations import services
    from conversations.models import Conversation, Message

    user = User.objects.create_user("bench", password="x")
    conversation = services.conversation_create(user=user, title="t")
    fresh = iter([services.conversation_create(user=user, title="t") for _ in range(N + 1)])
    rows = []
    with transaction.atomic():
        cursor = connection.cursor()
        locked = services.LOCKED_WITH_ITS_RUNS.filter(pk=conversation.pk)
        sql, params = locked.query.sql_with_params()

        def locked_by_cursor():
            cursor.execute(sql, params)
            cursor.fetchone()

        rows.append(("the send's locked read", cpu_per_call(lambda: locked.get()), cpu_per_call(locked_by_cursor)))

        def create():
            Message.objects.create(conversation=conversation, role="user", content="hello", html="")

        def insert_by_cursor():
            cursor.execute(
                "INSERT INTO conversations_message (id, conversation_id, role, content, html, tool_calls, tool_call_id,"
                " tool_name, stopped, created_at) VALUES (%s, %s, 'user', 'hello', '', '[]', '', '', false, %s)",
                [Message._meta.pk.get_db_prep_value(Message().pk, connection),
                 Conversation._meta.pk.get_db_prep_value(conversation.pk, connection), timezone.now()],
            )

        rows.append(("Message.objects.create", cpu_per_call(create), cpu_per_call(insert_by_cursor)))

        def update():
            Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())

        def update_by_cursor():
            cursor.execute(
                "UPDATE conversations_conversation SET updated_at = %s WHERE id = %s",
                [timezone.now(), Conversation._meta.pk.get_db_prep_value(conversation.pk, connection)],
            )

        rows.append(("QuerySet.update (one row)", cpu_per_call(update), cpu_per_call(update_by_cursor)))
    send = cpu_per_call(lambda: services.message_send(conversation=next(fresh), content="hello", client_id=None, owner="b"))
    connection.close()
    if admin_url:  # dropped from the server's default database, not from itself
        os.environ["DATABASE_URL"] = admin_url
    templates.drop_all()

    print(f"backend={backend}, {N} calls each, CPU µs per call (time.process_time)")
    print("| operation | ORM | same SQL through Django's cursor |\n|---|---|---|")
    for name, orm, raw in rows:
        print(f"| {name} | {orm:.0f} | {raw:.0f} |")
    print(f"| services.message_send (whole transaction: 6 statements) | {send:.0f} | – |")


if __name__ == "__main__":
    main()
