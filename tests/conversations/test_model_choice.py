"""Each conversation keeps its model, chosen among CHAT_MODELS through the API; its
sockets are told when it changes."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from conversations.models import Conversation
from conversations.services.conversations import conversation_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def offered(settings):
    settings.CHAT_MODEL = "offline"
    settings.CHAT_MODELS = ["offline", "openai:gpt-test"]
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def patch(client: Client, conversation_id, body) -> tuple[int, dict]:
    response = client.patch(f"/api/conversations/{conversation_id}/", json.dumps(body), content_type="application/json")
    return response.status_code, response.json()


async def test_the_models_offered_and_a_conversations_choice(people, offered):
    alice = await people()
    client = await sync_to_async(logged_in)(alice.user)
    models = (await sync_to_async(client.get)("/api/models/")).json()
    assert models == {"default": "offline", "models": [{"id": "offline"}, {"id": "openai:gpt-test"}]}

    created = await sync_to_async(client.post)("/api/conversations/", {"model": "openai:gpt-test"}, content_type="application/json")
    assert created.status_code == 201 and created.json()["model"] == "openai:gpt-test"
    refused = await sync_to_async(client.post)("/api/conversations/", {"model": "openai:other"}, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["error"] == "bad_request"

    conversation = await alice.conversation()
    socket = await alice.open(conversation.id)
    await socket.send({"type": "message.send", "content": "slow 30"})
    await socket.receive_until(lambda f: f["type"] == "token")
    status, answer = await sync_to_async(patch)(client, conversation.id, {"model": "openai:gpt-test"})
    assert status == 200 and answer["model"] == "openai:gpt-test" and answer["run_status"] == "running"
    frames = await socket.receive_until(lambda f: f["type"] == "conversation")
    assert frames[-1]["conversation"]["model"] == "openai:gpt-test"
    status, _ = await sync_to_async(patch)(client, conversation.id, {"model": "bogus"})
    assert status == 400
    assert (await Conversation.objects.aget(pk=conversation.pk)).model == "openai:gpt-test"
    await socket.close()


@pytest.mark.django_db
def test_a_model_no_longer_offered_falls_back_to_the_default(settings, offered, django_user_model):
    conversation = conversation_create(user=django_user_model.objects.create_user("alice"), model="openai:gpt-test")
    settings.CHAT_MODELS = ["offline"]
    assert Conversation.objects.get(pk=conversation.pk).chat_model == "offline"
