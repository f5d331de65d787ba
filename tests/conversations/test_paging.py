"""A long conversation in pages: the snapshot carries the latest page within its cap, and
the older pages (message_page_data, behind GET .../messages/?before=&limit=) give
the rest, each message and approval once, in order. Over HTTP and a socket, against a
real server: tests/test_long_conversation.py."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from conversations.models import MESSAGE_ORDER, Approval, Message, Run
from conversations.pages import SNAPSHOT_MAX_BYTES, message_page_data, snapshot_data
from conversations.presenters import line_message_data
from conversations.rendering import html_to_store
from conversations.selectors.messages import (
    MESSAGE_PAGE_BYTES,
    MESSAGE_PAGE_MAX,
    MESSAGE_PAGE_SIZE,
    MessageCursor,
    message_list,
)
from conversations.services.conversations import conversation_create
from conversations.services.turns import message_edit, message_send

pytestmark = pytest.mark.django_db

OWNER = "host:1:abc"
START = timezone.now() - timedelta(days=30)


@pytest.fixture
def alice():
    return User.objects.create_user("alice")


def add_messages(conversation, count: int, *, branch=None, content=lambda i: f"message {i}", start=START) -> list[Message]:
    """`count` messages, three at each time (ties are ordered by id), stored as the app
    stores them."""
    messages = Message.objects.bulk_create(
        Message(conversation=conversation, branch=branch, role=("user", "assistant")[i % 2], content=content(i),
                html=html_to_store(content(i)))
        for i in range(count)
    )
    for i in range(0, count, 3):
        Message.objects.filter(pk__in=[m.pk for m in messages[i:i + 3]]).update(created_at=start + timedelta(seconds=i))
    return messages


def add_approval(conversation, run, at, status=Approval.Status.APPROVED, **fields) -> Approval:
    approval = Approval.objects.create(
        id=f"interrupt-{Approval.objects.count()}", conversation=conversation, run=run, tool_call_id="call",
        tool="send_email", args={"to": "bob@example.com"}, description="Send an e-mail", status=status, **fields,
    )
    Approval.objects.filter(pk=approval.pk).update(created_at=at)
    approval.refresh_from_db()
    return approval


def all_pages(conversation, cursor: str, **options) -> tuple[list[dict], list[dict], int]:
    """Every page from `cursor` on: their messages and approvals, oldest first."""
    messages, approvals, pages = [], [], 0
    while cursor:
        page = message_page_data(conversation=conversation, cursor=cursor, **options)
        messages[:0], approvals[:0], pages = page["messages"], page["approvals"], pages + 1
        assert page["has_older"] == (page["older_cursor"] is not None)
        cursor = page["older_cursor"]
    return messages, approvals, pages


def shown_data(conversation) -> list[dict]:
    """Every message of the line shown, as the API gives them all at once."""
    return [line_message_data(shown) for shown in message_list(conversation=conversation)]


def frame_bytes(snapshot: dict) -> int:
    """The snapshot as the socket sends it (consumers.send_frame)."""
    return len(json.dumps({"type": "snapshot", **snapshot, "seq": 2**53}).encode())


def ids(items) -> list[str]:
    return [item["id"] for item in items]


def test_thousands_of_messages_open_with_the_latest_page_and_the_older_pages_give_the_rest(alice):
    conversation = conversation_create(user=alice)
    add_messages(conversation, 3_000)
    everything = shown_data(conversation)
    assert len(everything) == 3_000

    snapshot = snapshot_data(conversation=conversation)
    assert frame_bytes(snapshot) <= SNAPSHOT_MAX_BYTES
    assert ids(snapshot["messages"]) == ids(everything[-MESSAGE_PAGE_SIZE:])
    assert snapshot["has_older"] is True

    older, _, pages = all_pages(conversation, snapshot["older_cursor"], limit=MESSAGE_PAGE_MAX)
    assert ids(older + snapshot["messages"]) == ids(everything)
    assert pages == 15  # 2,950 messages, 200 a page


def test_large_messages_keep_the_snapshot_and_each_page_under_their_cap(alice):
    conversation = conversation_create(user=alice)
    # Markdown at the message limit, each about 60 KB of JSON with its HTML.
    add_messages(conversation, 120, content=lambda i: f"**{i}** " + "| a | b |\n|---|---|\n| é | 😀 |\n" * 1_000)
    everything = shown_data(conversation)

    snapshot = snapshot_data(conversation=conversation)
    assert frame_bytes(snapshot) <= SNAPSHOT_MAX_BYTES
    assert 0 < len(snapshot["messages"]) < MESSAGE_PAGE_SIZE

    older, _, _ = all_pages(conversation, snapshot["older_cursor"])
    assert ids(older + snapshot["messages"]) == ids(everything)
    page = message_page_data(conversation=conversation, limit=MESSAGE_PAGE_MAX)
    assert len(json.dumps(page["messages"])) <= MESSAGE_PAGE_BYTES < len(json.dumps(everything))


def test_a_message_larger_than_the_snapshot_is_fetched_over_http(alice):
    conversation = conversation_create(user=alice)
    add_messages(conversation, 5)
    huge = Message.objects.create(conversation=conversation, role="tool", content="x" * (SNAPSHOT_MAX_BYTES + 1))

    snapshot = snapshot_data(conversation=conversation)
    assert frame_bytes(snapshot) <= SNAPSHOT_MAX_BYTES
    assert snapshot["messages"] == [] and snapshot["has_older"] is True

    older, _, pages = all_pages(conversation, snapshot["older_cursor"])
    assert ids(older) == ids(shown_data(conversation))
    # Alone on its page, over MESSAGE_PAGE_BYTES: a page holds at least one message.
    assert older[-1]["id"] == str(huge.id) and pages == 2


def test_approvals_come_with_the_page_of_the_messages_around_them_each_once(alice):
    conversation = conversation_create(user=alice)
    messages = add_messages(conversation, 600)
    run = Run.objects.create(conversation=conversation, status=Run.Status.SUCCEEDED)
    made = [add_approval(conversation, run, START + timedelta(seconds=i, milliseconds=500)) for i in range(0, 600, 37)]
    # One older than every message of the line (a line that begins with an edited first
    # message), and one pending: the pending ones are always in `approvals`.
    made.append(add_approval(conversation, run, START - timedelta(days=1)))
    pending = add_approval(conversation, run, START + timedelta(seconds=10), status=Approval.Status.PENDING)
    made.append(pending)

    snapshot = snapshot_data(conversation=conversation)
    assert ids(snapshot["approvals"]) == [pending.id]
    newest_page_start = Message.objects.get(pk=snapshot["messages"][0]["id"]).created_at
    assert {a["id"] for a in snapshot["approval_history"]} == {a.id for a in made if a.created_at >= newest_page_start}

    _, older, _ = all_pages(conversation, snapshot["older_cursor"], limit=100)
    history = older + snapshot["approval_history"]
    assert ids(history) == [a.id for a in sorted(made, key=lambda a: a.created_at)]
    assert len(messages) == 600


def test_a_forked_line_is_paged_as_it_is_shown(alice):
    conversation = conversation_create(user=alice)
    accepted = message_send(conversation=conversation, content="first", client_id=None, owner=OWNER)
    first, run = accepted.message, accepted.run
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)
    add_messages(conversation, 200, start=timezone.now())
    accepted = message_edit(
        conversation=conversation, message_id=first.id, content="edited", client_id=None, owner=OWNER
    )
    edited, run = accepted.message, accepted.run
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)
    conversation.refresh_from_db()
    add_messages(conversation, 200, branch=conversation.current_branch, start=timezone.now() + timedelta(seconds=1))
    shown = shown_data(conversation)
    assert len(shown) == 201 and shown[0]["id"] == str(edited.id) and shown[0]["versions"]["count"] == 2

    snapshot = snapshot_data(conversation=conversation)
    older, _, _ = all_pages(conversation, snapshot["older_cursor"], limit=30)
    assert older + snapshot["messages"] == shown


def test_the_order_is_defined_once():
    """The snapshot, the endpoint and the cursors read MESSAGE_ORDER; a cursor holds its values."""
    later = START + timedelta(seconds=1)
    cursor = MessageCursor(key=(START, later, "4a4f3a0e-6d2c-4bb4-9a1e-2f4f0f7f8a11"), approvals_before=START)
    decoded = MessageCursor.decode(cursor.encode())
    assert len(decoded.key) == len(MESSAGE_ORDER) == 3  # turn_at, created_at, id
    assert decoded.key[:2] == (START, later) and str(decoded.key[2]) == cursor.key[2]
    assert decoded.approvals_before == START
