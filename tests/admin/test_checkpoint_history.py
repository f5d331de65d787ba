"""The admin: a conversation's checkpoint history, staff access, exports and
ADMIN_HIDE_MESSAGE_CONTENT (tests/admin/test_content_rule.py walks the content rule).
In-process: the conversation through the websocket, the admin through Django's client."""

import html
import json
import re

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client

from conversations.models import Message, Run
from tests.support.in_process import ask, logged_in_client, run_ended
from tests.support.frames import EMAIL

# Django's flush after a transactional test leaves the checkpoint tables (not Django's)
# alone; each test's thread id is new.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("locmem_email", "fast_passwords")]

TASK = "task buy milk"
MARKER = "content hidden"
ROW_CELLS = ("step", "source", "ran", "next", "writes", "interrupts")
PASSWORD = "correct horse battery staple"


@pytest.fixture
def locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def create_staff(username: str, *permissions: str, superuser: bool = False) -> None:
    """A staff user (password PASSWORD) with the given "app_label.codename" permissions."""
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True, is_superuser=superuser)
    for perm in permissions:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def admin_session(username: str) -> Client:
    """Logged in through the admin's own form."""
    client = Client()
    response = client.post("/admin/login/", {"username": username, "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302 and response.headers["location"] == "/admin/", response.content
    return client


def query(sql: str, params: tuple = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


async def converse(people) -> tuple[dict, dict]:
    """Alice's conversation with a tool call (create_task) and an approved send_email."""
    alice = await people()
    conversation = await alice.conversation(title="Lunch plans")
    socket = await alice.open(conversation.id)
    assert (await socket.chat(TASK))[-1]["run"]["status"] == "succeeded"
    approval, _ = await ask(socket, EMAIL)
    await socket.send({"type": "approval.decide", "approval_id": approval["id"], "decision": "approve"})
    assert (await socket.receive_until(run_ended))[-1]["run"]["status"] == "succeeded"
    await socket.close()
    return {"id": str(conversation.id)}, approval


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


def text(response) -> str:
    return response.content.decode()


async def test_history_lists_checkpoints_with_approvals_and_tool_calls(people):
    conversation, approval = await converse(people)
    await sync_to_async(history_lists_checkpoints_with_approvals_and_tool_calls)(conversation, approval)


def history_lists_checkpoints_with_approvals_and_tool_calls(conversation: dict, approval: dict) -> None:
    create_staff("carol", "conversations.view_conversation", "conversations.view_message", "agent.view_checkpoint")
    carol = admin_session("carol")

    change = carol.get(f"/admin/conversations/conversation/{conversation['id']}/change/")
    assert change.status_code == 200 and history_url(conversation) in text(change)

    page = carol.get(history_url(conversation))
    assert page.status_code == 200
    timeline = rows(text(page))
    stored = query("SELECT checkpoint_id FROM checkpoints WHERE thread_id = %s", (conversation["id"],))
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

    state = state_section(text(carol.get(history_url(conversation), {"checkpoint": waiting["id"]})))
    assert f"State at checkpoint {waiting['id']}" in state
    assert EMAIL in state and "calls send_email" in re.sub(r"<[^>]+>", "", state)
    assert '"to": "bob@example.com"' in state and "message-tool" not in state

    # A turn's last checkpoint shows that turn, not the next turn's message written beside it.
    first_turn_end = Run.objects.order_by("created_at").values_list("checkpoint_id", flat=True)[0]
    state = state_section(text(carol.get(history_url(conversation), {"checkpoint": first_turn_end})))
    assert TASK in state and "The task was created." in state and EMAIL not in state

    newest = state_section(text(page))
    assert f"State at checkpoint {timeline[0]['id']}" in newest
    assert "message-tool" in newest and "The e-mail was sent." in newest

    listed = carol.get("/admin/agent/checkpoint/", {"q": conversation["id"]})
    assert listed.status_code == 200
    assert all(row["id"] in text(listed) for row in timeline)

    export = carol.get(f"/admin/conversations/conversation/{conversation['id']}/export/json/")
    assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
    assert EMAIL in [m["content"] for m in json.loads(text(export))["messages"]]
    markdown = carol.get(f"/admin/conversations/conversation/{conversation['id']}/export/markdown/")
    assert markdown.status_code == 200 and "see you at noon" in text(markdown)


async def test_only_staff_with_the_permissions_see_conversations_and_checkpoints(people):
    conversation, _ = await converse(people)
    alice = await logged_in_client(await sync_to_async(User.objects.get)(username="alice"))
    await sync_to_async(only_staff_with_the_permissions_see_conversations_and_checkpoints)(alice, conversation)


def only_staff_with_the_permissions_see_conversations_and_checkpoints(alice: Client, conversation: dict) -> None:
    pages = [
        "/admin/conversations/conversation/",
        f"/admin/conversations/conversation/{conversation['id']}/change/",
        history_url(conversation),
        f"/admin/conversations/conversation/{conversation['id']}/export/json/",
        "/admin/agent/checkpoint/",
    ]

    # Not staff: the admin sends alice to its login page.
    for url in pages:
        response = alice.get(url)
        assert response.status_code == 302 and response.headers["location"].startswith("/admin/login/"), url

    create_staff("dave")
    dave = admin_session("dave")
    for url in pages:
        assert dave.get(url).status_code == 403, url

    # The conversation, but not its checkpoints.
    create_staff("erin", "conversations.view_conversation")
    erin = admin_session("erin")
    change = erin.get(pages[1])
    assert change.status_code == 200 and history_url(conversation) not in text(change)
    assert erin.get(history_url(conversation)).status_code == 403
    assert erin.get("/admin/agent/checkpoint/").status_code == 403


async def test_hide_setting_keeps_contents_from_staff(people, settings):
    settings.ADMIN_HIDE_MESSAGE_CONTENT = True
    conversation, approval = await converse(people)
    await sync_to_async(hide_setting_keeps_contents_from_staff)(conversation, approval)


def hide_setting_keeps_contents_from_staff(conversation: dict, approval: dict) -> None:
    create_staff("root", superuser=True)
    root = admin_session("root")
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
        response = root.get(url)
        assert response.status_code == 200, url
        shown = html.unescape(text(response))
        assert not [secret for secret in secrets if secret in shown], url
    assert MARKER in text(root.get(pages[0]))
    assert MARKER in state_section(text(root.get(history_url(conversation))))
    assert rows(text(root.get(history_url(conversation))))

    # No search over contents, a marker on a message's page, no exports.
    assert cid not in text(root.get("/admin/conversations/conversation/", {"q": "noon"}))
    message_id = Message.objects.values_list("id", flat=True)[0]
    message = root.get(f"/admin/conversations/message/{message_id}/change/")
    assert message.status_code == 200 and MARKER in text(message)
    assert not [secret for secret in secrets if secret in html.unescape(text(message))]
    assert root.get(f"/admin/conversations/conversation/{cid}/export/json/").status_code == 403
