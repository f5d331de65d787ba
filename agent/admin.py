from django.contrib import admin

from .models import Task, ToolExecution


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("title", "user", "due", "conversation", "created_at")
    list_filter = ("user", "due", "created_at")
    search_fields = ("title", "user__username")
    raw_id_fields = ("conversation",)


@admin.register(ToolExecution)
class ToolExecutionAdmin(admin.ModelAdmin):
    """The at-most-once ledger: read-only."""

    list_display = ("tool", "tool_call_id", "status", "conversation", "started_at", "finished_at")
    list_filter = ("status", "tool", "started_at")
    search_fields = ("tool_call_id", "conversation__id", "result")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
