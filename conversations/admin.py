from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery, Sum
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from agent.history import HISTORY_LIMIT, checkpoint_history
from chatproject.privacy import HIDDEN, PrivateFieldsMixin, content_visible

from .exports import export_conversation
from .models import USAGE_FIELDS, Approval, Branch, Conversation, Message, Run, Summary

CHECKPOINT_PERMISSION = "agent.view_checkpoint"
EXPORT_KINDS = ("json", "markdown")
CHECKPOINTS_URL = "conversations_conversation_checkpoints"
EXPORT_URL = "conversations_conversation_export"


class MessageInline(PrivateFieldsMixin, admin.TabularInline):
    model = Message
    fields = ("role", "content", "reasoning", "tool_calls", "run", "stopped", "incomplete", "turn_at", "created_at")
    readonly_fields = fields
    private_fields = ("content", "reasoning", "tool_calls")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class RunInline(admin.TabularInline):
    model = Run
    fields = ("status", "user_message", "client_id", "error", "model", *USAGE_FIELDS, "created_at", "finished_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class BranchInline(admin.TabularInline):
    """The conversation's versions: each leaves its parent line at one message."""

    model = Branch
    fk_name = "conversation"
    fields = ("id", "parent", "forked_at", "created_at", "last_active_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class SummaryInline(PrivateFieldsMixin, admin.TabularInline):
    """What the model wrote of the turns that no longer fit its context, newest last."""

    model = Summary
    fields = ("turns", "through_turn_at", "content", "model", "input_tokens", "output_tokens", "run", "created_at")
    readonly_fields = fields
    private_fields = ("content",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class TokenColumns:
    """Columns for the tokens annotated on a changelist's queryset (USAGE_FIELDS), sortable."""

    @admin.display(description="input tokens", ordering="input_tokens")
    def input_tokens(self, obj):
        return obj.input_tokens

    @admin.display(description="output tokens", ordering="output_tokens")
    def output_tokens(self, obj):
        return obj.output_tokens

    @admin.display(description="reasoning tokens", ordering="reasoning_tokens")
    def reasoning_tokens(self, obj):
        return obj.reasoning_tokens


@admin.register(Conversation)
class ConversationAdmin(TokenColumns, PrivateFieldsMixin, admin.ModelAdmin):
    list_display = ("title", "user", "model", "input_tokens", "output_tokens", "reasoning_tokens", "created_at",
                    "updated_at")
    list_filter = ("user", "model", "created_at", "updated_at")
    search_fields = ("id", "title", "user__username", "messages__content")
    private_search_fields = ("messages__content",)
    date_hierarchy = "created_at"
    readonly_fields = ("id", "created_at", "updated_at", "input_tokens", "output_tokens", "reasoning_tokens")
    inlines = [MessageInline, RunInline, SummaryInline, BranchInline]

    def get_queryset(self, request):
        # The tokens of every run of the conversation (their summaries included), in all.
        runs = Run.objects.filter(conversation=OuterRef("pk")).order_by().values("conversation")
        totals = {name: Subquery(runs.annotate(n=Sum(name)).values("n")) for name in USAGE_FIELDS}
        return super().get_queryset(request).annotate(**totals)

    def get_search_results(self, request, queryset, search_term):
        queryset, _ = super().get_search_results(request, queryset, search_term)
        return queryset.distinct(), False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/checkpoints/", view(self.checkpoints_view), name=CHECKPOINTS_URL),
            path("<path:object_id>/export/<str:kind>/", view(self.export_view), name=EXPORT_URL),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        links = {}
        if request.user.has_perm(CHECKPOINT_PERMISSION):
            links["checkpoints_url"] = reverse(f"admin:{CHECKPOINTS_URL}", args=[object_id])
        if content_visible(request):
            links["export_urls"] = {
                kind: reverse(f"admin:{EXPORT_URL}", args=[object_id, kind]) for kind in EXPORT_KINDS
            }
        return super().change_view(request, object_id, form_url, {**links, **(extra_context or {})})

    def _viewable(self, request, object_id) -> Conversation:
        conversation = self.get_object(request, unquote(object_id))
        if conversation is None:
            raise Http404("No such conversation.")
        if not self.has_view_permission(request, conversation):
            raise PermissionDenied
        return conversation

    def checkpoints_view(self, request, object_id):
        """The graph's checkpoints of the conversation, newest first, and the state at one."""
        conversation = self._viewable(request, object_id)
        if not request.user.has_perm(CHECKPOINT_PERMISSION):
            raise PermissionDenied
        selected = request.GET.get("checkpoint") or None
        entries, state = checkpoint_history(conversation_id=str(conversation.id), selected=selected)
        if selected and state is None:
            raise Http404("No such checkpoint in this conversation's history.")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": conversation,
            "title": f"Checkpoint history of {conversation}",
            "entries": entries,
            "state": state,
            "hidden": not content_visible(request),
            "marker": HIDDEN,
            "limit": HISTORY_LIMIT,
        }
        return TemplateResponse(request, "admin/conversations/conversation/checkpoints.html", context)

    def export_view(self, request, object_id, kind):
        conversation = self._viewable(request, object_id)
        if not content_visible(request):
            raise PermissionDenied("An export holds message contents: it needs the permission to view messages.")
        if kind not in EXPORT_KINDS:
            raise Http404("No such export.")
        body, content_type, extension = export_conversation(conversation=conversation, kind=kind)
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="conversation-{conversation.id}.{extension}"'
        return response


@admin.register(Message)
class MessageAdmin(PrivateFieldsMixin, admin.ModelAdmin):
    list_display = ("id", "conversation", "role", "short_content", "created_at")
    list_filter = ("role", "created_at")
    search_fields = ("id", "content", "conversation__id", "conversation__title")
    readonly_fields = ("id", "created_at", "html")
    raw_id_fields = ("conversation", "run")
    private_fields = ("content", "html", "reasoning", "tool_calls", "short_content")

    @admin.display(description="content")
    def short_content(self, obj):
        return obj.content[:80]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "status", "model", *USAGE_FIELDS, "created_at", "finished_at")
    list_filter = ("status", "model", "created_at")
    search_fields = ("id", "conversation__id", "client_id", "error")
    readonly_fields = ("id", "created_at", "started_at", "finished_at", "updated_at")
    raw_id_fields = ("conversation", "user_message")


@admin.register(Approval)
class ApprovalAdmin(PrivateFieldsMixin, admin.ModelAdmin):
    """The audit trail of decisions: read-only."""

    list_display = ("tool", "description", "status", "conversation", "decided_by", "decided_at", "created_at")
    list_filter = ("status", "tool", "conversation__user", "created_at")
    search_fields = ("id", "tool_call_id", "description", "conversation__id", "conversation__title")
    date_hierarchy = "created_at"
    # The description quotes the arguments.
    private_fields = ("args", "edited_args", "description", "comment")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
