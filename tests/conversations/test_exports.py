"""Export round-trips: the JSON holds every message and decision of the conversation,
on every branch; Markdown shows the version shown with its decisions."""

import pytest

from conversations.models import Message, Run
from conversations.orm import to_async
from tests.support.frames import EMAIL, by_content
from tests.support.in_process import ask, browser, decide, fork, snapshot_of, talk

pytestmark = pytest.mark.django_db(transaction=True)


@to_async
def stored_message_ids() -> set[str]:
    return {str(pk) for pk in Message.objects.values_list("id", flat=True)}


@to_async
def run_count() -> int:
    return Run.objects.count()


@pytest.mark.usefixtures("mail_to_files")
async def test_json_export_holds_every_message_branch_and_decision(people):
    alice = await people("alice")
    alice_http = await browser(alice)
    conversation = await alice_http.create_conversation("export me")
    socket = await alice.open(conversation["id"])
    await talk(socket, "hello", "task buy milk")
    rejected, _ = await ask(socket, EMAIL)
    await decide(socket, rejected, "reject", comment="not today")
    edited, _ = await ask(socket, "email carol@example.com Plans: tomorrow")
    await decide(socket, edited, "edit", args={"to": "dave@example.com", "subject": "Plans", "body": "friday"})
    hello = by_content(await snapshot_of(alice, conversation["id"]), "hello")
    await fork(socket, {"type": "message.edit", "message_id": hello["id"], "content": "hello again"})
    await socket.close()

    exported = await alice_http.request("GET", f"/api/conversations/{conversation['id']}/export?format=json")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith('attachment; filename="export-me-')
    data = exported.json()

    assert {m["id"] for m in data["messages"]} == await stored_message_ids()
    by_id = {m["id"]: m for m in data["messages"]}
    tool_calls = [c for m in data["messages"] for c in m.get("tool_calls", [])]
    assert {c["name"] for c in tool_calls} == {"create_task", "send_email"}
    assert {m["tool_name"] for m in data["messages"] if m["role"] == "tool"} == {"create_task", "send_email"}

    decisions = {a["id"]: a for a in data["approvals"]}
    assert set(decisions) == {rejected["id"], edited["id"]}
    assert (decisions[rejected["id"]]["status"], decisions[rejected["id"]]["comment"]) == ("rejected", "not today")
    assert decisions[edited["id"]]["status"] == "edited"
    assert decisions[edited["id"]]["edited_args"]["to"] == "dave@example.com"
    assert all(a["decided_by"] == "alice" and a["decided_at"] for a in data["approvals"])

    assert len(data["branches"]) == 2 and data["branch_id"] in {b["id"] for b in data["branches"]}
    shown = [by_id[i]["content"] for i in data["shown_message_ids"] if by_id[i]["role"] == "user"]
    assert shown == ["hello again"]
    assert len(data["runs"]) == await run_count()

    markdown = (await alice_http.request("GET", f"/api/conversations/{conversation['id']}/export?format=markdown")).content.decode()
    assert markdown.startswith("# export me")
    assert "hello again" in markdown
    assert "Another version" in markdown and "not today" in markdown and "edited by alice" in markdown


async def test_export_of_another_users_conversation_is_not_found(people):
    alice_http, bob_http = await browser(await people("alice")), await browser(await people("bob"))
    conversation = await alice_http.create_conversation("mine")
    for kind in ("json", "markdown"):
        response = await bob_http.request("GET", f"/api/conversations/{conversation['id']}/export?format={kind}")
        assert response.status_code == 404
    response = await alice_http.request("GET", f"/api/conversations/{conversation['id']}/export?format=pdf")
    assert response.status_code == 400
