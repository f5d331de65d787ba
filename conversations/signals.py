"""A conversation's deletion is total, however it is deleted: the API, the admin, or its
user's deletion (a cascade). Its checkpoints go in the same transaction; once that is
committed, its runs stop wherever they execute and its sockets are closed."""

from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from . import events
from .checkpoints import checkpoints_delete
from .models import Conversation, Run
from .runs.control import arun_stop_request


@receiver(post_delete, sender=Conversation, dispatch_uid="delete-conversation-checkpoints")
def conversation_deleted(sender, instance: Conversation, using, **kwargs) -> None:
    checkpoints_delete(thread_id=str(instance.id))
    _after_commit(events.publish_deleted, instance.id, using=using)


@receiver(post_delete, sender=Run, dispatch_uid="stop-deleted-runs")
def stop_run(sender, instance: Run, using, **kwargs) -> None:
    """Ask every process to stop the run, if it may be executing: the one that executes
    it finds it gone and removes what it wrote after the delete (RunAttempt._forget_deleted)."""
    if instance.status in Run.ACTIVE:
        _after_commit(arun_stop_request, str(instance.id), using=using)


def _after_commit(coroutine_function, *args, using: str) -> None:
    """Await it once the deletion is committed, from whichever thread deleted: the API's
    ORM thread or the admin's view (on the server's event loop), or a management command.
    A failure (the channel layer down) is logged and spoils nothing: the delete stands."""
    transaction.on_commit(lambda: async_to_sync(coroutine_function)(*args), using=using, robust=True)
