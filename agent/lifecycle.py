"""Starts the agent runtime with the ASGI app, before the first websocket is served.

uvicorn (and hypercorn) send ASGI lifespan events; daphne sends none, so under daphne
the runtime starts as soon as Twisted's reactor runs, and closes before it shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from .runtime import close_runtime, get_runtime

logger = logging.getLogger(__name__)


class RuntimeLifecycle:
    def __init__(self, app):
        self.app = app
        self._hook_into_twisted()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        return await self.app(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await get_runtime()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await close_runtime()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _hook_into_twisted(self) -> None:
        if "twisted.internet.reactor" not in sys.modules:
            return
        from twisted.internet import reactor
        from twisted.internet.defer import Deferred

        loop = getattr(reactor, "_asyncioEventloop", None)
        if loop is None:
            return

        def start() -> None:
            task = loop.create_task(get_runtime())
            task.add_done_callback(_log_start_failure)

        reactor.callWhenRunning(start)
        reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromFuture(loop.create_task(close_runtime())))


def _log_start_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception():
        logger.error("agent runtime failed to start: %s (retried on the next request)", task.exception())
