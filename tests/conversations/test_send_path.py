"""What a send costs before its run: no hand-off to an ORM thread when there is nothing to
read, and a client_id the socket has just looked up is not looked up again."""

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.db import IntegrityError

from conversations.models import Message, Run
from conversations.selectors import branches, messages
from conversations.selectors.branches import afork_checkpoint
from conversations.selectors.messages import aclient_id_seen
from conversations.services.conversations import conversation_create
from conversations.services.turns import _once_per_client_id, message_send

pytestmark = pytest.mark.django_db

OWNER = "host:1:abc"


def refuse(**fields):
    raise AssertionError(f"an ORM call was made: {fields}")


def test_a_send_without_a_client_id_looks_nothing_up(monkeypatch):
    monkeypatch.setattr(messages, "_aclient_id_used", refuse)
    conversation = conversation_create(user=User.objects.create_user("alice"))
    assert async_to_sync(aclient_id_seen)(conversation=conversation, client_id=None) is False


def test_a_run_of_a_conversation_that_never_forked_starts_from_its_latest_checkpoint_without_a_query(monkeypatch):
    monkeypatch.setattr(branches, "_afork_checkpoint", refuse)
    conversation = conversation_create(user=User.objects.create_user("alice"))
    run = message_send(conversation=conversation, content="hi", client_id=None, owner=OWNER).run
    assert async_to_sync(afork_checkpoint)(run=run) is None


def test_a_send_does_not_look_its_client_id_up_again_and_still_creates_nothing_twice(django_assert_num_queries):
    conversation = conversation_create(user=User.objects.create_user("alice"))
    send = {"conversation": conversation, "content": "hi", "client_id": "c-1", "owner": OWNER}
    # The socket looked "c-1" up (aclient_id_seen); the send is its transaction
    # alone: savepoint, lock, message, run, conversation, release (a look-up would be a 7th).
    with django_assert_num_queries(6):
        accepted = message_send(**send)
    message, run, created = accepted.message, accepted.run, accepted.created
    assert created
    # Sent again (by a socket that looked it up before the first was stored): the unique
    # client_id refuses the run, and the first message and run come back.
    accepted = message_send(**send)
    again, again_run, created = accepted.message, accepted.run, accepted.created
    assert (again.id, again_run.id, created) == (message.id, run.id, False)
    assert (Message.objects.count(), Run.objects.count()) == (1, 1)


@pytest.mark.parametrize("client_id", [None, "c-1"])
def test_a_violation_that_is_not_a_repeated_client_id_is_raised_as_it_is(client_id):
    """Only the unique client_id means "sent before": any other constraint a send breaks
    reaches the caller as itself, not as a failed look-up of a first send."""
    conversation = conversation_create(user=User.objects.create_user("alice"))

    def store(locked):
        raise IntegrityError("another constraint")

    with pytest.raises(IntegrityError, match="another constraint"):
        _once_per_client_id(conversation, client_id, store)
    assert (Message.objects.count(), Run.objects.count()) == (0, 0)
