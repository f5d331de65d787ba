"""A task the agent made goes with the conversation it was made in, as everything of a
conversation does; the user's other tasks stay."""

import pytest
from django.contrib.auth.models import User

from agent.models import Task
from conversations.services.conversations import conversation_create

pytestmark = pytest.mark.django_db(transaction=True)


def test_deleting_a_conversation_deletes_its_tasks():
    user = User.objects.create_user("alice")
    deleted, kept = conversation_create(user=user), conversation_create(user=user)
    for conversation in (deleted, kept):
        Task.objects.create(user=user, conversation=conversation, title=f"from {conversation.id}")

    deleted.delete()

    assert [task.conversation_id for task in Task.objects.all()] == [kept.id]
