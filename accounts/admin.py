from axes.admin import AccessAttemptAdmin
from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django.contrib import admin

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
