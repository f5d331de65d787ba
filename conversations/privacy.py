"""What staff may read in the admin: with ADMIN_HIDE_MESSAGE_CONTENT on, no message
contents, tool arguments or graph state, only a marker in their place."""

from django.conf import settings
from django.contrib import admin

HIDDEN = "hidden by ADMIN_HIDE_MESSAGE_CONTENT"
MARKER_FIELD = "hidden_content"


def content_hidden() -> bool:
    return settings.ADMIN_HIDE_MESSAGE_CONTENT


class PrivateFieldsMixin:
    """For a ModelAdmin or an inline: with hiding on, the `private_fields` show the marker
    (in forms, change pages and list columns) and are not searched, nor are the
    `private_search_fields`. A model whose str() shows private text (`private_str`) then
    has no object pages, since the admin prints str() in titles and breadcrumbs, and no
    add page, whose form would lack the private fields."""

    private_fields: tuple[str, ...] = ()
    private_search_fields: tuple[str, ...] = ()
    private_str = False

    @admin.display(description="content")
    def hidden_content(self, obj):
        return HIDDEN

    def content_is_hidden(self) -> bool:
        return content_hidden()

    def _public(self, names):
        if not content_hidden():
            return names
        public = []
        for name in names:
            name = MARKER_FIELD if name in self.private_fields else name
            if name not in public:
                public.append(name)
        return public

    def get_fields(self, request, obj=None):
        return self._public(super().get_fields(request, obj))

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return self._public([*fields, *self.private_fields]) if content_hidden() else fields

    def get_exclude(self, request, obj=None):
        exclude = super().get_exclude(request, obj) or ()
        return [*exclude, *self.private_fields] if content_hidden() else exclude

    def get_list_display(self, request):
        return self._public(super().get_list_display(request))

    def get_search_fields(self, request):
        fields = super().get_search_fields(request)
        if not content_hidden():
            return fields
        private = {*self.private_fields, *self.private_search_fields}
        return [name for name in fields if name not in private]

    def _object_pages_closed(self, obj) -> bool:
        return obj is not None and self.private_str and content_hidden()

    def get_list_display_links(self, request, list_display):
        if self.private_str and content_hidden():
            return None
        return super().get_list_display_links(request, list_display)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if self.private_str and content_hidden():
            # Its confirmation page lists the objects by str().
            actions.pop("delete_selected", None)
        return actions

    def has_add_permission(self, request, *args):
        return not (self.private_str and content_hidden()) and super().has_add_permission(request, *args)

    def has_view_permission(self, request, obj=None):
        return not self._object_pages_closed(obj) and super().has_view_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not self._object_pages_closed(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._object_pages_closed(obj) and super().has_delete_permission(request, obj)
