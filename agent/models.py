import uuid

from django.conf import settings
from django.db import models


class Task(models.Model):
    """A to-do item the agent made with `create_task`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tasks")
    conversation = models.ForeignKey(
        "conversations.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )
    title = models.CharField(max_length=200)
    due = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


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
