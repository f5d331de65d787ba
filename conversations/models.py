import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Conversation(models.Model):
    """A chat thread; LangGraph's thread_id is str(id)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The model chosen for this conversation (one of CHAT_MODELS); "" is CHAT_MODEL.
    model = models.CharField(max_length=200, blank=True)
    # The line of the conversation shown and continued; null until the first fork.
    current_branch = models.ForeignKey(
        "Branch", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["user", "-updated_at", "-id"], name="conversation_recent")]

    def __str__(self) -> str:
        return self.title or str(self.id)

    @property
    def chat_model(self) -> str:
        """The model that answers: the one chosen while it is still offered, else CHAT_MODEL."""
        return self.model if self.model in settings.CHAT_MODELS else settings.CHAT_MODEL


class Branch(models.Model):
    """A line of the conversation that leaves its parent line at one message: an edited
    user message, or a regenerated reply. The line holds the parent's messages before
    `forked_at`, then its own. A conversation has no branches until its first fork; the
    first fork makes a root branch (no parent) for the line that was there before."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="branches")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    forked_at = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Switching to a message shows the line through it that was used last.
    last_active_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"branch {self.id}"


# The tokens a model step used, as replies and runs record them.
USAGE_FIELDS = ("input_tokens", "output_tokens", "reasoning_tokens")

# A conversation's messages in order: by turn, then as each turn wrote them.
MESSAGE_ORDER = ["turn_at", "created_at", "id"]


def graph_message_id(conversation_id, langchain_id: str) -> uuid.UUID:
    """The Message id of a graph message: stable, so token frames and the stored row agree."""
    try:
        return uuid.UUID(langchain_id)
    except ValueError:
        return uuid.uuid5(uuid.UUID(str(conversation_id)), langchain_id)


class Message(models.Model):
    """One message of the transcript users see; converges to the graph's state."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        TOOL = "tool"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField()
    # Markdown rendered and sanitized once, when stored; "" when it is just the text as a
    # plain paragraph (rendering.message_html rebuilds it).
    html = models.TextField(blank=True)
    run = models.ForeignKey("Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    # Tool calls an assistant message makes, or the call a tool message answers.
    tool_calls = models.JSONField(default=list, blank=True)
    tool_call_id = models.CharField(max_length=100, blank=True)
    tool_name = models.CharField(max_length=100, blank=True)
    # The reply was cut short by the user pressing Stop.
    stopped = models.BooleanField(default=False)

    class Incomplete(models.TextChoices):
        LENGTH = "length", "cut off at the output limit"
        FILTERED = "filtered", "stopped by the model server's content filter"
        ERROR = "error", "cut off by a failure of the model server"

    # An assistant reply that did not end as the model meant it to: why.
    incomplete = models.CharField(max_length=16, choices=Incomplete.choices, blank=True)
    # An assistant reply's reasoning ("thinking"), shown apart and never sent back to the model.
    reasoning = models.TextField(blank=True)
    # What the model step that wrote an assistant reply used, where the provider said.
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True)
    branch = models.ForeignKey(Branch, null=True, blank=True, on_delete=models.CASCADE, related_name="messages")
    # When the turn's user message was accepted: every message of a turn has it, so turns
    # keep the order they were accepted in, each one's messages together, even when a
    # message was queued while an earlier turn was still writing its reply.
    turn_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = MESSAGE_ORDER
        indexes = [models.Index(fields=["conversation", "turn_at", "created_at"], name="message_turns")]

    def __str__(self) -> str:
        # No content: the admin prints this in titles and links, where staff may not see it.
        return f"{self.role} message {self.id}"


class Run(models.Model):
    """One agent turn: from the user's message to the final reply."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        WAITING = "waiting"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.WAITING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    user_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="started_runs"
    )
    client_id = models.CharField(max_length=64, null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    # The server process that executes the run, and until when it holds it; a run whose
    # lease has expired is claimed and resumed by a live process.
    owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    branch = models.ForeignKey(Branch, null=True, blank=True, on_delete=models.CASCADE, related_name="runs")
    # The graph's last checkpoint when the run ended: where the next turn of its line forks from.
    checkpoint_id = models.CharField(max_length=100, blank=True)
    # The model that answered, and the tokens its steps (and summaries) used in all.
    model = models.CharField(max_length=200, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        # The latest runs of a conversation or of a branch, without sorting all of them.
        indexes = [
            models.Index(fields=["conversation", "-created_at"], name="run_latest"),
            models.Index(fields=["branch", "-created_at"], name="run_latest_on_branch"),
            # A conversation's active runs (each send counts its queue, each start checks
            # for an earlier active run): read without the runs that ended, however many.
            models.Index(
                fields=["conversation", "created_at"],
                condition=models.Q(status__in=["queued", "running", "waiting"]),
                name="run_active",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=models.Q(client_id__isnull=False),
                name="run_client_id_once_per_conversation",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.id} ({self.status})"


class Approval(models.Model):
    """One interrupt of the graph waiting for the user's decision; the audit trail of it."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        EDITED = "edited"

    class Decision(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"
        EDIT = "edit"

    # The interrupt's id: resuming the graph names it.
    id = models.CharField(primary_key=True, max_length=100, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="approvals")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="approvals")
    tool_call_id = models.CharField(max_length=100)
    tool = models.CharField(max_length=100)
    args = models.JSONField(default=dict)
    edited_args = models.JSONField(null=True, blank=True)
    description = models.TextField()
    allowed = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    comment = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.tool} ({self.status})"


class Summary(models.Model):
    """What the model wrote of a line's earlier turns once they no longer fit its context.

    It covers the turns of the line up to and including `through_message`'s, so it serves
    every line that holds that message (lines that share a message share all before it).
    Newer summaries cover more, taking the previous one in."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="summaries")
    through_message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    through_turn_at = models.DateTimeField()
    content = models.TextField()
    turns = models.PositiveIntegerField()
    model = models.CharField(max_length=200, blank=True)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="summaries")
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["through_turn_at", "created_at"]
        indexes = [models.Index(fields=["conversation", "-through_turn_at"], name="summary_latest")]
        verbose_name_plural = "summaries"

    def __str__(self) -> str:
        return f"summary of {self.turns} turns"
