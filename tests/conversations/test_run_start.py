"""services.run_start with the run as this process queued it: trusted only while the row
still matches it."""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.utils import timezone

from conversations import services
from conversations.models import Conversation, Run

pytestmark = pytest.mark.django_db

OWNER = "host:1:abc"


def queued_run() -> Run:
    user = User.objects.create_user("alice")
    conversation = services.conversation_create(user=user)
    _, run, _ = services.message_send(conversation=conversation, content="hello", client_id=None, owner=OWNER)
    return run


def test_a_fresh_known_run_starts_without_reading_it_back(django_assert_num_queries):
    run = queued_run()
    with django_assert_num_queries(1):  # the conditional UPDATE
        started = services.run_start(run_id=run.id, owner=OWNER, known=run)
    assert started is run and started.first_start and started.attempts == 1
    assert started.user_message.content == "hello"
    stored = Run.objects.get(pk=run.id)
    assert (stored.status, stored.attempts, stored.started_at) == (Run.Status.RUNNING, 1, started.started_at)
    assert stored.lease_expires_at == started.lease_expires_at


def test_a_stale_known_run_is_read_again():
    run = queued_run()
    services.run_start(run_id=run.id, owner=OWNER)  # an attempt this object did not see
    started = services.run_start(run_id=run.id, owner=OWNER, known=run)
    assert started is not run
    assert started.attempts == 2 and not started.first_start
    assert Run.objects.get(pk=run.id).attempts == 2


def test_a_known_run_that_is_not_its_turn_does_not_start():
    first = queued_run()
    conversation = Conversation.objects.get(pk=first.conversation_id)
    _, second, _ = services.message_send(conversation=conversation, content="and", client_id=None, owner=OWNER)
    services.run_start(run_id=first.id, owner=OWNER, known=first)
    assert services.run_start(run_id=second.id, owner=OWNER, known=second) is None
    assert Run.objects.get(pk=second.id).status == Run.Status.QUEUED
    assert services.run_start(run_id=first.id, owner="another:2:def") is None  # not its owner


def test_a_send_locks_and_counts_the_queue_in_one_query(settings, django_assert_num_queries):
    settings.RUN_QUEUE_MAX = 2
    first = queued_run()
    conversation = Conversation.objects.get(pk=first.conversation_id)
    # Lock with the queue's length, the message, the run, the conversation's time, and
    # (inside the test's transaction) a savepoint and its release.
    with django_assert_num_queries(6):
        services.message_send(conversation=conversation, content="two", client_id=None, owner=OWNER)
    with pytest.raises(services.Conflict, match="2 messages already wait"):
        services.message_send(conversation=conversation, content="three", client_id=None, owner=OWNER)
    assert Run.objects.filter(conversation=conversation).count() == 2


def test_only_leases_running_out_before_the_round_after_next_are_renewed(settings):
    settings.RUN_LEASE_SECONDS, settings.RUN_RECOVERY_INTERVAL_SECONDS = 10, 1.5
    near, far = queued_run(), queued_run_of_another_user()
    soon, later = timezone.now() + timedelta(seconds=2), timezone.now() + timedelta(seconds=9)
    Run.objects.filter(pk=near.pk).update(lease_expires_at=soon)
    Run.objects.filter(pk=far.pk).update(lease_expires_at=later)
    assert async_to_sync(services.arun_renew_leases)(owner=OWNER) == 1
    assert Run.objects.get(pk=near.pk).lease_expires_at > later  # renewed: a full lease from now
    assert Run.objects.get(pk=far.pk).lease_expires_at == later  # not written


def queued_run_of_another_user() -> Run:
    user = User.objects.create_user("bob")
    conversation = services.conversation_create(user=user)
    return services.message_send(conversation=conversation, content="hi", client_id=None, owner=OWNER)[1]
