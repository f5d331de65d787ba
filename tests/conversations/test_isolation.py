"""A user reaches only their own conversations, over HTTP and the websocket."""

import pytest

from tests.support.in_process import browser, close_code, communicator, table_counts, TIMEOUT

pytestmark = pytest.mark.django_db(transaction=True)


def http_paths(conversation_id: str) -> list[tuple[str, str, dict | None]]:
    return [
        ("GET", f"/c/{conversation_id}/", None),
        ("GET", f"/api/conversations/{conversation_id}/", None),
        ("PATCH", f"/api/conversations/{conversation_id}/", {"title": "mine now"}),
        ("DELETE", f"/api/conversations/{conversation_id}/", None),
        ("GET", f"/api/conversations/{conversation_id}/messages/", None),
        ("GET", f"/api/conversations/{conversation_id}/export?format=json", None),
        ("GET", f"/api/conversations/{conversation_id}/export?format=markdown", None),
    ]


async def test_another_users_conversation_is_404_everywhere(people):
    alice, bob = await people("alice"), await people("bob")
    alice_http, bob_http = await browser(alice), await browser(bob)
    conversation = await alice_http.create_conversation("alice's secrets")
    socket = await alice.open(conversation["id"])
    await socket.chat("my password is hunter2")
    await socket.close()
    before = await table_counts()

    for method, path, body in http_paths(conversation["id"]):
        response = await bob_http.request(method, path, json=body)
        assert response.status_code == 404, (method, path)
        assert b"hunter2" not in response.content and b"secrets" not in response.content
    listed = (await bob_http.request("GET", "/api/conversations/?q=hunter2")).json()
    assert listed == {"results": [], "next": None}

    assert await close_code(bob.cookie, conversation["id"]) == 4404

    assert await table_counts() == before
    mine = await alice_http.request("GET", f"/api/conversations/{conversation['id']}/")
    assert mine.json()["title"] == "alice's secrets"


async def test_unknown_and_malformed_ids_are_404(people):
    alice = await people("alice")
    alice_http = await browser(alice)
    for conversation_id in ["00000000-0000-0000-0000-000000000000", "not-a-uuid"]:
        for method, path, body in http_paths(conversation_id):
            if path.startswith("/c/") and conversation_id == "not-a-uuid":
                continue  # the page's URL pattern only matches UUIDs: a plain 404 too
            assert (await alice_http.request(method, path, json=body)).status_code == 404, (method, path)
        assert await close_code(alice.cookie, conversation_id) == 4404
    assert (await alice_http.request("GET", "/c/not-a-uuid/")).status_code == 404


async def test_not_logged_in_gets_no_data(people):
    alice = await people("alice")
    conversation = await (await browser(alice)).create_conversation("private")
    anonymous = await browser(None)
    for method, path, body in http_paths(conversation["id"]) + [("GET", "/api/conversations/", None), ("GET", "/api/approvals/", None)]:
        response = await anonymous.request(method, path, json=body)
        if path.startswith("/c/"):
            assert response.status_code == 302 and response.headers["location"].startswith("/accounts/login/")
        else:
            assert response.status_code in (401, 403), (method, path)
            assert b"private" not in response.content
    assert (await anonymous.request("GET", "/")).status_code == 302

    assert await close_code(None, conversation["id"]) == 4401


async def test_a_foreign_origin_is_refused_at_the_handshake(people):
    """Refused before the handshake is accepted: a server answers that with 403."""
    alice = await people("alice")
    conversation = await alice.conversation()
    socket = communicator(alice.cookie, conversation.id, origin="http://evil.example")
    connected, _ = await socket.connect(timeout=TIMEOUT)
    assert not connected


async def test_unsafe_requests_need_the_csrf_token(people):
    alice_http = await browser(await people("alice"))
    conversation = await alice_http.create_conversation("keep")
    response = await alice_http.request("PATCH", f"/api/conversations/{conversation['id']}/", json={"title": "changed"}, csrf=False)
    assert response.status_code == 403
    response = await alice_http.request("POST", "/api/conversations/", json={}, csrf=False)
    assert response.status_code == 403
    assert (await alice_http.request("GET", f"/api/conversations/{conversation['id']}/")).json()["title"] == "keep"
