"""The agent's tools: a typed argument schema, a description for people, and the action.

Tools run inside the graph's tools node through `agent.ledger`, which makes each side
effect happen at most once per tool call.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from .context import ChatContext
from .models import Task


class ToolError(Exception):
    """The tool refused or failed; the model is told the message."""


BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def isolated(value) -> str:
    """A value inside a line of text for people (a description, a result). One holding
    bidirectional controls (a right-to-left override) comes wrapped in FSI…PDI, so they
    reorder only the value, never the rest of the line; any other comes as it is."""
    text = str(value)
    return f"\u2068{text}\u2069" if BIDI_CONTROLS.search(text) else text


class SendEmailArgs(BaseModel):
    to: EmailStr = Field(description="The recipient's e-mail address")
    subject: str = Field(min_length=1, max_length=200, description="The subject line")
    body: str = Field(max_length=20_000, description="The message text")


class CreateTaskArgs(BaseModel):
    title: str = Field(min_length=1, max_length=200, description="What is to be done")
    due: dt.date | None = Field(default=None, description="The due date (YYYY-MM-DD), if any")


class HttpPostArgs(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    url: str = Field(max_length=2000, description="An http(s) URL on an allowed host")
    payload: dict[str, Any] = Field(default_factory=dict, alias="json", description="The JSON body to send")


class NoArgs(BaseModel):
    pass


def send_email(args: SendEmailArgs, context: ChatContext) -> str:
    send_mail(args.subject, args.body, settings.DEFAULT_FROM_EMAIL, [args.to])
    return f"E-mail sent to {isolated(args.to)}."


def create_task(args: CreateTaskArgs, context: ChatContext) -> str:
    task = Task.objects.create(
        user_id=context.user_id, conversation_id=context.conversation_id, title=args.title, due=args.due
    )
    return f"Task created: {isolated(task.title)}" + (f" (due {task.due.isoformat()})" if task.due else "") + f" [{task.id}]"


def allowed_webhook_url(url: str) -> str:
    """The URL if its scheme is http(s) and its host is in WEBHOOK_ALLOWED_HOSTS; else ToolError."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ToolError("http_post needs an http:// or https:// URL")
    host_port = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    if parts.hostname not in settings.WEBHOOK_ALLOWED_HOSTS and host_port not in settings.WEBHOOK_ALLOWED_HOSTS:
        raise ToolError(f"http_post refused: {parts.hostname} is not in WEBHOOK_ALLOWED_HOSTS")
    return url


def http_post(args: HttpPostArgs, context: ChatContext) -> str:
    url = allowed_webhook_url(args.url)
    try:
        # No redirects: a redirect could lead to a host that is not allowed.
        response = httpx.post(url, json=args.payload, timeout=10, follow_redirects=False)
    except httpx.HTTPError as error:
        raise ToolError(f"http_post to {url} failed: {error}") from None
    return f"HTTP {response.status_code}: {response.text[:1000]}"


def current_time(args: NoArgs, context: ChatContext) -> str:
    return timezone.now().isoformat()


@dataclass(frozen=True)
class Tool:
    name: str
    summary: str
    args_schema: type[BaseModel]
    action: Callable[[Any, ChatContext], str]
    describe: Callable[[Any], str]

    @property
    def needs_approval(self) -> bool:
        return self.name in settings.TOOLS_REQUIRING_APPROVAL

    def validate(self, args: dict) -> BaseModel:
        return self.args_schema.model_validate(args)

    def json_schema(self) -> dict:
        return self.args_schema.model_json_schema(by_alias=True)

    def as_openai_tool(self) -> dict:
        return {"type": "function", "function": {"name": self.name, "description": self.summary, "parameters": self.json_schema()}}


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in [
        Tool("send_email", "Send one e-mail.", SendEmailArgs, send_email,
             lambda a: f"Send an e-mail to {isolated(a.to)} with the subject “{isolated(a.subject)}”"),
        Tool("create_task", "Create a task (a to-do item) for the user.", CreateTaskArgs, create_task,
             lambda a: f"Create the task “{isolated(a.title)}”" + (f", due {a.due.isoformat()}" if a.due else "")),
        Tool("http_post", "POST a JSON body to a URL on an allowed host.", HttpPostArgs, http_post,
             lambda a: f"POST JSON to {isolated(a.url)}"),
        Tool("current_time", "Return the server's current date and time (ISO 8601, UTC).", NoArgs, current_time,
             lambda a: "Read the server's clock"),
    ]
}
