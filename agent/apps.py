from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class AgentConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "agent"

    def ready(self):
        from .llm import UnknownModel, check_models_at_startup

        try:
            check_models_at_startup()
        except UnknownModel as error:
            raise ImproperlyConfigured(f"CHAT_MODEL / CHAT_MODELS: {error}") from None
