"""Retention: `prune_checkpoints` deletes old checkpoints and never breaks a conversation.
In-process, through the websocket."""

import io

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connection

from conversations.checkpoints import CHECKPOINT_TABLES_POSTGRES, CHECKPOINT_TABLES_SQLITE
from conversations.models import Conversation, Message, Run
from tests.support.in_process import ask, clear_checkpoint_tables, decide, fork, run_ended, switch, talk
from tests.support.frames import EMAIL, by_content

# Django's flush after a transactional test leaves the checkpoint tables (not Django's):
# each test empties them first.
pytestmark = pytest.mark.django_db(transaction=True)

LONG = 25


def count_rows(table: str, where: str = "", params: tuple = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table} {'WHERE ' + where if where else ''}", params)
        return cursor.fetchone()[0]


@sync_to_async
def checkpoints(conversation) -> int:
    return count_rows("checkpoints", "thread_id = %s", (str(conversation.id),))


@sync_to_async
def stored_checkpoint(checkpoint_id) -> int:
    return count_rows("checkpoints", "checkpoint_id = %s", (checkpoint_id,))


@sync_to_async
def all_checkpoint_rows() -> int:
    tables = CHECKPOINT_TABLES_POSTGRES if connection.vendor == "postgresql" else CHECKPOINT_TABLES_SQLITE
    return sum(count_rows(table) for table in tables)


@sync_to_async
def prune(*args: str) -> str:
    out = io.StringIO()
    call_command("prune_checkpoints", *args, stdout=out)
    return out.getvalue()


@sync_to_async
def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in (Conversation, Message, Run)}


@sync_to_async
def latest_checkpoint_of_each_branch(conversation) -> dict:
    latest = {}
    runs = Run.objects.filter(conversation=conversation).order_by("-created_at")
    for branch_id, checkpoint_id in runs.values_list("branch_id", "checkpoint_id"):
        latest.setdefault(branch_id, checkpoint_id)
    return latest


@sync_to_async
def last_run_checkpoint():
    return Run.objects.order_by("-created_at").values_list("checkpoint_id", flat=True)[0]


async def test_pruned_conversations_continue_switch_branches_and_resume_approvals(people, settings, mailoutbox):
    settings.CHECKPOINTS_KEPT = 0  # no trimming after runs: the command does it all
    await clear_checkpoint_tables()
    alice = await people()
    long, branched, waiting = [await alice.conversation(title=title) for title in ("long", "branched", "waiting")]
    socket = await alice.open(long.id)
    await talk(socket, *(f"turn {i}" for i in range(LONG)))
    await socket.close()
    socket = await alice.open(branched.id)
    await talk(socket, "one", "two", "three")
    viewer = await alice.open(branched.id)  # a page opened now: its snapshot
    two = by_content(viewer.snapshot, "two")
    await viewer.close()
    await fork(socket, {"type": "message.edit", "message_id": two["id"], "content": "TWO"})
    await talk(socket, "four")
    await socket.close()
    socket = await alice.open(waiting.id)
    await talk(socket, "hello", "there")
    approval, _ = await ask(socket, EMAIL)
    await socket.close()

    before = {c.id: await checkpoints(c) for c in (long, branched, waiting)}
    assert before[long.id] > LONG  # at least one a turn
    rows = await all_checkpoint_rows()

    # A recently active conversation is not idle: nothing to do.
    assert "deleted 0 checkpoints" in await prune("--keep", "2", "--idle-for", "1h")
    dry = await prune("--keep", "2", "--dry-run")
    assert "would delete" in dry and await all_checkpoint_rows() == rows
    assert {c.id: await checkpoints(c) for c in (long, branched, waiting)} == before

    report = await prune("--keep", "1")
    after = {c.id: await checkpoints(c) for c in (long, branched, waiting)}
    assert after[long.id] == 1
    # Each branch keeps the checkpoint its next turn forks from.
    latest = await latest_checkpoint_of_each_branch(branched)
    assert len(latest) == 2
    for checkpoint_id in latest.values():
        assert await stored_checkpoint(checkpoint_id) == 1
    assert all(after[c] < before[c] for c in before), (before, after)
    assert await all_checkpoint_rows() < rows / 3, report

    socket = await alice.open(long.id)
    assert len(socket.snapshot["messages"]) == 2 * LONG
    frames = await socket.chat("recall")
    assert frames[-2]["message"]["content"] == "\n".join(f"turn {i}" for i in range(LONG))
    await socket.close()

    socket = await alice.open(branched.id)
    back = await switch(socket, message_id=two["id"])
    assert [m["content"] for m in back["messages"] if m["role"] == "user"] == ["one", "two", "three"]
    frames = await socket.chat("recall")
    assert frames[-2]["message"]["content"] == "one\ntwo\nthree"
    edited = await switch(socket, message_id=by_content(back, "two")["versions"]["choices"][1]["message_id"])
    frames = await socket.chat("recall")
    assert frames[-2]["message"]["content"] == "one\nTWO\nfour"
    assert edited["messages"][-1]["role"] == "assistant"
    await socket.close()

    socket = await alice.open(waiting.id)
    assert [a["id"] for a in socket.snapshot["approvals"]] == [approval["id"]]
    frames = await decide(socket, approval, "approve")
    assert frames[-1]["run"]["status"] == "succeeded"
    await socket.close()
    assert len(mailoutbox) == 1

    # Pruning again right away finds little left to delete, and changes no transcript.
    transcript = await counts()
    await prune("--keep", "1")
    assert await counts() == transcript


async def test_a_turn_after_one_that_succeeded_writes_one_checkpoint_and_one_after_a_stop_starts_afresh(
    people, settings
):
    """The turn goes straight to the model (a Command): no input checkpoint, no START step.
    After a stopped run it is an input, which drops the steps that run left unfinished."""
    settings.CHECKPOINTS_KEPT = 0
    alice = await people()
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    await talk(socket, "one")
    first = await checkpoints(conversation)
    await talk(socket, "two")
    assert await checkpoints(conversation) == first + 1
    await ask(socket, EMAIL)  # waits for approval: then stopped, its tool step unfinished
    await socket.send({"type": "run.cancel"})
    await socket.receive_until(run_ended)
    frames = await socket.chat("recall")
    await socket.close()
    assert frames[-1]["run"]["status"] == "succeeded"
    assert frames[-2]["message"]["content"] == "\n".join(["one", "two", EMAIL])
    assert not [f for f in frames if f["type"] == "approval"]  # the stopped tool call is not asked again


async def test_each_run_trims_its_conversation_to_a_bounded_number_of_checkpoints(people, settings):
    settings.CHECKPOINTS_KEPT = 4
    alice = await people()
    conversation = await alice.conversation()
    counted = []
    socket = await alice.open(conversation.id)
    for i in range(LONG):
        await talk(socket, f"turn {i}")
        counted.append(await checkpoints(conversation))
    # Bounded: at most the kept ones, the slack, those written since the last count
    # (fewer than the slack again) and one run's own.
    assert max(counted) <= 4 + 10 + 10 + 4 and counted[-1] < 3 * LONG
    assert max(counted[-10:]) == max(counted[10:20])
    frames = await socket.chat("recall")
    assert frames[-2]["message"]["content"] == "\n".join(f"turn {i}" for i in range(LONG))
    # The line's last checkpoint is kept: the next turn forks from it.
    assert await stored_checkpoint(await last_run_checkpoint()) == 1
    await socket.close()
