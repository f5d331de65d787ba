"""The admin: a conversation's checkpoint history, staff access, exports and
ADMIN_HIDE_MESSAGE_CONTENT, on a real server (tests/admin/test_content_rule.py walks
the content rule in-process)."""

import html
import json
import re

import pytest

from tests.live import PASSWORD, Session, chat, create_staff, receive, receive_until, run_ended, send

pytestmark = pytest.mark.asyncio

EMAIL = "email bob@example.com Lunch: see you at noon"
TASK = "task buy milk"
MARKER = "content hidden"
ROW_CELLS = ("step", "source", "ran", "next", "writes", "interrupts")


def admin_session(server, username: str) -> Session:
    session = Session(server, None)
    session.http.get("/admin/login/")
    response = session.http.post(
        "/admin/login/",
        data={"username": username, "password": PASSWORD, "next": "/admin/",
              "csrfmiddlewaretoken": session.http.cookies["csrftoken"]},
        headers={"Referer": f"{server.url}/admin/login/"},
    )
    assert response.status_code == 302 and response.headers["location"] == "/admin/", response.text
    return session


def until_waiting(frame) -> bool:
    return frame["type"] == "run" and frame["run"]["status"] in {"waiting", "succeeded", "failed"}


async def converse(session: Session) -> tuple[dict, dict]:
    """A conversation with a tool call (create_task) and an approved send_email."""
    conversation = session.create_conversation(title="Lunch plans")
    async with session.websocket(conversation["id"]) as ws:
        await receive(ws)
        assert (await chat(ws, TASK))[-1]["run"]["status"] == "succeeded"
        await send(ws, {"type": "message.send", "content": EMAIL})
        frames = await receive_until(ws, until_waiting)
        assert frames[-1]["run"]["status"] == "waiting", frames
        approval = next(f["approval"] for f in frames if f["type"] == "approval")
        await send(ws, {"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"})
        assert (await receive_until(ws, run_ended))[-1]["run"]["status"] == "succeeded"
    return conversation, approval


def history_url(conversation: dict) -> str:
    return f"/admin/conversations/conversation/{conversation['id']}/checkpoints/"


def rows(page: str) -> list[dict]:
    """The timeline's rows: checkpoint id and the text of each cell."""
    found = []
    for chunk in page.split('<tr class="checkpoint')[1:]:
        row = {"id": re.search(r'data-checkpoint="([^"]+)"', chunk).group(1)}
        for name in ROW_CELLS:
            cell = re.search(rf'<td class="{name}">(.*?)</td>', chunk, re.S).group(1)
            row[name] = html.unescape(re.sub(r"<[^>]+>", " ", cell))
        found.append(row)
    return found


def state_section(page: str) -> str:
    return html.unescape(page.split('<div class="checkpoint-state"', 1)[1])


@pytest.fixture
def app(make_server):
    return make_server(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend").start()


async def test_history_lists_checkpoints_with_approvals_and_tool_calls(app, database):
    conversation, approval = await converse(Session(app, "alice"))
    create_staff(database, "carol", "conversations.view_conversation", "conversations.view_message", "agent.view_checkpoint")
    carol = admin_session(app, "carol")

    change = carol.http.get(f"/admin/conversations/conversation/{conversation['id']}/change/")
    assert change.status_code == 200 and history_url(conversation) in change.text

    page = carol.http.get(history_url(conversation))
    assert page.status_code == 200
    timeline = rows(page.text)
    stored = database.query("SELECT checkpoint_id FROM checkpoints WHERE thread_id = %s", (conversation["id"],))
    assert [row["id"] for row in timeline] == sorted((r[0] for r in stored), reverse=True)
    steps = [int(row["step"]) for row in timeline]
    assert steps[0] > steps[-1] and timeline[-1]["source"].strip() == "input"
    assert any("agent" in row["ran"] for row in timeline) and any("tools" in row["ran"] for row in timeline)

    # The checkpoint the run waited at: its tools task holds the interrupt, named by the approval's id.
    waiting = next(row for row in timeline if approval["id"] in row["interrupts"])
    assert "send_email" in waiting["interrupts"] and "tools" in waiting["next"]
    assert "__interrupt__" in waiting["writes"] and "__resume__" in waiting["writes"]
    resumed = timeline[timeline.index(waiting) - 1]
    assert "tools" in resumed["ran"] and "agent" in resumed["next"]

    state = state_section(carol.http.get(history_url(conversation), params={"checkpoint": waiting["id"]}).text)
    assert f"State at checkpoint {waiting['id']}" in state
    assert EMAIL in state and "calls send_email" in re.sub(r"<[^>]+>", "", state)
    assert '"to": "bob@example.com"' in state and "message-tool" not in state

    # A turn's last checkpoint shows that turn, not the next turn's message written beside it.
    first_turn_end = database.query("SELECT checkpoint_id FROM conversations_run ORDER BY created_at LIMIT 1")[0][0]
    state = state_section(carol.http.get(history_url(conversation), params={"checkpoint": first_turn_end}).text)
    assert TASK in state and "The task was created." in state and EMAIL not in state

    newest = state_section(page.text)
    assert f"State at checkpoint {timeline[0]['id']}" in newest
    assert "message-tool" in newest and "The e-mail was sent." in newest

    listed = carol.http.get("/admin/agent/checkpoint/", params={"q": conversation["id"]})
    assert listed.status_code == 200
    assert all(row["id"] in listed.text for row in timeline)

    export = carol.http.get(f"/admin/conversations/conversation/{conversation['id']}/export/json/")
    assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
    assert EMAIL in [m["content"] for m in json.loads(export.text)["messages"]]
    markdown = carol.http.get(f"/admin/conversations/conversation/{conversation['id']}/export/markdown/")
    assert markdown.status_code == 200 and "see you at noon" in markdown.text


async def test_only_staff_with_the_permissions_see_conversations_and_checkpoints(app, database):
    alice = Session(app, "alice")
    conversation, _ = await converse(alice)
    pages = [
        "/admin/conversations/conversation/",
        f"/admin/conversations/conversation/{conversation['id']}/change/",
        history_url(conversation),
        f"/admin/conversations/conversation/{conversation['id']}/export/json/",
        "/admin/agent/checkpoint/",
    ]

    # Not staff: the admin sends alice to its login page.
    for url in pages:
        response = alice.http.get(url)
        assert response.status_code == 302 and response.headers["location"].startswith("/admin/login/"), url

    create_staff(database, "dave")
    dave = admin_session(app, "dave")
    for url in pages:
        assert dave.http.get(url).status_code == 403, url

    # The conversation, but not its checkpoints.
    create_staff(database, "erin", "conversations.view_conversation")
    erin = admin_session(app, "erin")
    change = erin.http.get(pages[1])
    assert change.status_code == 200 and history_url(conversation) not in change.text
    assert erin.http.get(history_url(conversation)).status_code == 403
    assert erin.http.get("/admin/agent/checkpoint/").status_code == 403


async def test_hide_setting_keeps_contents_from_staff(make_server, database):
    server = make_server(
        ADMIN_HIDE_MESSAGE_CONTENT="1", EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"
    ).start()
    conversation, approval = await converse(Session(server, "alice"))
    create_staff(database, "root", superuser=True)
    root = admin_session(server, "root")
    secrets = ("see you at noon", "bob@example.com", "buy milk", "The e-mail was sent")
    cid = conversation["id"]
    pages = [
        f"/admin/conversations/conversation/{cid}/change/",
        f"/admin/conversations/conversation/{cid}/delete/",
        history_url(conversation),
        "/admin/conversations/message/",
        "/admin/conversations/run/",
        "/admin/conversations/approval/",
        f"/admin/conversations/approval/{approval['id']}/change/",
        "/admin/agent/task/",
        "/admin/agent/toolexecution/",
        "/admin/agent/checkpoint/",
    ]
    for url in pages:
        response = root.http.get(url)
        assert response.status_code == 200, url
        text = html.unescape(response.text)
        assert not [secret for secret in secrets if secret in text], url
    assert MARKER in root.http.get(pages[0]).text
    assert MARKER in state_section(root.http.get(history_url(conversation)).text)
    assert rows(root.http.get(history_url(conversation)).text)

    # No search over contents, a marker on a message's page, no exports.
    assert cid not in root.http.get("/admin/conversations/conversation/", params={"q": "noon"}).text
    message_id = database.query("SELECT id FROM conversations_message LIMIT 1")[0][0]
    message = root.http.get(f"/admin/conversations/message/{message_id}/change/")
    assert message.status_code == 200 and MARKER in message.text
    assert not [secret for secret in secrets if secret in html.unescape(message.text)]
    assert root.http.get(f"/admin/conversations/conversation/{cid}/export/json/").status_code == 403
