"""A conversation's checkpoints go with it, however it is deleted: the API, the admin,
or its user's deletion (a cascade)."""

from django.db.models.signals import post_delete
from django.dispatch import receiver

from conversations.models import Conversation

from .services import checkpoints_delete


@receiver(post_delete, sender=Conversation, dispatch_uid="delete-conversation-checkpoints")
def delete_checkpoints(sender, instance: Conversation, **kwargs) -> None:
    checkpoints_delete(thread_id=str(instance.id))
