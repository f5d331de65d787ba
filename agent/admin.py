from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from chatproject.privacy import PrivateFieldsMixin

from .history import checkpoint_time
from .models import Checkpoint, Task, ToolExecution


@admin.register(Task)
class TaskAdmin(PrivateFieldsMixin, admin.ModelAdmin):
    list_display = ("title", "user", "due", "conversation", "created_at")
    list_filter = ("user", "due", "created_at")
    search_fields = ("title", "user__username")
    raw_id_fields = ("conversation",)
    # The title is an argument of the agent's create_task call.
    private_fields = ("title",)


@admin.register(ToolExecution)
class ToolExecutionAdmin(PrivateFieldsMixin, admin.ModelAdmin):
    """The at-most-once ledger: read-only."""

    list_display = ("tool", "tool_call_id", "status", "conversation", "started_at", "finished_at")
    list_filter = ("status", "tool", "started_at")
    search_fields = ("tool_call_id", "conversation__id", "result")
    private_fields = ("args", "result")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    """LangGraph's checkpoints: read-only; their contents are on the conversation's
    checkpoint history page."""

    list_display = ("checkpoint_id", "conversation", "step", "source", "run", "created", "history")
    list_filter = ("source",)
    list_select_related = ("conversation", "run")
    search_fields = ("thread_id", "checkpoint_id", "conversation__title", "conversation__user__username")
    fields = (
        "thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id",
        "conversation", "run", "step", "source", "created", "history",
    )
    readonly_fields = fields
    show_full_result_count = False

    @admin.display(description="time")
    def created(self, obj):
        return checkpoint_time(obj.checkpoint_id)

    @admin.display(description="history")
    def history(self, obj):
        if obj.conversation_id is None:
            return "-"
        url = reverse("admin:conversations_conversation_checkpoints", args=[obj.conversation_id])
        return format_html('<a href="{}?checkpoint={}">state at this checkpoint</a>', url, obj.checkpoint_id)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
