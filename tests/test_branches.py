"""Time travel: edit an earlier message or regenerate a reply, switch between the
branches, continue on any of them; the other branches stay intact."""

import json

import pytest

from tests.live import chat, receive, receive_until, run_ended, send
from tests.test_approvals import EMAIL, ask, decide, mail_server, mail_dir  # noqa: F401 (fixtures)

pytestmark = pytest.mark.asyncio


def shown(snapshot: dict) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in snapshot["messages"]]


def reply_to(text: str) -> str:
    """What the offline model answers to ordinary text (the sentence contains it)."""
    return text


async def fork(ws, frame: dict) -> tuple[dict, list[dict]]:
    """Send an edit or regenerate; the snapshot of the new branch and the run's frames."""
    await send(ws, frame)
    snapshot = await receive(ws)
    assert snapshot["type"] == "snapshot", snapshot
    return snapshot, await receive_until(ws, run_ended)


async def switch(ws, **target) -> dict:
    await send(ws, {"type": "branch.switch", **target})
    snapshot = await receive(ws)
    assert snapshot["type"] == "snapshot", snapshot
    return snapshot


async def talk(ws, *texts: str) -> None:
    for text in texts:
        frames = await chat(ws, text)
        assert frames[-1]["run"]["status"] == "succeeded"


def by_content(snapshot: dict, content: str) -> dict:
    return next(m for m in snapshot["messages"] if m["content"] == content)


async def test_edit_makes_a_branch_that_continues_and_switching_keeps_both(alice, database):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws, alice.websocket(conversation["id"]) as watcher:
        await receive(ws)
        await receive(watcher)
        await talk(ws, "first", "second", "third")
        original = await switch(ws, message_id=by_content(await snapshot_of(alice, conversation), "second")["id"])
        second = by_content(original, "second")
        assert "versions" not in second

        edited, frames = await fork(ws, {"type": "message.edit", "message_id": second["id"], "content": "SECOND"})
        assert frames[-1]["run"]["status"] == "succeeded"
        # Every socket is moved to the new branch.
        moved = (await receive_until(watcher, lambda f: f["type"] == "snapshot" and f["branch_id"]))[-1]
        assert shown(moved) == shown(edited)
        assert [c for _, c in shown(edited)][:3] == ["first", shown(original)[1][1], "SECOND"]
        assert len(edited["messages"]) == 3  # the edited message; its reply streams after
        assert edited["branch_id"] and edited["run"]["status"] in {"queued", "running"}
        versions = by_content(edited, "SECOND")["versions"]
        assert (versions["index"], versions["count"]) == (1, 2)
        assert versions["choices"][0]["message_id"] == second["id"]

        recall = await chat(ws, "recall")
        assert recall[-2]["message"]["content"] == "first\nSECOND"  # the model sees this branch only

        back = await switch(ws, message_id=second["id"])
        assert [c for r, c in shown(back) if r == "user"] == ["first", "second", "third"]
        assert by_content(back, "second")["versions"]["index"] == 0
        await talk(ws, "fourth")
        recall = await chat(ws, "recall")
        assert recall[-2]["message"]["content"] == "first\nsecond\nthird\nfourth"

        forward = await switch(ws, message_id=versions["choices"][1]["message_id"])
        assert [c for r, c in shown(forward) if r == "user"] == ["first", "SECOND", "recall"]
        stored = alice.request("GET", f"/api/conversations/{conversation['id']}/messages/").json()["results"]
        assert [m["id"] for m in stored] == [m["id"] for m in forward["messages"]]

    # Every message of both branches is kept once.
    assert database.count("conversations_message", "role = 'user'") == 7  # first second third SECOND recall fourth recall
    assert database.count("conversations_branch") == 2


async def snapshot_of(session, conversation) -> dict:
    async with session.websocket(conversation["id"]) as ws:
        return await receive(ws)


async def test_regenerate_makes_a_new_reply_and_the_first_one_stays(alice, database):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await talk(ws, "hello there", "slow 3")
        first = await snapshot_of(alice, conversation)
        reply = first["messages"][-1]
        assert reply["content"] == "tick1 tick2 tick3"

        regenerated, frames = await fork(ws, {"type": "message.regenerate", "message_id": reply["id"]})
        assert frames[-1]["run"]["status"] == "succeeded"
        assert shown(regenerated) == shown(first)[:-1]  # the user's message stays, the reply goes
        new_reply = [f for f in frames if f["type"] == "message"][-1]["message"]
        assert new_reply["id"] != reply["id"] and new_reply["content"] == "tick1 tick2 tick3"
        assert (new_reply["versions"]["index"], new_reply["versions"]["count"]) == (1, 2)  # live, not only in snapshots

        now = await snapshot_of(alice, conversation)
        assert [m["id"] for m in now["messages"]] == [m["id"] for m in first["messages"][:-1]] + [new_reply["id"]]
        assert now["messages"][-1]["versions"]["index"] == 1

        # Regenerating the new reply adds a third version beside the first two.
        third, _ = await fork(ws, {"type": "message.regenerate", "message_id": new_reply["id"]})
        latest = await snapshot_of(alice, conversation)
        assert latest["messages"][-1]["versions"]["count"] == 3
        assert latest["messages"][-1]["versions"]["index"] == 2

        back = await switch(ws, message_id=reply["id"])
        assert [m["id"] for m in back["messages"]] == [m["id"] for m in first["messages"]]
    assert database.count("conversations_message", "role = 'user'") == 2
    assert database.count("conversations_run") == 4


async def test_each_branch_forks_the_graph_from_its_own_last_checkpoint(alice, database):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await talk(ws, "one", "two", "three")
        snapshot = await snapshot_of(alice, conversation)
        two = by_content(snapshot, "two")
        await fork(ws, {"type": "message.edit", "message_id": two["id"], "content": "TWO"})

    runs = dict(database.query(
        "SELECT u.content, r.checkpoint_id FROM conversations_run r JOIN conversations_message u ON u.id = r.user_message_id"
    ))
    assert all(runs.values()), runs  # each ended run noted its last checkpoint
    rows = database.query(
        "SELECT checkpoint_id, parent_checkpoint_id, metadata FROM checkpoints WHERE thread_id = %s",
        (conversation["id"],),
    )
    parents = {checkpoint_id: parent for checkpoint_id, parent, _ in rows}
    edit_run = database.query(
        "SELECT r.id FROM conversations_run r JOIN conversations_message u ON u.id = r.user_message_id WHERE u.content = 'TWO'"
    )[0][0]
    edit_run = str(edit_run).replace("-", "")
    own = sorted(
        checkpoint_id for checkpoint_id, _, metadata in rows
        if str(_metadata(metadata).get("chat_run_id", "")).replace("-", "") == edit_run
    )
    # The new branch's first checkpoint continues the turn before the edited message ("one").
    assert parents[own[0]] == runs["one"]
    assert runs["TWO"] == own[-1]


def _metadata(value) -> dict:
    if isinstance(value, dict):
        return value
    return json.loads(bytes(value).decode() if not isinstance(value, str) else value)


async def test_bad_forks_change_nothing(alice, bob, database):
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await talk(ws, "hello")
        snapshot = await snapshot_of(alice, conversation)
        user_message, reply = snapshot["messages"]
        before = database.counts()

        cases = [
            ({"type": "message.edit", "message_id": reply["id"], "content": "x"}, "bad_request"),
            ({"type": "message.edit", "message_id": user_message["id"], "content": ""}, "bad_request"),
            ({"type": "message.edit", "message_id": user_message["id"], "content": "x" * 40000}, "too_large"),
            ({"type": "message.edit", "message_id": "00000000-0000-0000-0000-000000000000", "content": "x"}, "not_found"),
            ({"type": "message.edit", "message_id": 7, "content": "x"}, "bad_request"),
            ({"type": "message.regenerate", "message_id": user_message["id"]}, "bad_request"),
            ({"type": "message.regenerate", "message_id": "nope"}, "not_found"),
            ({"type": "branch.switch"}, "bad_request"),
            ({"type": "branch.switch", "message_id": user_message["id"], "branch_id": "x"}, "bad_request"),
            ({"type": "branch.switch", "branch_id": "00000000-0000-0000-0000-000000000000"}, "not_found"),
        ]
        for frame, code in cases:
            await send(ws, frame)
            answer = await receive(ws)
            assert (answer["type"], answer.get("code")) == ("error", code), (frame, answer)

        # While a reply streams, no fork: stop it first.
        await send(ws, {"type": "message.send", "content": "slow 200"})
        await receive_until(ws, lambda f: f["type"] == "token")
        await send(ws, {"type": "message.edit", "message_id": user_message["id"], "content": "x"})
        answer = await receive_until(ws, lambda f: f["type"] == "error")
        assert answer[-1]["code"] == "conflict"
        await send(ws, {"type": "run.cancel"})
        await receive_until(ws, run_ended)
        after = database.counts()
        assert after["conversations_message"] == before["conversations_message"] + 2  # "slow 200" and its stopped reply
        assert database.count("conversations_branch") == 0

    # Another user's message id is not found in this conversation, and vice versa.
    other = bob.create_conversation()
    async with bob.websocket(other["id"]) as ws:
        await receive(ws)
        for frame in (
            {"type": "message.edit", "message_id": user_message["id"], "content": "mine now"},
            {"type": "message.regenerate", "message_id": reply["id"]},
            {"type": "branch.switch", "message_id": user_message["id"]},
        ):
            await send(ws, frame)
            answer = await receive(ws)
            assert (answer["type"], answer["code"]) == ("error", "not_found")
    assert database.count("conversations_branch") == 0


async def test_runs_and_approvals_of_a_branch_left_behind_stay_on_record(mail_server, mail_dir):
    from tests.live import Session

    server = mail_server().start()
    alice = Session(server, "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await talk(ws, "hello")
        approval, _ = await ask(ws, EMAIL)
        # Waiting for a decision counts as in progress: forking needs it stopped or decided.
        snapshot = await snapshot_of(alice, conversation)
        await send(ws, {"type": "message.edit", "message_id": snapshot["messages"][0]["id"], "content": "hi"})
        assert (await receive(ws))["code"] == "conflict"
        await decide(ws, approval, "reject", comment="not now")

        await fork(ws, {"type": "message.edit", "message_id": snapshot["messages"][0]["id"], "content": "hi"})
        now = await snapshot_of(alice, conversation)
        assert [c for r, c in shown(now) if r == "user"] == ["hi"]
        # The decision of the branch left behind is still on record.
        assert [(a["id"], a["status"]) for a in now["approval_history"]] == [(approval["id"], "rejected")]
    exported = alice.request("GET", f"/api/conversations/{conversation['id']}/export?format=json").json()
    assert [(a["id"], a["status"], a["comment"]) for a in exported["approvals"]] == [(approval["id"], "rejected", "not now")]
    assert EMAIL in [m["content"] for m in exported["messages"]]
    assert len(exported["branches"]) == 2
