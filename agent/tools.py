"""Tools the agent may call. Each has a typed argument schema."""

from django.utils import timezone
from langchain_core.tools import tool


@tool
def current_time() -> str:
    """Return the server's current date and time (ISO 8601, UTC)."""
    return timezone.now().isoformat()


TOOLS = [current_time]
