from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Logging in: throttled by django-axes (settings: LOGIN_FAILURE_LIMIT, LOGIN_COOLOFF_MINUTES)."""

    name = "accounts"

    def ready(self) -> None:
        from . import signals  # noqa: F401
