"""The conversation websocket (docs/protocol.md): a thin adapter over services, which
publish what they change, and the executor."""

from __future__ import annotations

import json
import logging

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import events, limits
from .errors import Conflict, Invalid, NotFound
from .pages import asnapshot_data
from .runs.runtime import get_runtime
from .selectors.conversations import aconversation_for_user
from .selectors.messages import aclient_id_seen
from .selectors.runs import aactive_run, aactive_runs, arun_for_conversation
from .services.approvals import aapproval_decide
from .services.branches import abranch_switch
from .services.turns import amessage_edit, amessage_send, areply_regenerate, arun_retry
from .validation import unstorable

logger = logging.getLogger(__name__)

CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY_SOCKETS = 4429


class FrameError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ConversationConsumer(AsyncWebsocketConsumer):
    conversation = None
    socket_slot = None
    # Closed because the conversation was deleted.
    deleted = False

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Here rather than in disconnect(), which a consumer that died of an error skips.
            if self.socket_slot is not None:
                await self.socket_slot.release()

    async def connect(self):
        user = self.scope.get("user")
        # Accept first so the close code can tell the client why; no data is sent.
        if not getattr(user, "is_authenticated", False):
            await self.accept()
            await self.close(code=CLOSE_NOT_LOGGED_IN)
            return
        try:
            conversation = await aconversation_for_user(
                user=user, conversation_id=self.scope["url_route"]["kwargs"]["conversation_id"]
            )
        except NotFound:
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.socket_slot = limits.SocketSlot(user)
        if not await self.socket_slot.acquire():
            await self.accept()
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            return
        self.conversation = conversation
        self.runtime = await get_runtime()
        self.group = events.group_name(self.conversation.id)
        # Join before reading the snapshot, so no change falls between the two.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_snapshot()

    async def disconnect(self, code):
        if self.conversation is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def send_snapshot(self):
        seq, partials = await events.stream_state(self.conversation.id)
        snapshot = await asnapshot_data(conversation=self.conversation, partials=partials)
        await self.send_frame({"type": "snapshot", **snapshot, "seq": seq})

    async def dispatch(self, message):
        # A relayed event touches no database: skip channels' close_old_connections, a
        # hop to the ORM thread (and a health-check query after it) for every token.
        if message["type"] == "conversation.event":
            await self.conversation_event(message)
        else:
            await super().dispatch(message)

    async def conversation_event(self, event):
        for text in event["texts"]:  # encoded once, by events.publish
            await self.send(text_data=text)

    async def conversation_resync(self, event):
        await self.send_snapshot()

    async def conversation_deleted(self, event):
        await self.close_deleted()

    async def close_deleted(self):
        """The conversation is gone: `not_found`, then closed as for one that never was
        (4404), once."""
        if not self.deleted:
            self.deleted = True
            await self.send_frame({"type": "error", "code": "not_found", "message": "this conversation was deleted"})
            await self.close(code=CLOSE_NOT_FOUND)

    async def send_frame(self, frame: dict):
        await self.send(text_data=json.dumps(frame))

    async def receive(self, text_data=None, bytes_data=None):
        if self.deleted:
            return  # sent before the close reached the client, which tells it all
        try:
            frame = self.parse(text_data, bytes_data)
            handler = self.HANDLERS.get(frame["type"])
            if handler is None:
                raise FrameError("bad_request", f"unknown frame type {frame['type']!r}")
            await handler(self, frame)
        except FrameError as error:
            await self.send_frame({"type": "error", "code": error.code, "message": error.message})
        except limits.RateLimited as limited:
            await self.send_frame(
                {"type": "error", "code": "rate_limited", "message": str(limited), "retry_after": limited.retry_after}
            )
        except NotFound:
            await self.refuse("not_found", "no such object in this conversation")
        except Conflict as conflict:
            await self.refuse("conflict", str(conflict))

    async def refuse(self, code: str, message: str):
        """Answer a refused frame with an error; one refused because the conversation was
        deleted (before this socket was told) closes it as deleted."""
        if await self.conversation_gone():
            return await self.close_deleted()
        await self.send_frame({"type": "error", "code": code, "message": message})

    async def conversation_gone(self) -> bool:
        try:
            await aconversation_for_user(user=self.scope["user"], conversation_id=self.conversation.id)
        except NotFound:
            return True
        return False

    @staticmethod
    def parse(text_data, bytes_data) -> dict:
        raw = text_data if text_data is not None else bytes_data or b""
        size = len(raw.encode() if isinstance(raw, str) else raw)
        if size > settings.WS_MAX_FRAME_BYTES:
            raise FrameError("too_large", f"frames are at most {settings.WS_MAX_FRAME_BYTES} bytes")
        if text_data is None:
            raise FrameError("bad_request", "frames are JSON text, not binary")
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):
            raise FrameError("bad_request", "a frame must be a JSON object") from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise FrameError("bad_request", "a frame must be a JSON object with a string 'type'")
        if unstorable(frame):
            raise FrameError("bad_request", "frames may not contain NUL or unpaired surrogates")
        return frame

    @staticmethod
    def content_of(frame) -> str:
        content = frame.get("content")
        if not isinstance(content, str) or not content.strip():
            raise FrameError("bad_request", "'content' must be a non-empty string")
        if len(content) > settings.MESSAGE_MAX_CHARS:
            raise FrameError("too_large", f"'content' is at most {settings.MESSAGE_MAX_CHARS} characters")
        return content

    @staticmethod
    def client_id_of(frame) -> str | None:
        client_id = frame.get("client_id")
        if client_id is not None and (not isinstance(client_id, str) or not 0 < len(client_id) <= settings.CLIENT_ID_MAX_CHARS):
            raise FrameError("bad_request", f"'client_id' must be a string of 1 to {settings.CLIENT_ID_MAX_CHARS} characters")
        return client_id

    @staticmethod
    def id_of(frame, field: str) -> str:
        value = frame.get(field)
        if not isinstance(value, str) or not value:
            raise FrameError("bad_request", f"'{field}' must be a string")
        return value

    async def on_message_send(self, frame):
        content = self.content_of(frame)
        client_id = self.client_id_of(frame)
        if not await self.counted_as_new(client_id):
            return
        if settings.DOUBLE_TEXTING == "interrupt":
            for active in await aactive_runs(conversation_id=self.conversation.id):
                await self.runtime.executor.request_cancel(active, user=self.scope["user"])
        accepted = await amessage_send(
            conversation=self.conversation,
            content=content,
            client_id=client_id,
            owner=self.runtime.executor.owner,
            reject_if_busy=settings.DOUBLE_TEXTING == "reject",
        )
        if accepted.created:
            self.runtime.executor.submit(accepted.run, started=accepted.started)

    async def on_message_edit(self, frame):
        await self.fork(
            amessage_edit,
            message_id=self.id_of(frame, "message_id"),
            content=self.content_of(frame),
            client_id=self.client_id_of(frame),
        )

    async def on_message_regenerate(self, frame):
        await self.fork(
            areply_regenerate, message_id=self.id_of(frame, "message_id"), client_id=self.client_id_of(frame)
        )

    async def counted_as_new(self, client_id: str | None) -> bool:
        """A send, edit or regenerate is counted against the message limit, unless its
        client_id was seen here: sent again (a client retrying after a reconnect), it
        creates nothing and is not counted."""
        if await aclient_id_seen(conversation=self.conversation, client_id=client_id):
            return False
        await limits.acheck_rate(user=self.scope["user"], action="messages")
        return True

    async def fork(self, service, **fields):
        """Edit, regenerate or retry: a new run, most often on a new branch; every socket
        is sent the line as it is now."""
        if not await self.counted_as_new(fields["client_id"]):
            return
        try:
            accepted = await service(conversation=self.conversation, owner=self.runtime.executor.owner, **fields)
        except Invalid as error:
            raise FrameError("bad_request", str(error)) from None
        if accepted.created:
            self.runtime.executor.submit(accepted.run, started=accepted.started)

    async def on_branch_switch(self, frame):
        if (frame.get("message_id") is None) == (frame.get("branch_id") is None):
            raise FrameError("bad_request", "give one of 'message_id' or 'branch_id'")
        field = "message_id" if frame.get("message_id") is not None else "branch_id"
        await abranch_switch(conversation=self.conversation, **{field: self.id_of(frame, field)})

    async def on_run_cancel(self, frame):
        run_id = frame.get("run_id")
        if run_id is None:
            run = await aactive_run(conversation_id=self.conversation.id)
            if run is None:
                raise Conflict("no run is active")
        else:
            run = await arun_for_conversation(conversation=self.conversation, run_id=run_id)
        if run.status not in run.ACTIVE:
            raise Conflict(f"the run has already ended ({run.status})")
        await self.runtime.executor.request_cancel(run, user=self.scope["user"])

    async def on_run_retry(self, frame):
        await self.fork(
            arun_retry, run_id=self.id_of(frame, "run_id"), client_id=self.client_id_of(frame)
        )

    async def on_approval_decide(self, frame):
        approval_id = self.id_of(frame, "approval_id")
        await limits.acheck_rate(user=self.scope["user"], action="decisions")
        try:
            _, run = await aapproval_decide(
                user=self.scope["user"],
                approval_id=approval_id,
                decision=frame.get("decision"),
                args=frame.get("args"),
                comment=frame.get("comment") or "",
                owner=self.runtime.executor.owner,
            )
        except Invalid as error:
            raise FrameError("bad_request", str(error)) from None
        if run is not None:
            self.runtime.executor.submit(run)

    async def on_ping(self, frame):
        await self.send_frame({"type": "pong"})

    HANDLERS = {
        "message.send": on_message_send,
        "message.edit": on_message_edit,
        "message.regenerate": on_message_regenerate,
        "branch.switch": on_branch_switch,
        "run.cancel": on_run_cancel,
        "run.retry": on_run_retry,
        "approval.decide": on_approval_decide,
        "ping": on_ping,
    }

