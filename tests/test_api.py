"""The JSON API: list with search and paging, create, rename, bad input."""

import pytest

from tests.live import chat, receive

pytestmark = pytest.mark.asyncio


async def test_list_pages_newest_first_and_searches_titles_and_messages(alice, bob):
    made = [alice.create_conversation(f"topic {i:02d}") for i in range(55)]
    bob.create_conversation("topic of bob")
    talked = made[3]
    async with alice.websocket(talked["id"]) as ws:
        await receive(ws)
        await chat(ws, "the zebra crossing")

    first = alice.request("GET", "/api/conversations/").json()
    assert len(first["results"]) == 50 and first["next"]
    assert first["results"][0]["id"] == talked["id"]  # most recently active first
    second = alice.request("GET", "/api/conversations/", params={"cursor": first["next"]}).json()
    assert len(second["results"]) == 5 and second["next"] is None
    listed = [c["id"] for c in first["results"] + second["results"]]
    assert sorted(listed) == sorted(c["id"] for c in made)

    by_message = alice.request("GET", "/api/conversations/", params={"q": "ZEBRA"}).json()["results"]
    assert [c["id"] for c in by_message] == [talked["id"]]
    by_title = alice.request("GET", "/api/conversations/", params={"q": "topic 1"}).json()["results"]
    assert sorted(c["title"] for c in by_title) == [f"topic {i}" for i in range(10, 20)]
    assert alice.request("GET", "/api/conversations/", params={"cursor": "garbage"}).status_code == 400


async def test_create_and_rename_validate_their_input(alice):
    conversation = alice.create_conversation("original")
    for body in ({"title": ""}, {"title": 5}, {"title": "x" * 201}, {}):
        response = alice.request("PATCH", f"/api/conversations/{conversation['id']}/", json=body)
        assert response.status_code == 400 and response.json()["error"] == "bad_request"
    response = alice.request("PATCH", f"/api/conversations/{conversation['id']}/", content=b"{not json",
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert alice.request("GET", f"/api/conversations/{conversation['id']}/").json()["title"] == "original"

    renamed = alice.request("PATCH", f"/api/conversations/{conversation['id']}/", json={"title": "  renamed  "})
    assert renamed.status_code == 200 and renamed.json()["title"] == "renamed"
    assert alice.request("POST", "/api/conversations/", json=[1]).status_code == 400
    assert alice.request("PUT", f"/api/conversations/{conversation['id']}/", json={}).status_code == 405
    assert alice.request("POST", "/api/conversations/", json={"title": "new"}).json()["run_status"] is None


async def test_export_has_every_message(alice):
    conversation = alice.create_conversation("exported")
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await chat(ws, "time")
    exported = alice.request("GET", f"/api/conversations/{conversation['id']}/export?format=json")
    assert exported.headers["content-disposition"].startswith("attachment;")
    roles = [m["role"] for m in exported.json()["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    markdown = alice.request("GET", f"/api/conversations/{conversation['id']}/export?format=markdown").text
    assert markdown.startswith("# exported") and "Tool call `current_time`" in markdown
    assert alice.request("GET", f"/api/conversations/{conversation['id']}/export?format=pdf").status_code == 400
