"""The JSON API: list with search and paging, create, rename, bad input."""

import pytest

from tests.support.in_process import browser

pytestmark = pytest.mark.django_db(transaction=True)


async def test_list_pages_newest_first_and_searches_titles_and_messages(people):
    alice, bob = await people("alice"), await people("bob")
    alice_http, bob_http = await browser(alice), await browser(bob)
    made = [await alice_http.create_conversation(f"topic {i:02d}") for i in range(55)]
    await bob_http.create_conversation("topic of bob")
    talked = made[3]
    socket = await alice.open(talked["id"])
    await socket.chat("the zebra crossing")

    first = (await alice_http.request("GET", "/api/conversations/")).json()
    assert len(first["results"]) == 50 and first["next"]
    assert first["results"][0]["id"] == talked["id"]  # most recently active first
    second = (await alice_http.request("GET", "/api/conversations/", params={"cursor": first["next"]})).json()
    assert len(second["results"]) == 5 and second["next"] is None
    listed = [c["id"] for c in first["results"] + second["results"]]
    assert sorted(listed) == sorted(c["id"] for c in made)

    by_message = (await alice_http.request("GET", "/api/conversations/", params={"q": "ZEBRA"})).json()["results"]
    assert [c["id"] for c in by_message] == [talked["id"]]
    by_title = (await alice_http.request("GET", "/api/conversations/", params={"q": "topic 1"})).json()["results"]
    assert sorted(c["title"] for c in by_title) == [f"topic {i}" for i in range(10, 20)]
    assert (await alice_http.request("GET", "/api/conversations/", params={"cursor": "garbage"})).status_code == 400


async def test_create_and_rename_validate_their_input(people):
    alice_http = await browser(await people("alice"))
    conversation = await alice_http.create_conversation("original")
    path = f"/api/conversations/{conversation['id']}/"
    for body in ({"title": ""}, {"title": 5}, {"title": "x" * 201}, {}):
        response = await alice_http.request("PATCH", path, json=body)
        assert response.status_code == 400 and response.json()["error"] == "bad_request"
    response = await alice_http.request("PATCH", path, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert (await alice_http.request("GET", path)).json()["title"] == "original"

    renamed = await alice_http.request("PATCH", path, json={"title": "  renamed  "})
    assert renamed.status_code == 200 and renamed.json()["title"] == "renamed"
    assert (await alice_http.request("POST", "/api/conversations/", json=[1])).status_code == 400
    assert (await alice_http.request("PUT", path, json={})).status_code == 405
    assert (await alice_http.request("POST", "/api/conversations/", json={"title": "new"})).json()["run_status"] is None


async def test_export_has_every_message(people):
    alice = await people("alice")
    alice_http = await browser(alice)
    conversation = await alice_http.create_conversation("exported")
    socket = await alice.open(conversation["id"])
    await socket.chat("time")
    export = f"/api/conversations/{conversation['id']}/export"
    exported = await alice_http.request("GET", export, params={"format": "json"})
    assert exported.headers["content-disposition"].startswith("attachment;")
    roles = [m["role"] for m in exported.json()["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    markdown = (await alice_http.request("GET", export, params={"format": "markdown"})).content.decode()
    assert markdown.startswith("# exported") and "Tool call `current_time`" in markdown
    assert (await alice_http.request("GET", export, params={"format": "pdf"})).status_code == 400
