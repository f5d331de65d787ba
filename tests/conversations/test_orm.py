"""conversations.orm: where the ORM calls of async code run (to_async), and statements
compiled once (Compiled)."""

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError, connection, transaction
from django.db.models.sql.compiler import SQLCompiler, SQLUpdateCompiler

from conversations import orm, selectors, services
from conversations.models import Conversation, Message, Run
from conversations.runs.transitions import run_finish

POSTGRES = "django.db.backends.postgresql"
SQLITE = "django.db.backends.sqlite3"


def run_twice_at_once(func) -> list[str]:
    async def both():
        return await asyncio.gather(func(), func())

    return asyncio.run(both())


def test_on_postgresql_calls_run_at_the_same_time(settings, monkeypatch):
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", POSTGRES)  # no query is made
    # Both calls must be inside the function at once to pass the barrier: one thread
    # for all calls would wait here until the timeout.
    barrier = threading.Barrier(2, timeout=10)

    def meet() -> str:
        barrier.wait()
        return threading.current_thread().name

    names = run_twice_at_once(orm.to_async(meet))
    assert len(set(names)) == 2 and all(name.startswith("orm") for name in names)


def test_on_sqlite_one_thread_serves_every_call(settings, monkeypatch):
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", SQLITE)
    names = run_twice_at_once(orm.to_async(lambda: threading.current_thread().name))
    assert names[0] == names[1]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_broken_connection_is_dropped_and_the_next_call_reconnects(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL is not reachable (set DATABASE_URL)")
    monkeypatch.setattr(orm, "_executor", ThreadPoolExecutor(max_workers=1))  # one thread, one connection

    def backend_pid() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    pid = orm.to_async(backend_pid)
    try:
        first = asyncio.run(pid())
        with connection.cursor() as cursor:  # a database restart, as that thread sees it
            cursor.execute("SELECT pg_terminate_backend(%s)", [first])
        with pytest.raises(OperationalError):
            asyncio.run(pid())
        assert asyncio.run(pid()) != first
    finally:
        asyncio.run(orm.to_async(lambda: connection.close())())  # that thread's connection


# conversations.orm.Compiled: the turn's statements built and compiled once.

LONG_AGO = datetime(2000, 1, 1, tzinfo=dt_timezone.utc)


def require_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL is not reachable (set DATABASE_URL)")


@pytest.fixture
def compiles(monkeypatch) -> list[str]:
    """The SELECTs and UPDATEs Django compiles from here on (not its INSERTs)."""
    seen = []
    for compiler in (SQLCompiler, SQLUpdateCompiler):
        original = compiler.as_sql

        def counted(self, *args, _original=original, **kwargs):
            seen.append(type(self).__name__)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(compiler, "as_sql", counted)
    return seen


def titles() -> orm.Compiled:
    return orm.Compiled(
        lambda user_id, since: Conversation.objects.filter(user_id=user_id, updated_at__gte=since)
        .order_by("title").values_list("title", flat=True),
        user_id=-1, since=orm.STAND_IN_TIME,
    )


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_compiled_statement_is_compiled_once_and_runs_with_each_calls_values(compiles):
    require_postgresql()
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    for user, title in [(alice, "b"), (alice, "a"), (bob, "c")]:
        services.conversation_create(user=user, title=title)
    read = titles()
    assert read.rows(user_id=alice.id, since=LONG_AGO) == [("a",), ("b",)]
    compiled = len(compiles)
    assert read.rows(user_id=bob.id, since=LONG_AGO) == [("c",)]
    assert read.rows(user_id=bob.id, since=datetime.now(dt_timezone.utc) + timedelta(days=1)) == []
    assert len(compiles) == compiled == 1

    rename = orm.Compiled(
        lambda user_id, title: (Conversation.objects.filter(user_id=user_id), {"title": title}), user_id=-1, title="\0"
    )
    assert rename.update(user_id=alice.id, title="renamed") == 2
    assert rename.update(user_id=bob.id, title="bob's") == 1
    assert sorted(Conversation.objects.values_list("title", flat=True)) == ["bob's", "renamed", "renamed"]
    assert compiles.count("SQLUpdateCompiler") == 1


@pytest.mark.django_db
def test_a_compiled_statement_refuses_missing_or_unknown_values_and_runs_nothing():
    """A stand-in must never reach the database (a random UUID would match nothing,
    silently); the same call is refused on SQLite, which builds the statement each time."""
    services.conversation_create(user=User.objects.create_user("alice"), title="kept")
    read = titles()
    with pytest.raises(TypeError):
        read.rows(user_id=1)
    with pytest.raises(TypeError):
        read.rows(user_id=1, since=LONG_AGO, title="x")
    rename = orm.Compiled(lambda title: (Conversation.objects.all(), {"title": title}), title="\0")
    with pytest.raises(TypeError):
        rename.update()
    # A build that takes any field (as the run's end does) still gets only the named ones.
    fields = orm.Compiled(lambda **fields: (Conversation.objects.all(), fields), title="\0")
    with pytest.raises(TypeError):
        fields.update(title="x", updated_at=LONG_AGO)
    assert list(Conversation.objects.values_list("title", flat=True)) == ["kept"]


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_compiled_statement_without_a_named_value_is_refused_when_compiled():
    require_postgresql()
    absent = orm.Compiled(lambda title: Conversation.objects.filter(title="x"), title="\0")
    with pytest.raises(ValueError, match="no parameter for"):
        absent.rows(title="y")


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_turns_reads_and_updates_are_not_compiled_again(compiles):
    """The send's locked read, the model's history and the run's end: after a first turn,
    another compiles none of them (only INSERTs), and each does what it did."""
    require_postgresql()
    conversation = services.conversation_create(user=User.objects.create_user("alice"))

    def turn(content: str) -> list:
        accepted = services.message_send(conversation=conversation, content=content, client_id=None, owner="o")
        message, run = accepted.message, accepted.run
        history = selectors.history_rows(
            conversation_id=str(conversation.id), branch_id=None, before_turn_at=message.turn_at + timedelta(seconds=1)
        )
        run_finish(run_id=str(run.id), status=Run.Status.SUCCEEDED, checkpoint_id=f"cp-{content}", run=run, trim=False,
                   model="offline", usage={"input_tokens": 10, "output_tokens": 3, "reasoning_tokens": 0},
                   reply={"conversation_id": conversation.id, "run_id": run.id, "branch_id": None,
                          "turn_at": message.turn_at, "message_id": uuid.uuid4(), "role": Message.Role.ASSISTANT,
                          "content": f"re: {content}", "tool_calls": [{"id": "call_1", "name": "current_time", "args": {}}]})
        return [(row.role, row.content, row.tool_calls) for row in history][::-1]

    turn("first words")
    compiles.clear()
    history = turn("second")
    assert compiles == []
    call = [{"id": "call_1", "name": "current_time", "args": {}}]
    assert history == [("user", "first words", []), ("assistant", "re: first words", call), ("user", "second", [])]
    stored = Conversation.objects.get(pk=conversation.pk)
    assert stored.title == "first words"  # the first message titles it; the next leaves it
    run = Run.objects.get(user_message__content="second")
    assert (run.status, run.error, run.owner, run.lease_expires_at, run.checkpoint_id, run.model) == (
        Run.Status.SUCCEEDED, None, "", None, "cp-second", "offline")
    assert (run.input_tokens, run.output_tokens, run.reasoning_tokens) == (10, 3, 0)
    assert stored.updated_at == run.finished_at
    locked = services.LOCKED_READ
    with pytest.raises(Conversation.DoesNotExist):
        with transaction.atomic():
            locked.get(pk=uuid.uuid4())
