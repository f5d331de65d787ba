"""Runs agent turns as asyncio tasks of the server process, independent of any socket.

Runs of one conversation execute one after another, in the order they were accepted;
runs of different conversations execute concurrently. Every event is published after
the change it reports is committed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import uuid
from collections import defaultdict

import django.db
import psycopg
import psycopg_pool
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections

from langchain_core.messages import HumanMessage, RemoveMessage
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.types import Command

from agent import ledger
from agent.context import RUN_METADATA_KEY, ChatContext, RunGone
from agent.graph import MODEL_NODE, TooManySteps, recursion_limit
from agent.model_calls import ModelCallFailed, Usage
from chatproject.logs import log_failure

from .. import events
from ..checkpoints import TRIM_SLACK
from ..models import Conversation, Message, Run
from ..errors import Conflict
from ..selectors.approvals import aapproval_resume_values
from ..selectors.branches import afork_checkpoint
from ..selectors.runs import aheld_runs, arun_so_far
from . import transitions
from .attempt import RunEvents
from .control import CONTROL_GROUP, arun_stop_request
from .transcript import chat_context
from .transitions import StartedRun

logger = logging.getLogger(__name__)

TRANSIENT_DATABASE_ERRORS = (
    django.db.OperationalError,
    django.db.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
    psycopg_pool.PoolTimeout,
)


class RunExecutor:
    def __init__(self, graph):
        self.graph = graph
        # Who holds a run: unique per process start, so a restarted pid is a new owner.
        self.owner = f"{_machine()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._conversation_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: dict[str, asyncio.Task] = {}
        # Runs of this process that could not start yet (an earlier run of their
        # conversation was active), by conversation: submitted again when a run there ends.
        self._deferred: defaultdict[str, set[str]] = defaultdict(set)
        # Runs as they were submitted (already started, if their send started them), then
        # as they started: starting or finishing one needs no second read.
        self._submitted: dict[str, Run | StartedRun] = {}
        self._started: dict[str, Run] = {}
        # The events of each attempt executing here: its end stores the last reply they hold.
        self._turns: dict[str, RunEvents] = {}
        self._cancel_requested: set[str] = set()
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
                return await self.start_next(str(run.conversation_id))
            if run.status == Run.Status.WAITING:
                raise Conflict("the run is no longer waiting")
        if not self.cancel(run.id):
            await arun_stop_request(run.id)

    def submit(self, run: Run, *, started: StartedRun | None = None) -> None:
        """Execute the run here when its turn comes; `started`: its send began its first attempt."""
        if str(run.id) not in self._tasks:
            self._submitted[str(run.id)] = started or run
        self._submit(run.id, run.conversation_id)

    def _submit(self, run_id, conversation_id) -> None:
        run_id, conversation_id = str(run_id), str(conversation_id)
        if run_id in self._tasks:
            return
        self._tasks[run_id] = asyncio.create_task(self._run_in_order(run_id, conversation_id), name=f"run-{run_id}")

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
                    self._submit(run_id, conversation_id)
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
        task = self._tasks.get(str(run_id))
        if task is None or task.done():
            return False
        self._cancel_requested.add(str(run_id))
        task.cancel()
        return True

    async def shutdown(self) -> None:
        """Stop executing, and give up the leases so another process resumes at once."""
        tasks = [t for t in [self._maintenance, self._control, *self._tasks.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await transitions.arun_release_leases(owner=self.owner)

    async def _run_in_order(self, run_id: str, conversation_id: str) -> None:
        started = True
        try:
            async with self._conversation_locks[conversation_id]:
                started = await self._execute(run_id, conversation_id)
        except asyncio.CancelledError:
            if run_id not in self._cancel_requested:
                raise  # the process is shutting down; the run stays on record as it is
            await self._stopped(run_id, conversation_id)
        except RunGone:  # deleted with its conversation: its end cleans up after it
            await self._finish(run_id, conversation_id, Run.Status.CANCELLED)
        except TRANSIENT_DATABASE_ERRORS as exc:
            # The database went away: keep the run (it is still held here and its lease
            # runs out if this process dies); maintenance resumes it from its checkpoint.
            logger.warning("run %s stopped on a database error, will resume: %s", run_id, exc)
            # A last reply not stored yet is stored when the run resumes: its checkpoint has it.
            await sync_to_async(close_old_connections)()
            started = False
        except FAILURES_IN_WORDS as exc:
            logger.warning("run %s failed: %s", run_id, exc)
            await self._finish(run_id, conversation_id, Run.Status.FAILED, error=str(exc))
        except Exception as exc:
            log_failure(logger, "run %s failed", run_id, error=exc)
            await self._finish(run_id, conversation_id, Run.Status.FAILED, error=INTERNAL_ERROR)
        finally:
            self._tasks.pop(run_id, None)
            self._submitted.pop(run_id, None)
            self._started.pop(run_id, None)
            self._turns.pop(run_id, None)
            self._cancel_requested.discard(run_id)
        if started:
            await self.start_next(conversation_id)
        else:
            self._deferred[conversation_id].add(run_id)

    async def start_next(self, conversation_id: str) -> None:
        """Submit this process's runs of the conversation that waited for their turn: one
        may have it now. (Those of other processes, and any missed here, are submitted by
        their process's maintenance round.)"""
        for run_id in self._deferred.pop(conversation_id, ()):
            self._submit(run_id, conversation_id)

    async def _stopped(self, run_id: str, conversation_id: str) -> None:
        """End a run the user stopped, with the outcome of each tool it was running: a
        tool is let finish (a thread cannot be interrupted), or its outcome is unknown."""
        attempt = self._turns.get(run_id)
        try:
            for outcome in await ledger.settle_stopped(run_id):
                if attempt is not None:
                    await attempt.store_tool_outcome(outcome)
        except RunGone:
            pass  # deleted meanwhile: its end cleans up after it
        await self._finish(run_id, conversation_id, Run.Status.CANCELLED)

    async def _finish(self, run_id: str, conversation_id: str, status: str, error: str | None = None) -> None:
        """End the run, noting its last checkpoint: the next turn of its line forks from it."""
        checkpoint_id = self.graph.checkpointer.take_last_written(conversation_id, run_id) or await self._last_checkpoint(
            conversation_id, run_id
        )
        started = self._started.get(run_id)
        attempt = self._turns.get(run_id)
        # Trimmed before the run is reported ended, so whoever sees it ended sees its
        # conversation's checkpoints as they stay.
        ended = await transitions.arun_finish(
            run_id=run_id, status=status, error=error, checkpoint_id=checkpoint_id, run=started,
            model=attempt.model if attempt is not None else "",
            usage=attempt.usage_total() if attempt is not None else None,
            reply=attempt.take_reply() if attempt is not None else None,
            # Counted only every few runs: a count per run was a query a turn for nothing.
            trim=self.graph.checkpointer.count_due(conversation_id, every=TRIM_SLACK),
        )
        if ended is None:  # deleted (with its conversation): nothing to tell, what it wrote goes
            return await self._forget_deleted(run_id, conversation_id)
        # Text streamed but not stored is not a reply any more: this attempt's, or that of
        # an attempt that died with its process. A first attempt that stored all it
        # streamed left none.
        if attempt is None or attempt.partial or attempt.streamed_reasoning or started is None or started.attempts > 1:
            for partial in (await events.stream_state(conversation_id))[1]:
                if partial["run_id"] == run_id:
                    await events.forget_partial(conversation_id, run_id=run_id, message_id=partial["message_id"])

    async def _forget_deleted(self, run_id: str, conversation_id: str) -> None:
        """The run was found gone at its end. If its conversation was deleted (the delete
        took the checkpoints written before), delete those it wrote since, and forget its
        stream's state. Through the saver that wrote them: its writes still on their way
        (LangGraph records a stopped step's error after the stop) are ahead of the delete,
        as the SQLite saver makes each wait for the one before."""
        if await Conversation.objects.filter(pk=conversation_id).aexists():
            logger.info("run %s stopped: it was deleted", run_id)
            return
        await self.graph.checkpointer.adelete_thread(conversation_id)
        await events.forget(conversation_id)
        logger.info("run %s stopped: its conversation was deleted", run_id)

    async def _last_checkpoint(self, conversation_id: str, run_id: str) -> str:
        """The id of the thread's latest checkpoint if the run wrote it (in an earlier
        attempt, or on another process), read from the saver; else ""."""
        latest = await self.graph.checkpointer.aget_tuple({"configurable": {"thread_id": conversation_id, "checkpoint_ns": ""}})
        own = latest is not None and latest.metadata.get(RUN_METADATA_KEY) == run_id
        return latest.config["configurable"]["checkpoint_id"] if own else ""

    async def _execute(self, run_id: str, conversation_id: str) -> bool:
        """Drive the run until it ends or waits; False if it could not start (not its turn,
        or another process holds it)."""
        submitted = self._submitted.pop(run_id, None)
        if isinstance(submitted, StartedRun):
            started = submitted  # its send started it, and reported it started
        else:
            started = await transitions.arun_start(run_id=run_id, owner=self.owner, known=submitted)
            if started is None:
                return False
        run = self._started[run_id] = started.run
        self.graph.checkpointer.forget_last_written(conversation_id)
        if run.attempts > settings.RUN_MAX_ATTEMPTS:
            raise RunGaveUp(f"The reply was interrupted {run.attempts - 1} times (the server stopped while writing it), so it was given up.")
        user_message = run.user_message
        context = chat_context(
            conversation_id=conversation_id,
            user_id=user_message.conversation.user_id,
            run_id=run_id,
            branch_id=str(run.branch_id) if run.branch_id else None,
            turn_at=user_message.turn_at,
            model=user_message.conversation.chat_model,
        )
        config = {
            "configurable": {"thread_id": conversation_id},
            "metadata": {RUN_METADATA_KEY: run_id},
            "recursion_limit": recursion_limit(),
        }
        turn = self._turns[run_id] = RunEvents(
            conversation_id=conversation_id, run_id=run_id, branch_id=run.branch_id, turn_at=user_message.turn_at,
            model=context.model,
        )
        # A run's first start has no checkpoint of its own to look for, nor any usage.
        may_have_checkpoints = not started.first_start
        if may_have_checkpoints:
            earlier = await arun_so_far(run_id=run_id)
            turn.stored |= earlier.stored
            turn.usage.update({key: Usage(**fields) for key, fields in earlier.usage.items()})
        while True:
            graph_input, stream_config = await self._input_for(started, config, turn, may_have_checkpoints)
            may_have_checkpoints = True
            if graph_input is DONE:
                await self._finish(run_id, conversation_id, Run.Status.SUCCEEDED)
                return True
            if graph_input is WAIT:
                await turn.store_reply()  # before the run is reported waiting
                if await transitions.arun_wait(run_id=run_id) is None:
                    continue  # decided meanwhile: resume now
                return True
            if not await self._stream(graph_input, stream_config, context, turn):
                await self._finish(run_id, conversation_id, Run.Status.SUCCEEDED)
                return True

    async def _stream(self, graph_input, config: dict, context: ChatContext, turn: RunEvents) -> bool:
        """Drive the graph until it ends or pauses; True if it paused for approvals."""
        try:
            async for mode, payload in self.graph.astream(
                graph_input,
                config,
                context=context,
                stream_mode=["updates", "custom"],
                durability="sync",
            ):
                if mode == "custom":
                    await turn.on_custom(payload)
                else:
                    await turn.on_update(payload)
        except asyncio.CancelledError:
            if context.run_id in self._cancel_requested:
                await turn.keep_partial_reply(stopped=True)
            raise
        except TRANSIENT_DATABASE_ERRORS:
            raise  # the run resumes from its checkpoint, and writes the reply again
        except Exception:
            # What the model server sent before it failed stays, marked as cut off.
            await turn.keep_partial_reply(incomplete=Message.Incomplete.ERROR)
            raise
        return turn.take_interrupted()

    async def _input_for(self, started: StartedRun, config: dict, turn: RunEvents, may_have_checkpoints: bool):
        """Where the run goes on, and from which checkpoint: its message if new (from the
        last checkpoint of its line), its decisions if it paused for approvals, or its last
        checkpoint if its process died."""
        run, user_message = started.run, started.run.user_message
        state = await self.graph.aget_state(config) if may_have_checkpoints else None
        if state is not None and state.metadata and state.metadata.get(RUN_METADATA_KEY) == str(run.id):
            if state.interrupts:
                await turn.record_approvals(state.interrupts)  # a crash may have come first
                decisions = await aapproval_resume_values(
                    run_id=run.id, interrupt_ids=[i.id for i in state.interrupts]
                )
                return (WAIT if decisions is None else Command(resume=decisions)), config
            if state.next:
                return None, config  # resume where the checkpoint left off
            # The graph finished but the process died before recording it.
            await turn.on_update({"recovered": {"messages": state.values.get("messages", [])}})
            return DONE, config
        fresh = {
            "messages": [
                RemoveMessage(id=REMOVE_ALL_MESSAGES),
                HumanMessage(content=user_message.content, id=str(user_message.id)),
            ]
        }
        if started.follows_a_finished_graph:
            # Straight to the model: as a Command the message is written beside the
            # thread's last checkpoint, with no input checkpoint and no START step (one
            # checkpoint a turn instead of three). Only after a run that succeeded: a
            # Command, unlike an input, keeps the steps a stopped run left unfinished,
            # and would run them again (a tool call waiting for approval, say).
            return Command(update=fresh, goto=MODEL_NODE), config
        fork_from = await afork_checkpoint(run=run)
        if fork_from is None:
            return fresh, config
        return fresh, {**config, "configurable": {**config["configurable"], "checkpoint_id": fork_from}}


DONE = object()
WAIT = object()


class RunGaveUp(Exception):
    pass


# Failures whose text is written for the user; any other is an internal error.
FAILURES_IN_WORDS = (ModelCallFailed, TooManySteps, RunGaveUp)
INTERNAL_ERROR = "The agent stopped because of an internal error. The details are in the server's log."


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

