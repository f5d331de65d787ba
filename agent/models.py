import uuid

from django.conf import settings
from django.db import models


class Task(models.Model):
    """A to-do item the agent made with `create_task`; deleted with the conversation it
    was made in, as everything of a conversation is."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tasks")
    conversation = models.ForeignKey(
        "conversations.Conversation", null=True, blank=True, on_delete=models.CASCADE, related_name="tasks"
    )
    title = models.CharField(max_length=200)
    due = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        # No title: the admin prints this in titles and links, where staff may not see it.
        return f"task {self.id}"


class ToolExecution(models.Model):
    """The ledger that makes a tool's side effect happen at most once per tool call.

    A row is written (status `started`) before the tool runs and completed after it. A
    row still `started` when the call comes round again means the process died while
    the tool ran: the outcome is unknown, and the tool is not run a second time.
    """

    class Status(models.TextChoices):
        STARTED = "started"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        UNKNOWN = "unknown"

    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.CASCADE, related_name="tool_executions")
    run = models.ForeignKey("conversations.Run", null=True, on_delete=models.SET_NULL, related_name="tool_executions")
    tool_call_id = models.CharField(max_length=100)
    tool = models.CharField(max_length=100)
    args = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTED)
    result = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "tool_call_id"], name="tool_execution_once_per_call")
        ]

    def __str__(self) -> str:
        return f"{self.tool} {self.tool_call_id} ({self.status})"


class Checkpoint(models.Model):
    """One of LangGraph's checkpoints, read-only, through the `agent_checkpoint` view.

    The saver's table has a composite key (thread_id, checkpoint_ns, checkpoint_id); the
    view joins it into `id`, and turns the thread id and the run id of the metadata into
    keys of Conversation and Run. The checkpoint's contents are decoded by agent.history.
    """

    id = models.CharField(primary_key=True, max_length=300)
    thread_id = models.CharField(max_length=100)
    checkpoint_ns = models.CharField(max_length=100, blank=True)
    checkpoint_id = models.CharField(max_length=100)
    parent_checkpoint_id = models.CharField(max_length=100, null=True)
    conversation = models.ForeignKey(
        "conversations.Conversation", null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    run = models.ForeignKey(
        "conversations.Run", null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    source = models.CharField(max_length=20, null=True)
    step = models.IntegerField(null=True)

    class Meta:
        managed = False
        db_table = "agent_checkpoint"
        # Checkpoint ids are UUIDv6: they sort by time.
        ordering = ["-checkpoint_id"]

    def __str__(self) -> str:
        return f"checkpoint {self.checkpoint_id}"
