"""A user reaches only their own conversations, over HTTP and the websocket."""

import pytest
import websockets

from tests.live import Session, chat, receive

pytestmark = pytest.mark.asyncio


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


async def test_another_users_conversation_is_404_everywhere(alice, bob, database):
    conversation = alice.create_conversation("alice's secrets")
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await chat(ws, "my password is hunter2")
    before = database.counts()

    for method, path, body in http_paths(conversation["id"]):
        response = bob.request(method, path, json=body)
        assert response.status_code == 404, (method, path)
        assert "hunter2" not in response.text and "secrets" not in response.text
    listed = bob.request("GET", "/api/conversations/?q=hunter2").json()
    assert listed == {"results": [], "next": None}

    async with bob.websocket(conversation["id"]) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd.code == 4404

    assert database.counts() == before
    assert alice.request("GET", f"/api/conversations/{conversation['id']}/").json()["title"] == "alice's secrets"


async def test_unknown_and_malformed_ids_are_404(alice):
    for conversation_id in ["00000000-0000-0000-0000-000000000000", "not-a-uuid"]:
        for method, path, body in http_paths(conversation_id):
            if path.startswith("/c/") and conversation_id == "not-a-uuid":
                continue  # the page's URL pattern only matches UUIDs: a plain 404 too
            assert alice.request(method, path, json=body).status_code == 404, (method, path)
        async with alice.websocket(conversation_id) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await receive(ws)
        assert closed.value.rcvd.code == 4404
    assert alice.request("GET", "/c/not-a-uuid/").status_code == 404


async def test_not_logged_in_gets_no_data(server, alice):
    conversation = alice.create_conversation("private")
    anonymous = Session(server, None)
    for method, path, body in http_paths(conversation["id"]) + [("GET", "/api/conversations/", None), ("GET", "/api/approvals/", None)]:
        response = anonymous.request(method, path, json=body, follow_redirects=False)
        if path.startswith("/c/"):
            assert response.status_code == 302 and response.headers["location"].startswith("/accounts/login/")
        else:
            assert response.status_code in (401, 403), (method, path)
            assert "private" not in response.text
    assert anonymous.request("GET", "/", follow_redirects=False).status_code == 302

    async with anonymous.websocket(conversation["id"]) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd.code == 4401


async def test_a_foreign_origin_is_refused_at_the_handshake(alice):
    conversation = alice.create_conversation()
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with alice.websocket(conversation["id"], origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403


async def test_unsafe_requests_need_the_csrf_token(alice):
    conversation = alice.create_conversation("keep")
    response = alice.http.patch(f"/api/conversations/{conversation['id']}/", json={"title": "changed"})
    assert response.status_code == 403
    response = alice.http.post("/api/conversations/", json={})
    assert response.status_code == 403
    assert alice.request("GET", f"/api/conversations/{conversation['id']}/").json()["title"] == "keep"
