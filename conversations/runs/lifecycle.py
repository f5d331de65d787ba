"""Starts the agent runtime with the ASGI app, before the first websocket is served.

uvicorn (and hypercorn) send ASGI lifespan events; daphne sends none, so under daphne
the runtime starts as soon as Twisted's reactor runs, and closes before it shuts down.
"""

from __future__ import annotations

import asyncio
import gc
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
                settle_garbage_collector()
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
            task.add_done_callback(_started)

        reactor.callWhenRunning(start)
        reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromFuture(loop.create_task(close_runtime())))


def _started(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception():
        logger.error("agent runtime failed to start: %s (retried on the next request)", task.exception())
    else:
        settle_garbage_collector()


# Container objects allocated (net) between two collections of the youngest generation;
# Python's default is 700.
YOUNG_COLLECTION_THRESHOLD = 10_000


def settle_garbage_collector() -> None:
    """Once the server process has started: what it made at startup (Django, LangGraph,
    the graph: some 200,000 objects) lives as long as the process, so it is moved out of
    the collector's generations, and the youngest generation is collected less often.

    A turn allocates many short-lived objects, most freed by reference counting; with
    the default thresholds the collector runs many times a second under load and walks
    every startup object at each full collection. Cycles are still collected.
    """
    gc.collect()  # what startup left as garbage is freed, not frozen
    gc.freeze()
    _, *older = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *older)
