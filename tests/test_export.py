"""Export round-trips: the JSON holds every message and decision of the conversation,
on every branch; Markdown shows the version shown with its decisions."""

import pytest

from tests.live import Session, receive
from tests.test_approvals import EMAIL, ask, decide, mail_dir, mail_server  # noqa: F401 (fixtures)
from tests.test_branches import by_content, fork, snapshot_of, talk

pytestmark = pytest.mark.asyncio


def ids(rows) -> set[str]:
    return {str(row[0]).replace("-", "") for row in rows}


async def test_json_export_holds_every_message_branch_and_decision(mail_server, mail_dir, database):
    server = mail_server().start()
    alice = Session(server, "alice")
    conversation = alice.create_conversation("export me")
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await talk(ws, "hello", "task buy milk")
        rejected, _ = await ask(ws, EMAIL)
        await decide(ws, rejected, "reject", comment="not today")
        edited, _ = await ask(ws, "email carol@example.com Plans: tomorrow")
        await decide(ws, edited, "edit", args={"to": "dave@example.com", "subject": "Plans", "body": "friday"})
        hello = by_content(await snapshot_of(alice, conversation), "hello")
        await fork(ws, {"type": "message.edit", "message_id": hello["id"], "content": "hello again"})

    exported = alice.request("GET", f"/api/conversations/{conversation['id']}/export?format=json")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith('attachment; filename="export-me-')
    data = exported.json()

    stored = database.query("SELECT id FROM conversations_message")
    assert {m["id"].replace("-", "") for m in data["messages"]} == ids(stored)
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
    assert len(data["runs"]) == database.count("conversations_run")

    markdown = alice.request("GET", f"/api/conversations/{conversation['id']}/export?format=markdown").text
    assert markdown.startswith("# export me")
    assert "hello again" in markdown
    assert "Another version" in markdown and "not today" in markdown and "edited by alice" in markdown


async def test_export_of_another_users_conversation_is_not_found(alice, bob):
    conversation = alice.create_conversation("mine")
    for kind in ("json", "markdown"):
        assert bob.request("GET", f"/api/conversations/{conversation['id']}/export?format={kind}").status_code == 404
    assert alice.request("GET", f"/api/conversations/{conversation['id']}/export?format=pdf").status_code == 400
