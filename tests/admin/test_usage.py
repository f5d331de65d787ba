"""Tokens used, per conversation and per user, in the admin; summaries on the conversation's page."""

import pytest
from django.contrib.auth.models import User

from conversations.models import Conversation, Message, Run, Summary

pytestmark = pytest.mark.django_db


def test_tokens_per_conversation_and_per_user(client):
    alice = User.objects.create_user("alice")
    for title, tokens in [("small-talk", (100, 20, 5)), ("long-essay", (1000, 200, 0))]:
        conversation = Conversation.objects.create(user=alice, title=title)
        for _ in range(2):
            Run.objects.create(conversation=conversation, status=Run.Status.SUCCEEDED, model="openai:m",
                               input_tokens=tokens[0], output_tokens=tokens[1], reasoning_tokens=tokens[2])
    client.force_login(User.objects.create_superuser("root", password="x"))

    conversations = client.get("/admin/conversations/conversation/?o=-4").content.decode()
    assert conversations.index("long-essay") < conversations.index("small-talk")  # most input tokens first
    assert all(f">{total}<" in conversations for total in (2000, 400, 200, 40, 10))
    users = client.get("/admin/auth/user/").content.decode()
    assert ">2200<" in users and ">440<" in users


def test_the_conversation_page_shows_its_summaries(client):
    conversation = Conversation.objects.create(user=User.objects.create_user("alice"), title="long")
    message = Message.objects.create(conversation=conversation, role="user", content="hello")
    Summary.objects.create(conversation=conversation, through_message=message, through_turn_at=message.turn_at,
                           content="The user greeted.", turns=1, model="offline", input_tokens=9, output_tokens=3)
    client.force_login(User.objects.create_superuser("root", password="x"))
    page = client.get(f"/admin/conversations/conversation/{conversation.id}/change/").content.decode()
    assert "The user greeted." in page and "offline" in page
