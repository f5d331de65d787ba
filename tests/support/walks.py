"""Steps of a conversation that in-process tests take through the harness's sockets
(tests/support/in_process.py), and the HTTP client of a logged-in user."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client

from tests.support.in_process import Socket, run_ended

# The offline model calls send_email for this, which waits for the user's approval.
EMAIL = "email bob@example.com Lunch: see you at noon"


def until_waiting(frame: dict) -> bool:
    """The run waits for a decision, or ended without one (so a test never hangs)."""
    return frame["type"] == "run" and frame["run"]["status"] in {"waiting", "succeeded", "failed", "cancelled"}


async def ask(socket: Socket, content: str) -> tuple[dict, list[dict]]:
    """Send a message that calls a tool needing approval; the approval and the frames."""
    await socket.send({"type": "message.send", "content": content})
    frames = await socket.receive_until(until_waiting)
    assert frames[-1]["run"]["status"] == "waiting", frames
    approvals = [f["approval"] for f in frames if f["type"] == "approval"]
    assert len(approvals) == 1
    return approvals[0], frames


async def decide(socket: Socket, approval: dict, decision: str, **fields) -> list[dict]:
    await socket.send({"type": "approval.decide", "approval_id": approval["id"], "decision": decision, **fields})
    return await socket.receive_until(run_ended)


async def talk(socket: Socket, *texts: str) -> None:
    """Send each text and wait for its reply."""
    for text in texts:
        frames = await socket.chat(text)
        assert frames[-1]["run"]["status"] == "succeeded", frames


@sync_to_async
def logged_in_client(user: User) -> Client:
    """Django's test client with the user's session: it sends the CSRF token's checks off,
    as a page of the app would pass them."""
    client = Client()
    client.force_login(user)
    return client


async def fork(socket: Socket, frame: dict) -> tuple[dict, list[dict]]:
    """Send an edit or regenerate; the snapshot of the new branch and the run's frames."""
    await socket.send(frame)
    snapshot = await socket.receive()
    assert snapshot["type"] == "snapshot", snapshot
    return snapshot, await socket.receive_until(run_ended)


async def switch(socket: Socket, **target) -> dict:
    await socket.send({"type": "branch.switch", **target})
    snapshot = await socket.receive()
    assert snapshot["type"] == "snapshot", snapshot
    return snapshot


def by_content(snapshot: dict, content: str) -> dict:
    return next(m for m in snapshot["messages"] if m["content"] == content)
