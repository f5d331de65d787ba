"""What staff may read in the admin: the one rule for content.

Content is what users and the agent wrote: message text and tool calls, tool results,
approvals' arguments, edited arguments, descriptions and comments, task titles, and the
graph's state in checkpoints. All of it is message content in one table or another (a
tool call's arguments are in the assistant's message, its result in a tool message, a
task's title is create_task's argument), so one permission unlocks it: the one that shows
messages in the admin (`view_message`, or `change_message`, which Django's admin counts as
viewing). Staff without it see a marker in its place, find nothing by searching it and
get no exports. ADMIN_HIDE_MESSAGE_CONTENT keeps it from every staff user, superusers too.

Every admin page, export, search and action asks `content_visible`; model admins and
inlines get the rule from PrivateFieldsMixin. str() of a model never holds content (the
admin prints it in titles, breadcrumbs, links and delete confirmations).
"""

from django.conf import settings
from django.contrib import admin

HIDDEN = "content hidden"
MARKER_FIELD = "hidden_content"
CONTENT_PERMISSIONS = ("conversations.view_message", "conversations.change_message")


def content_visible(request) -> bool:
    if settings.ADMIN_HIDE_MESSAGE_CONTENT:
        return False
    return any(request.user.has_perm(permission) for permission in CONTENT_PERMISSIONS)


class PrivateFieldsMixin:
    """For a ModelAdmin or an inline: to staff who may not see content, the
    `private_fields` show the marker (in forms, change pages and list columns) and are
    not searched, nor are the `private_search_fields`. Such staff get no add page, whose
    form would lack the private fields."""

    private_fields: tuple[str, ...] = ()
    private_search_fields: tuple[str, ...] = ()

    @admin.display(description="content")
    def hidden_content(self, obj):
        return HIDDEN

    def _public(self, request, names):
        if content_visible(request):
            return names
        public = []
        for name in names:
            name = MARKER_FIELD if name in self.private_fields else name
            if name not in public:
                public.append(name)
        return public

    def get_fields(self, request, obj=None):
        return self._public(request, super().get_fields(request, obj))

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return fields if content_visible(request) else self._public(request, [*fields, *self.private_fields])

    def get_exclude(self, request, obj=None):
        exclude = super().get_exclude(request, obj) or ()
        return exclude if content_visible(request) else [*exclude, *self.private_fields]

    def get_list_display(self, request):
        return self._public(request, super().get_list_display(request))

    def get_search_fields(self, request):
        fields = super().get_search_fields(request)
        if content_visible(request):
            return fields
        private = {*self.private_fields, *self.private_search_fields}
        return [name for name in fields if name not in private]

    def has_add_permission(self, request, *args):
        if self.private_fields and not content_visible(request):
            return False
        return super().has_add_permission(request, *args)
