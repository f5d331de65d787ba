"""Time travel: edit an earlier message or regenerate a reply, switch between the
branches, continue on any of them; the other branches stay intact."""

import json

import pytest

from conversations.models import Branch, Message, Run
from conversations.orm import to_async
from tests.support.frames import EMAIL, by_content, shown
from tests.support.in_process import (
    ask, browser, decide, fork, run_ended, snapshot_of, sql_rows, switch, table_counts, talk,
)

pytestmark = pytest.mark.django_db(transaction=True)


@to_async
def count(model, **filters) -> int:
    return model.objects.filter(**filters).count()


async def test_edit_makes_a_branch_that_continues_and_switching_keeps_both(people):
    alice = await people("alice")
    conversation = await alice.conversation()
    socket, watcher = await alice.open(conversation.id), await alice.open(conversation.id)
    await talk(socket, "first", "second", "third")
    original = await switch(socket, message_id=by_content(await snapshot_of(alice, conversation.id), "second")["id"])
    second = by_content(original, "second")
    assert "versions" not in second

    edited, frames = await fork(socket, {"type": "message.edit", "message_id": second["id"], "content": "SECOND"})
    assert frames[-1]["run"]["status"] == "succeeded"
    # Every socket is moved to the new branch.
    moved = (await watcher.receive_until(lambda f: f["type"] == "snapshot" and f["branch_id"]))[-1]
    assert shown(moved) == shown(edited)
    assert [c for _, c in shown(edited)][:3] == ["first", shown(original)[1][1], "SECOND"]
    assert len(edited["messages"]) == 3  # the edited message; its reply streams after
    assert edited["branch_id"] and edited["run"]["status"] in {"queued", "running"}
    versions = by_content(edited, "SECOND")["versions"]
    assert (versions["index"], versions["count"]) == (1, 2)
    assert versions["choices"][0]["message_id"] == second["id"]

    recall = await socket.chat("recall")
    assert recall[-2]["message"]["content"] == "first\nSECOND"  # the model sees this branch only

    back = await switch(socket, message_id=second["id"])
    assert [c for r, c in shown(back) if r == "user"] == ["first", "second", "third"]
    assert by_content(back, "second")["versions"]["index"] == 0
    await talk(socket, "fourth")
    recall = await socket.chat("recall")
    assert recall[-2]["message"]["content"] == "first\nsecond\nthird\nfourth"

    forward = await switch(socket, message_id=versions["choices"][1]["message_id"])
    assert [c for r, c in shown(forward) if r == "user"] == ["first", "SECOND", "recall"]
    stored = (await (await browser(alice)).request("GET", f"/api/conversations/{conversation.id}/messages/")).json()["results"]
    assert [m["id"] for m in stored] == [m["id"] for m in forward["messages"]]

    # Every message of both branches is kept once.
    assert await count(Message, role="user") == 7  # first second third SECOND recall fourth recall
    assert await count(Branch) == 2


async def test_regenerate_makes_a_new_reply_and_the_first_one_stays(people):
    alice = await people("alice")
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    await talk(socket, "hello there", "slow 3")
    first = await snapshot_of(alice, conversation.id)
    reply = first["messages"][-1]
    assert reply["content"] == "tick1 tick2 tick3"

    regenerated, frames = await fork(socket, {"type": "message.regenerate", "message_id": reply["id"]})
    assert frames[-1]["run"]["status"] == "succeeded"
    assert shown(regenerated) == shown(first)[:-1]  # the user's message stays, the reply goes
    new_reply = [f for f in frames if f["type"] == "message"][-1]["message"]
    assert new_reply["id"] != reply["id"] and new_reply["content"] == "tick1 tick2 tick3"
    assert (new_reply["versions"]["index"], new_reply["versions"]["count"]) == (1, 2)  # live, not only in snapshots

    now = await snapshot_of(alice, conversation.id)
    assert [m["id"] for m in now["messages"]] == [m["id"] for m in first["messages"][:-1]] + [new_reply["id"]]
    assert now["messages"][-1]["versions"]["index"] == 1

    # Regenerating the new reply adds a third version beside the first two.
    await fork(socket, {"type": "message.regenerate", "message_id": new_reply["id"]})
    latest = await snapshot_of(alice, conversation.id)
    assert latest["messages"][-1]["versions"]["count"] == 3
    assert latest["messages"][-1]["versions"]["index"] == 2

    back = await switch(socket, message_id=reply["id"])
    assert [m["id"] for m in back["messages"]] == [m["id"] for m in first["messages"]]
    assert await count(Message, role="user") == 2
    assert await count(Run) == 4


def without_dashes(value) -> str:
    """An id as either backend returns it: a UUID, or SQLite's 32 hex digits."""
    return str(value).replace("-", "")


async def test_each_branch_forks_the_graph_from_its_own_last_checkpoint(people):
    alice = await people("alice")
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    await talk(socket, "one", "two", "three")
    snapshot = await snapshot_of(alice, conversation.id)
    two = by_content(snapshot, "two")
    await fork(socket, {"type": "message.edit", "message_id": two["id"], "content": "TWO"})

    runs = dict(await sql_rows(
        "SELECT u.content, r.checkpoint_id FROM conversations_run r JOIN conversations_message u ON u.id = r.user_message_id"
    ))
    assert all(runs.values()), runs  # each ended run noted its last checkpoint
    rows = await sql_rows(
        "SELECT checkpoint_id, parent_checkpoint_id, metadata FROM checkpoints WHERE thread_id = %s",
        (str(conversation.id),),
    )
    parents = {checkpoint_id: parent for checkpoint_id, parent, _ in rows}
    edit_run = (await sql_rows(
        "SELECT r.id FROM conversations_run r JOIN conversations_message u ON u.id = r.user_message_id WHERE u.content = 'TWO'"
    ))[0][0]
    own = sorted(
        checkpoint_id for checkpoint_id, _, metadata in rows
        if without_dashes(_metadata(metadata).get("chat_run_id", "")) == without_dashes(edit_run)
    )
    # The new branch's first checkpoint continues the turn before the edited message ("one").
    assert parents[own[0]] == runs["one"]
    assert runs["TWO"] == own[-1]


def _metadata(value) -> dict:
    if isinstance(value, dict):
        return value
    return json.loads(bytes(value).decode() if not isinstance(value, str) else value)


async def test_bad_forks_change_nothing(people):
    alice = await people("alice")
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    await talk(socket, "hello")
    snapshot = await snapshot_of(alice, conversation.id)
    user_message, reply = snapshot["messages"]
    before = await table_counts()

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
        await socket.send(frame)
        answer = await socket.receive()
        assert (answer["type"], answer.get("code")) == ("error", code), (frame, answer)

    # While a reply streams, no fork: stop it first.
    await socket.send({"type": "message.send", "content": "slow 200"})
    await socket.receive_until(lambda f: f["type"] == "token")
    await socket.send({"type": "message.edit", "message_id": user_message["id"], "content": "x"})
    answer = await socket.receive_until(lambda f: f["type"] == "error")
    assert answer[-1]["code"] == "conflict"
    await socket.send({"type": "run.cancel"})
    await socket.receive_until(run_ended)
    after = await table_counts()
    assert after["conversations_message"] == before["conversations_message"] + 2  # "slow 200" and its stopped reply
    assert await count(Branch) == 0

    # Another user's message id is not found in this conversation, and vice versa.
    bob = await people("bob")
    bobs = await bob.open((await bob.conversation()).id)
    for frame in (
        {"type": "message.edit", "message_id": user_message["id"], "content": "mine now"},
        {"type": "message.regenerate", "message_id": reply["id"]},
        {"type": "branch.switch", "message_id": user_message["id"]},
    ):
        await bobs.send(frame)
        answer = await bobs.receive()
        assert (answer["type"], answer["code"]) == ("error", "not_found")
    assert await count(Branch) == 0


@pytest.mark.usefixtures("mail_to_files")
async def test_runs_and_approvals_of_a_branch_left_behind_stay_on_record(people):
    alice = await people("alice")
    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    await talk(socket, "hello")
    approval, _ = await ask(socket, EMAIL)
    # Waiting for a decision counts as in progress: forking needs it stopped or decided.
    snapshot = await snapshot_of(alice, conversation.id)
    await socket.send({"type": "message.edit", "message_id": snapshot["messages"][0]["id"], "content": "hi"})
    assert (await socket.receive())["code"] == "conflict"
    await decide(socket, approval, "reject", comment="not now")

    await fork(socket, {"type": "message.edit", "message_id": snapshot["messages"][0]["id"], "content": "hi"})
    now = await snapshot_of(alice, conversation.id)
    assert [c for r, c in shown(now) if r == "user"] == ["hi"]
    # The decision of the branch left behind is still on record.
    assert [(a["id"], a["status"]) for a in now["approval_history"]] == [(approval["id"], "rejected")]
    export = await (await browser(alice)).request("GET", f"/api/conversations/{conversation.id}/export?format=json")
    exported = export.json()
    assert [(a["id"], a["status"], a["comment"]) for a in exported["approvals"]] == [(approval["id"], "rejected", "not now")]
    assert EMAIL in [m["content"] for m in exported["messages"]]
    assert len(exported["branches"]) == 2
