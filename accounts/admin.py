from axes.admin import AccessAttemptAdmin
from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import Sum

from conversations.admin import TokenColumns
from conversations.models import USAGE_FIELDS


admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class LockOutAdmin(AccessAttemptAdmin):
    """django-axes's list of failed log-ins and lock-outs, with its clean-up action fixed:
    the cool-off counts back from the request's time, which axes sets on log-in requests
    only, so on the admin's request the action failed (500)."""

    @admin.action(description=AccessAttemptAdmin.cleanup_expired_attempts.short_description)
    def cleanup_expired_attempts(self, request, queryset):
        AxesProxyHandler.update_request(request)
        return super().cleanup_expired_attempts(request, queryset)


admin.site.unregister(User)


@admin.register(User)
class UserWithUsageAdmin(TokenColumns, UserAdmin):
    """Django's user admin, with the tokens each user's runs used in all."""

    list_display = (*UserAdmin.list_display, *USAGE_FIELDS)

    def get_queryset(self, request):
        totals = {name: Sum(f"conversations__runs__{name}") for name in USAGE_FIELDS}
        return super().get_queryset(request).annotate(**totals)
