"""The sidebar at 10,000 conversations: time of GET /api/conversations/ pages and SQL
queries per page, against the same pages at 100 conversations.

One user's conversations are inserted with the ORM (bulk_create; updated_at spread over
a year; each with a user message, an assistant reply and a succeeded run; 1 in 100 has
"needle" in its user message). In this process, with Django configured on a fresh copy
of the migrated database, we time (median of R) and count the queries
(every query of every connection, counted by an execute wrapper) of: the first page, a page deep in the list (its cursor taken at
the middle), and a search. Each through the Django test client (GET
/api/conversations/, the whole request: session, user, view) and through
`selectors.conversations.conversation_list` alone.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/sidebar.py
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import add_backend_flag, choose_backend, describe_backend, header, median, table  # noqa: E402
from tests.live import Templates  # noqa: E402


QUERIES: list[str] = []


def _count(execute, sql, params, many, context):
    QUERIES.append(sql)
    return execute(sql, params, many, context)


def setup_django(db) -> None:
    """Configure Django on `db`; count every query of every thread's connection (the API
    view runs its ORM calls on sync_to_async's thread, not this one)."""
    for key in ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH"):
        os.environ.pop(key, None)
    os.environ.update(db.env)
    os.environ["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    import django

    django.setup()
    from django.db import connections
    from django.db.backends.signals import connection_created

    def hook(connection) -> None:
        if _count not in connection.execute_wrappers:
            connection.execute_wrappers.append(_count)

    connection_created.connect(lambda sender, connection, **kw: hook(connection), weak=False)
    for connection in connections.all():
        hook(connection)


class CountQueries:
    def __enter__(self):
        self.start = len(QUERIES)
        return self

    def __exit__(self, *exc):
        self.captured = QUERIES[self.start:]

    def __len__(self):
        return len(self.captured)


def insert(user, start: int, count: int, rng: random.Random) -> None:
    from django.utils import timezone

    from conversations.models import Conversation, Message, Run

    now = timezone.now()
    conversations = [Conversation(user=user, title=f"Conversation {i}") for i in range(start, start + count)]
    Conversation.objects.bulk_create(conversations, batch_size=1000)
    for conversation in conversations:
        conversation.updated_at = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
    Conversation.objects.bulk_update(conversations, ["updated_at"], batch_size=1000)
    messages, runs = [], []
    for offset, conversation in enumerate(conversations):
        i = start + offset
        text = f"question {i} about {'the needle in a haystack' if i % 100 == 0 else 'something ordinary'}"
        user_message = Message(conversation=conversation, role="user", content=text, html=f"<p>{text}</p>")
        reply = Message(conversation=conversation, role="assistant", content=f'You said: "{text}"', html="")
        messages += [user_message, reply]
        runs.append(Run(conversation=conversation, user_message=user_message, status="succeeded"))
    Message.objects.bulk_create(messages, batch_size=1000)
    Run.objects.bulk_create(runs, batch_size=1000)


def measure(user, repeats: int) -> list[list]:
    from django.test import Client

    from conversations.models import Conversation
    from conversations.selectors.conversations import conversation_list, encode_cursor

    total = Conversation.objects.filter(user=user).count()
    middle = Conversation.objects.filter(user=user).order_by("-updated_at", "-id")[total // 2]
    cursor = encode_cursor(middle)
    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    pages = [("first page", {}), ("a page deep (cursor at the middle)", {"cursor": cursor}), ("search 'needle'", {"q": "needle"})]
    rows = []
    for label, params in pages:
        for how in ("GET /api/conversations/", "conversation_list()"):
            def call():
                if how.startswith("GET"):
                    response = client.get("/api/conversations/", params)
                    assert response.status_code == 200, response.content[:500]
                    return response.json()["results"]
                return conversation_list(user=user, **params).conversations

            call()  # warm
            with CountQueries() as queries:
                page = call()
            times = []
            for _ in range(repeats):
                began = time.perf_counter()
                call()
                times.append(time.perf_counter() - began)
            rows.append({"page": label, "how": how, "ms": median(times) * 1000, "queries": len(queries),
                         "results": len(page), "sql": queries.captured})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000, help="the large count")
    parser.add_argument("--small", type=int, default=100, help="the small count compared against")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per page (median)")
    parser.add_argument("--show-sql", action="store_true")
    add_backend_flag(parser)
    args = parser.parse_args()
    backend = choose_backend(args.backend)
    header("sidebar", {"backend": describe_backend(backend), "conversations": f"{args.small} then {args.conversations}",
                       "page size": 50, "repeats": args.repeats})
    workdir = Path(tempfile.mkdtemp(prefix="bench-sidebar-"))
    templates = Templates(workdir)
    admin_env = {k: os.environ.get(k) for k in ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH")}
    try:
        db = templates.new_database(backend)
        setup_django(db)
        from django.contrib.auth.models import User

        user = User.objects.get(username="alice")
        rng = random.Random(6)
        insert(user, 0, args.small, rng)
        small = measure(user, args.repeats)
        began = time.perf_counter()
        insert(user, args.small, args.conversations - args.small, rng)
        print(f"inserted {args.conversations - args.small} more conversations in {time.perf_counter() - began:.1f} s")
        if backend == "postgres":
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        large = measure(user, args.repeats)
        print()
        rows = []
        for s, l in zip(small, large):
            rows.append([s["page"], s["how"], l["ms"], s["ms"], f"{l['ms'] / s['ms']:.2f}×", l["queries"], s["queries"],
                         "constant" if l["queries"] == s["queries"] else "GROWS", f"{l['results']} / {s['results']}"])
        table(["page", "through", f"ms at {args.conversations:,}", f"ms at {args.small:,}", "time ratio",
               f"queries at {args.conversations:,}", f"queries at {args.small:,}", "queries", "rows returned"], rows)
        print("goal: a constant number of queries per page, whatever the number of conversations")
        if args.show_sql:
            for row in large:
                print(f"-- {row['page']} / {row['how']}")
                for sql in row["sql"]:
                    print("   " + sql[:400])
    finally:
        from django.db import connections

        connections.close_all()
        for key, value in admin_env.items():  # the admin URL drops the copies
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value
        if "postgres" in templates.made:
            templates.drop_all()


if __name__ == "__main__":
    main()
