"""HTML pages and the JSON API of docs/protocol.md; thin adapters over selectors and services."""

from __future__ import annotations

import asyncio
import functools
import json

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpResponse, JsonResponse, RawPostDataException
from django.shortcuts import render
from django.utils.text import slugify

from . import exports
from .errors import Invalid, NotFound
from .pages import message_page_data
from .presenters import approval_data, conversation_data, line_message_data, task_data
from .runs.runtime import get_runtime
from .selectors.approvals import approval_list
from .selectors.conversations import aconversation_for_user, conversation_for_user, conversation_list
from .selectors.messages import MESSAGE_PAGE_MAX, MESSAGE_PAGE_SIZE, message_list
from .selectors.tasks import task_list
from .services.conversations import TITLE_MAX_CHARS, aconversation_delete, aconversation_update, conversation_create
from .validation import unstorable

JSON_BODY_MAX_BYTES = 64 * 1024
HEALTH_TIMEOUT_SECONDS = 5


@login_required
def chat_page(request, conversation_id=None):
    if conversation_id is not None:
        try:
            conversation_for_user(user=request.user, conversation_id=conversation_id)
        except NotFound:
            raise Http404 from None
    return render(
        request,
        "conversations/chat.html",
        {"conversation_id": str(conversation_id or ""), "offline_model": settings.CHAT_MODEL == "offline"},
    )


class BadRequest(Exception):
    pass


def api(*methods: str):
    """An async JSON endpoint: login (401), allowed methods (405), 404 for unknown or foreign ids."""

    def decorate(view):
        @functools.wraps(view)
        async def wrapper(request, *args, **kwargs):
            user = await request.auser()
            if not user.is_authenticated:
                return JsonResponse({"error": "not_logged_in", "message": "log in first"}, status=401)
            if request.method not in methods:
                return JsonResponse({"error": "method_not_allowed", "message": f"use {', '.join(methods)}"}, status=405)
            request.user = user
            try:
                return await view(request, *args, **kwargs)
            except NotFound:
                return JsonResponse({"error": "not_found", "message": "no such conversation"}, status=404)
            except (BadRequest, Invalid) as error:
                return JsonResponse({"error": "bad_request", "message": str(error)}, status=400)

        return wrapper

    return decorate


def json_body(request) -> dict:
    try:
        body = json.loads(raw_body(request) or b"{}")
    except (ValueError, RecursionError):
        raise BadRequest("the body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def raw_body(request) -> bytes:
    try:
        body = request.body
    except RequestDataTooBig:  # past Django's own limit, far above ours
        body = None
    except RawPostDataException:  # already read as a multipart form, so not JSON
        raise BadRequest("the body must be JSON") from None
    if body is None or len(body) > JSON_BODY_MAX_BYTES:
        raise BadRequest(f"the body is at most {JSON_BODY_MAX_BYTES} bytes")
    return body


def storable(text: str, name: str) -> str:
    if unstorable(text):
        raise BadRequest(f"'{name}' may not contain NUL or unpaired surrogates")
    return text


def title_from(body: dict, *, required: bool) -> str:
    title = body.get("title", None if required else "")
    if not isinstance(title, str) or (required and not title.strip()):
        raise BadRequest("'title' must be a non-empty string")
    if len(title) > TITLE_MAX_CHARS:
        raise BadRequest(f"'title' is at most {TITLE_MAX_CHARS} characters")
    return storable(title, "title")


def model_from(body: dict) -> str | None:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string")
    return model


@api("GET", "POST")
async def conversations_api(request):
    if request.method == "POST":
        body = json_body(request)
        conversation = await sync_to_async(conversation_create)(
            user=request.user, title=title_from(body, required=False), model=model_from(body) or ""
        )
        return JsonResponse(conversation_data(conversation), status=201)
    try:
        page = await sync_to_async(conversation_list)(
            user=request.user,
            q=storable(request.GET.get("q", "").strip()[:200], "q"),
            cursor=request.GET.get("cursor", ""),
        )
    except ValueError as error:
        raise BadRequest(str(error)) from None
    return JsonResponse({"results": [conversation_data(c) for c in page.conversations], "next": page.next_cursor})


@api("GET", "PATCH", "DELETE")
async def conversation_api(request, conversation_id):
    conversation = await aconversation_for_user(user=request.user, conversation_id=conversation_id)
    if request.method == "PATCH":
        body = json_body(request)
        if "title" not in body and "model" not in body:
            raise BadRequest("give a 'title' or a 'model'")
        title = title_from(body, required=True) if "title" in body else None
        conversation = await aconversation_update(conversation=conversation, title=title, model=model_from(body))
    elif request.method == "DELETE":
        await aconversation_delete(conversation=conversation)
        return HttpResponse(status=204)
    return JsonResponse(conversation_data(conversation))


@api("GET")
async def messages_api(request, conversation_id):
    """Every message of the line shown; with `before` (a cursor) or `limit`, one page."""
    conversation = await aconversation_for_user(user=request.user, conversation_id=conversation_id)
    if "before" not in request.GET and "limit" not in request.GET:
        shown = await sync_to_async(message_list)(conversation=conversation)
        return JsonResponse({"results": [line_message_data(m) for m in shown], "has_older": False, "older_cursor": None})
    limit = page_limit(request.GET.get("limit"))
    try:
        page = await sync_to_async(message_page_data)(
            conversation=conversation, cursor=request.GET.get("before", ""), limit=limit
        )
    except ValueError as error:
        raise BadRequest(str(error)) from None
    return JsonResponse({"results": page.pop("messages"), **page})


def page_limit(value: str | None) -> int:
    if value is None:
        return MESSAGE_PAGE_SIZE
    try:
        limit = int(value)
    except ValueError:  # not a number, or thousands of digits
        limit = 0
    if not 1 <= limit <= MESSAGE_PAGE_MAX:
        raise BadRequest(f"'limit' is a number from 1 to {MESSAGE_PAGE_MAX}")
    return limit


@api("GET")
async def export_api(request, conversation_id):
    conversation = await aconversation_for_user(user=request.user, conversation_id=conversation_id)
    kind = request.GET.get("format", "json")
    if kind not in exports.FORMATS:
        raise BadRequest(f"'format' is one of {', '.join(exports.FORMATS)}")
    body, content_type, extension = await sync_to_async(exports.export_conversation)(conversation=conversation, kind=kind)
    response = HttpResponse(body, content_type=content_type)
    filename = f"{slugify(conversation.title) or 'conversation'}-{conversation.id}.{extension}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@api("GET")
async def models_api(request):
    """The models a conversation may use; `default` answers those that chose none."""
    return JsonResponse({"default": settings.CHAT_MODEL, "models": [{"id": name} for name in settings.CHAT_MODELS]})


@api("GET")
async def approvals_api(request):
    try:
        approvals = await sync_to_async(approval_list)(user=request.user, status=request.GET.get("status", "pending"))
    except ValueError as error:
        raise BadRequest(str(error)) from None
    return JsonResponse({"results": [approval_data(a) for a in approvals]})


@api("GET")
async def tasks_api(request):
    tasks = await sync_to_async(task_list)(user=request.user)
    return JsonResponse({"results": [task_data(task) for task in tasks]})


@login_required
def approvals_page(request):
    return render(request, "conversations/approvals.html")


@login_required
def tasks_page(request):
    return render(request, "conversations/tasks.html", {"tasks": task_list(user=request.user)})


async def healthz(request):
    checks = {"database": "ok", "checkpointer": "ok"}
    try:
        await sync_to_async(_check_database)()
    except Exception as error:
        checks["database"] = f"failed: {type(error).__name__}"
    try:
        runtime = await asyncio.wait_for(get_runtime(), HEALTH_TIMEOUT_SECONDS)
        await asyncio.wait_for(runtime.checkpointer.check(), HEALTH_TIMEOUT_SECONDS)
    except Exception as error:
        checks["checkpointer"] = f"failed: {type(error).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(checks, status=200 if healthy else 503)


def _check_database() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
