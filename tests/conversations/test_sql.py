"""conversations.sql: the statements of a turn, written out, do what the ORM does, on
either backend."""

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Subquery
from django.db.models.sql.compiler import SQLCompiler, SQLUpdateCompiler
from django.utils import timezone

from conversations import sql
from conversations.models import MESSAGE_ORDER, Conversation, Message, Run
from conversations.runs.transitions import run_finish
from conversations.selectors.messages import HISTORY_FIELDS, history_rows
from conversations.services.conversations import conversation_create
from conversations.services.turns import message_send

pytestmark = pytest.mark.django_db


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


def locked_by_the_orm(pk) -> Conversation:
    runs = Run.objects.filter(conversation=OuterRef("pk"))
    return Conversation.objects.annotate(
        queued_runs=Subquery(
            runs.filter(status=Run.Status.QUEUED).order_by().values("conversation").annotate(n=Count("pk")).values("n")
        ),
        busy=Exists(runs.filter(status__in=Run.ACTIVE)),
        latest_run_status=Subquery(runs.order_by("-created_at").values("status")[:1]),
    ).get(pk=pk)


def a_conversation(title: str = "") -> Conversation:
    return conversation_create(user=User.objects.create_user(f"u-{uuid.uuid4()}"), title=title)


def state(conversation: Conversation) -> tuple:
    return (conversation.pk, conversation.title, conversation.updated_at, conversation.queued_runs or 0,
            bool(conversation.busy), conversation.latest_run_status)


def test_the_locked_read_gives_the_conversation_and_its_runs_state_as_the_orm_does():
    conversation = a_conversation("t")
    with transaction.atomic():
        assert state(sql.conversation_locked(conversation.pk)) == state(locked_by_the_orm(conversation.pk))
        assert sql.conversation_locked(str(conversation.pk)).latest_run_status is None
    first = message_send(conversation=conversation, content="one", client_id=None, owner="o").message
    message_send(conversation=conversation, content="two", client_id=None, owner="o")
    with transaction.atomic():
        locked = sql.conversation_locked(conversation.pk)
        assert state(locked) == state(locked_by_the_orm(conversation.pk))
        assert (locked.queued_runs, bool(locked.busy), locked.latest_run_status) == (1, True, Run.Status.QUEUED)
        assert isinstance(locked, Conversation) and locked.user_id == conversation.user_id
    run_finish(run_id=str(first.run_id), status=Run.Status.SUCCEEDED, checkpoint_id="cp", trim=False, model="m",
               usage={}, reply=None)
    with transaction.atomic():
        assert state(sql.conversation_locked(conversation.pk)) == state(locked_by_the_orm(conversation.pk))
        with pytest.raises(Conversation.DoesNotExist):
            sql.conversation_locked(uuid.uuid4())


def test_the_updates_change_what_the_orm_would_and_count_the_rows():
    untitled, titled = a_conversation(), a_conversation("kept")
    now = timezone.now() + timedelta(minutes=1)
    for conversation in (untitled, titled):
        assert sql.conversation_turn_stored(conversation.pk, now=now, title="first words") == 1
    assert [(c.title, c.updated_at) for c in Conversation.objects.filter(pk__in=[untitled.pk, titled.pk])
            .order_by("title")] == [("first words", now), ("kept", now)]
    assert sql.conversation_touched(untitled.pk, now=now + timedelta(seconds=1)) == 1
    assert Conversation.objects.get(pk=untitled.pk).updated_at == now + timedelta(seconds=1)
    assert sql.conversation_touched(uuid.uuid4(), now=now) == 0

    run = message_send(conversation=untitled, content="hi", client_id=None, owner="o").run
    ended = {"status": Run.Status.FAILED, "error": "boom", "finished_at": now, "owner": "", "lease_expires_at": None,
             "checkpoint_id": "cp", "model": "m", "input_tokens": 1, "output_tokens": 2, "reasoning_tokens": None}
    assert sql.run_ended(run.pk, **ended) == 1
    assert sql.run_ended(run.pk, **ended) == 0  # no longer active
    stored = Run.objects.get(pk=run.pk)
    assert {name: getattr(stored, name) for name in ended} == ended


def test_the_history_page_is_the_orms_newest_first_with_its_types():
    conversation = a_conversation()
    for content in ("one", "two", "three"):
        message_send(conversation=conversation, content=content, client_id=None, owner="o")
    later = timezone.now() + timedelta(seconds=1)
    by_the_orm = list(
        Message.objects.filter(conversation=conversation, turn_at__lt=later)
        .order_by(*[f"-{name}" for name in MESSAGE_ORDER]).values_list(*HISTORY_FIELDS)[:2]
    )
    page = sql.history_page(str(conversation.pk), before_turn_at=later, limit=2)
    assert [row[:3] + row[4:] for row in page] == [row[:3] + row[4:] for row in by_the_orm]
    assert [row[2] for row in page] == ["three", "two"]
    assert all(isinstance(row[0], uuid.UUID) and row[6].tzinfo is not None for row in page)
    assert sql.history_page(conversation.pk, before_turn_at=by_the_orm[-1][6], limit=2)[0][2] == "one"


def test_a_turns_reads_and_updates_are_not_compiled(compiles):
    """The send's locked read, the model's history and the run's end: a turn compiles none
    of them (only INSERTs), and each does what it did."""
    conversation = conversation_create(user=User.objects.create_user("alice"))

    def turn(content: str) -> list:
        accepted = message_send(conversation=conversation, content=content, client_id=None, owner="o")
        message, run = accepted.message, accepted.run
        history = history_rows(
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
