from django.contrib import admin

from .models import Approval, Conversation, Message, Run


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("role", "content", "run", "stopped", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


class RunInline(admin.TabularInline):
    model = Run
    fields = ("status", "user_message", "client_id", "error", "created_at", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("title", "user", "created_at", "updated_at")
    list_filter = ("user", "created_at", "updated_at")
    search_fields = ("id", "title", "user__username", "messages__content")
    date_hierarchy = "created_at"
    readonly_fields = ("id", "created_at", "updated_at")
    inlines = [MessageInline, RunInline]

    def get_search_results(self, request, queryset, search_term):
        queryset, _ = super().get_search_results(request, queryset, search_term)
        return queryset.distinct(), False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "role", "short_content", "created_at")
    list_filter = ("role", "created_at")
    search_fields = ("id", "content", "conversation__id", "conversation__title")
    readonly_fields = ("id", "created_at", "html")
    raw_id_fields = ("conversation", "run")

    @admin.display(description="content")
    def short_content(self, obj):
        return obj.content[:80]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "status", "created_at", "finished_at")
    list_filter = ("status", "created_at")
    search_fields = ("id", "conversation__id", "client_id", "error")
    readonly_fields = ("id", "created_at", "started_at", "finished_at", "updated_at")
    raw_id_fields = ("conversation", "user_message")


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    """The audit trail of decisions: read-only."""

    list_display = ("tool", "description", "status", "conversation", "decided_by", "decided_at", "created_at")
    list_filter = ("status", "tool", "conversation__user", "created_at")
    search_fields = ("id", "tool_call_id", "description", "conversation__id", "conversation__title")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
