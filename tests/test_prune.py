"""Retention: `prune_checkpoints` deletes old checkpoints and never breaks a conversation."""

import pytest

from tests.live import Session, ask, chat, decide, fork, manage, receive, receive_until, run_ended, send, snapshot_of, switch, talk
from tests.support.frames import EMAIL, by_content
from tests.support.mail import mails

pytestmark = pytest.mark.asyncio

LONG = 25


def checkpoints(database, thread_id: str) -> int:
    return database.count("checkpoints", "thread_id = %s", (thread_id,))


def all_checkpoint_rows(database) -> int:
    tables = ["checkpoints", "writes"] if database.backend == "sqlite" else ["checkpoints", "checkpoint_blobs", "checkpoint_writes"]
    return sum(database.count(table) for table in tables)


def prune(database, *args: str) -> str:
    return manage(database.env, "prune_checkpoints", *args).stdout


async def test_pruned_conversations_continue_switch_branches_and_resume_approvals(mail_server, mail_dir, database):
    server = mail_server(CHECKPOINTS_KEPT="0").start()  # no trimming after runs: the command does it all
    alice = Session(server, "alice")
    long, branched, waiting = (alice.create_conversation(title) for title in ("long", "branched", "waiting"))
    async with alice.websocket(long["id"]) as ws:
        await receive(ws)
        await talk(ws, *(f"turn {i}" for i in range(LONG)))
    async with alice.websocket(branched["id"]) as ws:
        await receive(ws)
        await talk(ws, "one", "two", "three")
        two = by_content(await snapshot_of(alice, branched), "two")
        await fork(ws, {"type": "message.edit", "message_id": two["id"], "content": "TWO"})
        await talk(ws, "four")
    async with alice.websocket(waiting["id"]) as ws:
        await receive(ws)
        await talk(ws, "hello", "there")
        approval, _ = await ask(ws, EMAIL)

    before = {c["id"]: checkpoints(database, c["id"]) for c in (long, branched, waiting)}
    assert before[long["id"]] > LONG  # at least one a turn
    rows = all_checkpoint_rows(database)

    # A recently active conversation is not idle: nothing to do.
    assert "deleted 0 checkpoints" in prune(database, "--keep", "2", "--idle-for", "1h")
    dry = prune(database, "--keep", "2", "--dry-run")
    assert "would delete" in dry and all_checkpoint_rows(database) == rows
    assert {c: checkpoints(database, c) for c in before} == before

    report = prune(database, "--keep", "1")
    after = {c["id"]: checkpoints(database, c["id"]) for c in (long, branched, waiting)}
    assert after[long["id"]] == 1
    # Each branch keeps the checkpoint its next turn forks from.
    heads = database.query(
        "SELECT r.branch_id, r.checkpoint_id, r.created_at FROM conversations_run r "
        "WHERE r.conversation_id = %s ORDER BY r.created_at DESC",
        (branched["id"].replace("-", "") if database.backend == "sqlite" else branched["id"],),
    )
    latest = {}
    for branch_id, checkpoint_id, _ in heads:
        latest.setdefault(branch_id, checkpoint_id)
    assert len(latest) == 2
    for checkpoint_id in latest.values():
        assert database.count("checkpoints", "checkpoint_id = %s", (checkpoint_id,)) == 1
    assert all(after[c] < before[c] for c in before), (before, after)
    assert all_checkpoint_rows(database) < rows / 3, report

    async with alice.websocket(long["id"]) as ws:
        snapshot = await receive(ws)
        assert len(snapshot["messages"]) == 2 * LONG
        frames = await chat(ws, "recall")
        assert frames[-2]["message"]["content"] == "\n".join(f"turn {i}" for i in range(LONG))

    async with alice.websocket(branched["id"]) as ws:
        await receive(ws)
        back = await switch(ws, message_id=two["id"])
        assert [m["content"] for m in back["messages"] if m["role"] == "user"] == ["one", "two", "three"]
        frames = await chat(ws, "recall")
        assert frames[-2]["message"]["content"] == "one\ntwo\nthree"
        edited = await switch(ws, message_id=by_content(back, "two")["versions"]["choices"][1]["message_id"])
        frames = await chat(ws, "recall")
        assert frames[-2]["message"]["content"] == "one\nTWO\nfour"
        assert edited["messages"][-1]["role"] == "assistant"

    async with alice.websocket(waiting["id"]) as ws:
        snapshot = await receive(ws)
        assert [a["id"] for a in snapshot["approvals"]] == [approval["id"]]
        frames = await decide(ws, approval, "approve")
        assert frames[-1]["run"]["status"] == "succeeded"
    assert len(mails(mail_dir)) == 1

    # Pruning again right away finds little left to delete, and changes no transcript.
    counts = database.counts()
    prune(database, "--keep", "1")
    assert database.counts() == counts


async def test_a_turn_after_one_that_succeeded_writes_one_checkpoint_and_one_after_a_stop_starts_afresh(
    mail_server, database
):
    """The turn goes straight to the model (a Command): no input checkpoint, no START step.
    After a stopped run it is an input, which drops the steps that run left unfinished."""
    alice = Session(mail_server(CHECKPOINTS_KEPT="0").start(), "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await talk(ws, "one")
        first = checkpoints(database, conversation["id"])
        await talk(ws, "two")
        assert checkpoints(database, conversation["id"]) == first + 1
        await ask(ws, EMAIL)  # waits for approval: then stopped, its tool step unfinished
        await send(ws, {"type": "run.cancel"})
        await receive_until(ws, run_ended)
        frames = await chat(ws, "recall")
    assert frames[-1]["run"]["status"] == "succeeded"
    assert frames[-2]["message"]["content"] == "\n".join(["one", "two", EMAIL])
    assert not [f for f in frames if f["type"] == "approval"]  # the stopped tool call is not asked again


async def test_each_run_trims_its_conversation_to_a_bounded_number_of_checkpoints(make_server, database):
    server = make_server(CHECKPOINTS_KEPT="4").start()
    alice = Session(server, "alice")
    conversation = alice.create_conversation()
    counts = []
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        for i in range(LONG):
            await talk(ws, f"turn {i}")
            counts.append(checkpoints(database, conversation["id"]))
        # Bounded: at most the kept ones, the slack, those written since the last count
        # (fewer than the slack again) and one run's own.
        assert max(counts) <= 4 + 10 + 10 + 4 and counts[-1] < 3 * LONG
        assert max(counts[-10:]) == max(counts[10:20])
        frames = await chat(ws, "recall")
        assert frames[-2]["message"]["content"] == "\n".join(f"turn {i}" for i in range(LONG))
        # The line's last checkpoint is kept: the next turn forks from it.
        last = database.query("SELECT checkpoint_id FROM conversations_run ORDER BY created_at DESC LIMIT 1")[0][0]
        assert database.count("checkpoints", "checkpoint_id = %s", (last,)) == 1
