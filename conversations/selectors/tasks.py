"""The tasks the agent's tools created for a user."""

from __future__ import annotations

from agent.models import Task


def task_list(*, user) -> list[Task]:
    return list(Task.objects.filter(user=user).order_by("-created_at"))
