"""A conversation of thousands of messages against a real daphne at its default cap on
websocket messages (1 MiB): it opens with the latest page, and the endpoint gives every
older page, in order, with no gap and no repeat. A bad cursor or limit: in-process."""

import json

import pytest
from asgiref.sync import sync_to_async

from conversations.pages import SNAPSHOT_MAX_BYTES
from conversations.selectors.messages import MESSAGE_PAGE_MAX
from tests.live import Server, Session, add_messages, receive, send
from tests.support.in_process import logged_in_client, new_conversation, signed_in

MESSAGES = 3_000


@pytest.fixture
def default_cap_server(database, tmp_path):
    server = Server(database, tmp_path / "server.log", daphne_flags=[]).start()
    yield server
    server.stop()


def messages_path(conversation: dict) -> str:
    return f"/api/conversations/{conversation['id']}/messages/"


# The cap is daphne's, not the database's; SQLite, as CI's in-process tests page on PostgreSQL.
@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_thousands_of_messages_open_under_the_cap_and_page_back_whole(default_cap_server, database):
    alice = Session(default_cap_server, "alice")
    conversation = alice.create_conversation("long")
    # Every 50th a Markdown table at the message limit: about 60 KB of JSON with its HTML.
    add_messages(database, conversation["id"], MESSAGES, table_every=50)
    everything = alice.request("GET", messages_path(conversation)).json()
    assert len(everything["results"]) == MESSAGES and everything["has_older"] is False
    assert len(json.dumps(everything)) > 4 * 2**20  # all of it would not go through the socket

    async with alice.websocket(conversation["id"]) as ws:
        raw = await ws.recv()
        await send(ws, {"type": "ping"})
        assert (await receive(ws))["type"] == "pong"  # still open
    assert len(raw.encode()) <= SNAPSHOT_MAX_BYTES
    snapshot = json.loads(raw)
    assert snapshot["type"] == "snapshot" and snapshot["has_older"] is True
    assert [m["id"] for m in snapshot["messages"]] == [m["id"] for m in everything["results"][-len(snapshot["messages"]):]]

    shown, cursor = snapshot["messages"], snapshot["older_cursor"]
    while cursor:
        page = alice.request("GET", messages_path(conversation), params={"before": cursor, "limit": MESSAGE_PAGE_MAX}).json()
        assert 0 < len(page["results"]) <= MESSAGE_PAGE_MAX
        shown = page["results"] + shown
        cursor = page["older_cursor"]
        assert page["has_older"] == (cursor is not None)
    assert [m["id"] for m in shown] == [m["id"] for m in everything["results"]]

    newest = alice.request("GET", messages_path(conversation), params={"limit": 7}).json()
    assert newest["results"] == everything["results"][-7:] and newest["has_older"] is True


BAD_QUERIES = [
    {"before": "garbage"},
    {"before": "W1tdLCBudWxsXQ=="},  # [[], null]: a key of no values
    {"before": "", "limit": "0"},
    {"limit": str(MESSAGE_PAGE_MAX + 1)},
    {"limit": "ten"},
    {"limit": "9" * 5_000},
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("orm_threads_disconnect_after")
async def test_a_bad_cursor_or_limit_is_a_bad_request():
    alice, _ = await signed_in("alice")
    conversation = {"id": str((await new_conversation(alice)).id)}
    client = await logged_in_client(alice)
    for params in BAD_QUERIES:
        response = await sync_to_async(client.get)(messages_path(conversation), params)
        assert response.status_code == 400, params
        assert response.json()["error"] == "bad_request"
    # Another user's conversation is not found, whatever the cursor.
    stranger, _ = await signed_in("bob")
    response = await sync_to_async((await logged_in_client(stranger)).get)(messages_path(conversation), {"limit": "5"})
    assert response.status_code == 404
