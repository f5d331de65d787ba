"""Schedules runs as asyncio tasks of the server process, independent of any socket.

Runs of one conversation execute one after another, in the order they were accepted;
runs of different conversations execute concurrently. Each run executing here is one
`RunAttempt` (conversations/runs/attempt.py), which owns everything about it; the
executor keeps only the order: the attempts by run, the runs still waiting for their
turn, and the leases and stop requests of the process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import uuid
from collections import defaultdict

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections

from chatproject.logs import log_failure

from ..errors import Conflict
from ..models import Run
from ..selectors.runs import aheld_runs
from . import transitions
from .attempt import RunAttempt
from .control import CONTROL_GROUP, arun_stop_request
from .transitions import StartedRun

logger = logging.getLogger(__name__)


class RunExecutor:
    def __init__(self, graph):
        self.graph = graph
        # Who holds a run: unique per process start, so a restarted pid is a new owner.
        self.owner = f"{_machine()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # The attempt of each run executing here, from its submission until its task ends.
        self._attempts: dict[str, RunAttempt] = {}
        # The conversations with attempts here, while they have some.
        self._conversations: dict[str, _ConversationAttempts] = {}
        # Runs of this process that could not start yet (an earlier run of their
        # conversation was active), by conversation: submitted again when a run there ends.
        self._deferred: defaultdict[str, set[str]] = defaultdict(set)
        self._maintenance: asyncio.Task | None = None
        self._control: asyncio.Task | None = None
        self._control_channel = ""

    def start(self) -> None:
        """Renew this process's leases and take over expired runs, now and every few seconds;
        listen for requests to stop runs that execute here."""
        self._maintenance = asyncio.create_task(self._maintain(), name="run-leases")
        self._control = asyncio.create_task(self._listen_for_control(), name="run-control")

    async def _listen_for_control(self) -> None:
        layer = get_channel_layer()
        self._control_channel = await layer.new_channel()
        await layer.group_add(CONTROL_GROUP, self._control_channel)
        while True:
            message = await layer.receive(self._control_channel)
            if message.get("type") == "run.cancel":
                self.cancel(message["run_id"])

    async def request_cancel(self, run: Run, *, user) -> None:
        """Stop a run wherever it is: waiting (its approvals are rejected), queued (it never
        starts), executing here, or executing on another process (asked over the channel layer)."""
        if run.status in (Run.Status.WAITING, Run.Status.QUEUED):
            if await transitions.arun_cancel(run_id=run.id, seen=run.status, user=user):
                self._start_next(str(run.conversation_id))
                return
            if run.status == Run.Status.WAITING:
                raise Conflict("the run is no longer waiting")
        if not self.cancel(run.id):
            await arun_stop_request(run.id)

    def submit(self, run: Run, *, started: StartedRun | None = None) -> None:
        """Execute the run here when its turn comes; `started`: its send began its first attempt."""
        self._submit(str(run.id), str(run.conversation_id), submitted=started or run)

    def _submit(self, run_id: str, conversation_id: str, submitted: Run | StartedRun | None = None) -> None:
        if run_id in self._attempts:
            return
        attempt = self._attempts[run_id] = RunAttempt(
            run_id=run_id, conversation_id=conversation_id, submitted=submitted, graph=self.graph, owner=self.owner
        )
        attempt.task = asyncio.create_task(attempt.execute(self._joined(conversation_id).lock), name=f"run-{run_id}")
        # Not a `finally` of the task's coroutine: a task cancelled before its first step
        # (at shutdown) never runs it, while its callbacks run however it ends.
        attempt.task.add_done_callback(functools.partial(self._ended, attempt))

    def _ended(self, attempt: RunAttempt, task: asyncio.Task) -> None:
        """The attempt's task ended: the executor forgets it. Then the runs of its
        conversation that waited may start, or it waits itself if the run stays held here."""
        del self._attempts[attempt.run_id]
        self._left(attempt.conversation_id)
        if task.cancelled():
            return  # shut down: the run stays on record as it is
        error = task.exception()
        if error is not None:
            # Its end failed (the database or the channel layer went away): the run, if
            # still held here, is submitted again by the next maintenance round.
            log_failure(logger, "run %s could not end", attempt.run_id, error=error)
        elif task.result():
            self._start_next(attempt.conversation_id)
        else:
            self._deferred[attempt.conversation_id].add(attempt.run_id)

    def _joined(self, conversation_id: str) -> _ConversationAttempts:
        """The conversation, with one more attempt here."""
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            conversation = self._conversations[conversation_id] = _ConversationAttempts()
        conversation.attempts += 1
        return conversation

    def _left(self, conversation_id: str) -> None:
        """One attempt of the conversation fewer here; an idle conversation is forgotten."""
        conversation = self._conversations[conversation_id]
        conversation.attempts -= 1
        if not conversation.attempts:
            del self._conversations[conversation_id]

    def _start_next(self, conversation_id: str) -> None:
        """Submit this process's runs of the conversation that waited for their turn: one
        may have it now. (Those of other processes, and any missed here, are submitted by
        their process's maintenance round.)"""
        for run_id in self._deferred.pop(conversation_id, ()):
            self._submit(run_id, conversation_id)

    async def _maintain(self) -> None:
        while True:
            try:
                await transitions.arun_renew_leases(owner=self.owner)
                if self._control_channel:  # membership expires on Redis unless renewed
                    await get_channel_layer().group_add(CONTROL_GROUP, self._control_channel)
                # Its turn may have come when a run on another process ended, or its task
                # may have stopped on a database outage: submit what is not executing (what
                # still cannot start is deferred again, so the deferred are only those held).
                self._deferred.clear()
                for run_id, conversation_id in await aheld_runs(owner=self.owner):
                    self._submit(str(run_id), str(conversation_id))
                for run in await transitions.arun_claim_expired(owner=self.owner, dead_owner=_is_dead_local_owner):
                    logger.info("resuming run %s (its owner stopped renewing its lease)", run.id)
                    self.submit(run)
            except Exception:
                logger.exception("lease maintenance failed; retrying")
                # A database restart leaves this thread's connection broken: drop it.
                await sync_to_async(close_old_connections)()
            await asyncio.sleep(settings.RUN_RECOVERY_INTERVAL_SECONDS)

    def cancel(self, run_id) -> bool:
        """Stop a run of this process; False if it does not run here."""
        attempt = self._attempts.get(str(run_id))
        if attempt is None:
            return False
        attempt.cancel()
        return True

    async def shutdown(self) -> None:
        """Stop executing, and give up the leases so another process resumes at once."""
        attempts = [attempt.task for attempt in self._attempts.values()]
        tasks = [t for t in [self._maintenance, self._control, *attempts] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await transitions.arun_release_leases(owner=self.owner)


class _ConversationAttempts:
    """A conversation's attempts on this process: they execute one at a time, under its lock."""

    def __init__(self):
        self.lock = asyncio.Lock()
        self.attempts = 0


def _machine() -> str:
    """This host and process namespace: pids are comparable only within it."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        namespace = "?"
    return f"{socket.gethostname()}/{namespace}"


def _is_dead_local_owner(owner: str) -> bool:
    """True if the owner was a process of this machine that no longer exists: its runs
    can be taken over at once instead of when the lease runs out (a restart after a
    crash). Anything else (another machine, a live or unknown pid) waits for the lease."""
    parts = owner.split(":")  # machine, pid, nonce
    if len(parts) != 3 or parts[0] != _machine() or not parts[1].isdigit() or int(parts[1]) == os.getpid():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
