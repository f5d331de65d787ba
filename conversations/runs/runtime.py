"""One agent runtime per server process and event loop: checkpointer, graph, executor.

A pool or saver made on one event loop fails on another, so runtimes are keyed by
loop and never shared. The server starts its runtime when the ASGI app starts
(conversations.runs.lifecycle); anything else that needs it awaits the same start.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from agent.checkpointer import Checkpointer, open_checkpointer
from agent.graph import build_graph

from .executor import RunExecutor

logger = logging.getLogger(__name__)


class AgentRuntime:
    def __init__(self, checkpointer: Checkpointer):
        self.checkpointer = checkpointer
        self.saver = checkpointer.saver
        self.graph = build_graph(checkpointer.saver)
        self.executor = RunExecutor(self.graph)

    async def close(self) -> None:
        await self.executor.shutdown()
        await self.checkpointer.close()


_starts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = weakref.WeakKeyDictionary()


async def _start() -> AgentRuntime:
    runtime = AgentRuntime(await open_checkpointer())
    runtime.executor.start()
    logger.info("agent runtime ready (%s)", type(runtime.saver).__name__)
    return runtime


async def get_runtime() -> AgentRuntime:
    """This loop's runtime, started on first use; a failed start is retried next time."""
    loop = asyncio.get_running_loop()
    start = _starts.get(loop)
    if start is None or (start.done() and (start.cancelled() or start.exception())):
        start = _starts[loop] = loop.create_task(_start())
    return await asyncio.shield(start)


async def close_runtime() -> None:
    start = _starts.pop(asyncio.get_running_loop(), None)
    if start is not None and start.done() and not start.cancelled() and not start.exception():
        await start.result().close()
        logger.info("agent runtime closed")
