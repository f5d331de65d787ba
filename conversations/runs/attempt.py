"""One attempt of a run on this process: `RunAttempt` starts the run when its turn comes,
drives the graph until the run ends or waits, and ends it however it ends; `RunEvents`
turns the graph's stream into stored messages and the frames every socket of the
conversation is sent."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sqlite3

import django.db
import psycopg
import psycopg_pool
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage, ToolMessage
from langgraph.graph.message import REMOVE_ALL_MESSAGES
from langgraph.types import Command

from agent import ledger
from agent.context import RUN_METADATA_KEY, ChatContext, RunGone
from agent.graph import MODEL_NODE, TooManySteps, recursion_limit
from agent.model_calls import REASONING, ModelCallFailed, Usage
from chatproject.logs import log_failure

from .. import events
from ..checkpoints import TRIM_SLACK
from ..models import Message, Run, graph_message_id
from ..presenters import approval_data
from ..selectors.approvals import aapproval_resume_values
from ..selectors.branches import afork_checkpoint
from ..selectors.conversations import aconversation_exists
from ..selectors.runs import arun_so_far
from ..services.approvals import aapproval_create
from . import transitions
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


class RunGaveUp(Exception):
    pass


# Failures whose text is written for the user; any other is an internal error.
FAILURES_IN_WORDS = (ModelCallFailed, TooManySteps, RunGaveUp)
INTERNAL_ERROR = "The agent stopped because of an internal error. The details are in the server's log."

# Where a run goes on when it has no new input for the graph: its graph had finished
# (it ends), or it waits for decisions on its approvals.
DONE = object()
WAIT = object()


class RunAttempt:
    """One attempt of a run on this process, from its submission to its end: everything
    about it is here, and goes with it."""

    def __init__(self, *, run_id: str, conversation_id: str, submitted: Run | StartedRun | None, graph, owner: str):
        self.run_id = run_id
        self.conversation_id = conversation_id
        self.graph = graph
        # Who holds the run: this process (RunExecutor.owner).
        self.owner = owner
        # The run as it was submitted (already started, if its send started it), then as
        # it started: starting or finishing it needs no second read.
        self.submitted = submitted
        self.started: StartedRun | None = None
        # What the attempt stored and streamed: its end stores the last reply it holds.
        self.events: RunEvents | None = None
        # Set by the executor: the task that executes the attempt.
        self.task: asyncio.Task | None = None
        # The user's Stop, as opposed to the process shutting down.
        self.cancel_requested = False

    def cancel(self) -> None:
        """The user's Stop: the run ends cancelled, keeping what it wrote."""
        self.cancel_requested = True
        # A task cancelled before its first step never runs its coroutine, so the run
        # would not end: a task that has not begun sees the request as it begins.
        if inspect.getcoroutinestate(self.task.get_coro()) != inspect.CORO_CREATED:
            self.task.cancel()

    async def execute(self, in_turn: asyncio.Lock) -> bool:
        """Execute the run when it has `in_turn` (its conversation's lock on this process)
        and end it, however it ends. False if it stays as it is, held here: it could not
        start (not its turn, or another process holds it), or it stopped on a database
        outage. A run that ends other than in the graph (stopped, failed, deleted) ends
        once its lock is released: the conversation's next run may try to start first,
        and then waits for that end (it is deferred)."""
        try:
            if self.cancel_requested:
                raise asyncio.CancelledError  # stopped before it began (see cancel)
            async with in_turn:
                return await self._drive()
        except asyncio.CancelledError:
            if not self.cancel_requested:
                raise  # the process is shutting down; the run stays on record as it is
            await self._stopped()
        except RunGone:  # deleted with its conversation: its end cleans up after it
            await self._finish(Run.Status.CANCELLED)
        except TRANSIENT_DATABASE_ERRORS as exc:
            # The database went away: keep the run (it is still held here and its lease
            # runs out if this process dies); maintenance resumes it from its checkpoint.
            logger.warning("run %s stopped on a database error, will resume: %s", self.run_id, exc)
            # A last reply not stored yet is stored when the run resumes: its checkpoint has it.
            await sync_to_async(close_old_connections)()
            return False
        except FAILURES_IN_WORDS as exc:
            logger.warning("run %s failed: %s", self.run_id, exc)
            await self._finish(Run.Status.FAILED, error=str(exc))
        except Exception as exc:
            log_failure(logger, "run %s failed", self.run_id, error=exc)
            await self._finish(Run.Status.FAILED, error=INTERNAL_ERROR)
        return True

    async def _start(self) -> StartedRun | None:
        """The run in this attempt, started unless its send started it; None if it could
        not start."""
        if isinstance(self.submitted, StartedRun):
            return self.submitted  # its send started it, and reported it started
        return await transitions.arun_start(run_id=self.run_id, owner=self.owner, known=self.submitted)

    async def _drive(self) -> bool:
        """Drive the run until it ends or waits; False if it could not start."""
        started = self.started = await self._start()
        if started is None:
            return False
        self.graph.checkpointer.forget_last_written(self.conversation_id)
        if started.run.attempts > settings.RUN_MAX_ATTEMPTS:
            raise RunGaveUp(f"The reply was interrupted {started.run.attempts - 1} times (the server stopped while writing it), so it was given up.")
        context = self._context()
        self.events = RunEvents(
            conversation_id=self.conversation_id, run_id=self.run_id, branch_id=started.run.branch_id,
            turn_at=started.run.user_message.turn_at, model=context.model,
        )
        # A run's first start has no checkpoint of its own to look for, nor any usage.
        may_have_checkpoints = not started.first_start
        if may_have_checkpoints:
            await self._recall_earlier_attempts()
        config = {
            "configurable": {"thread_id": self.conversation_id},
            "metadata": {RUN_METADATA_KEY: self.run_id},
            "recursion_limit": recursion_limit(),
        }
        while True:
            graph_input, stream_config = await self._input_for(config, may_have_checkpoints)
            may_have_checkpoints = True
            if graph_input is DONE:
                await self._finish(Run.Status.SUCCEEDED)
                return True
            if graph_input is WAIT:
                await self.events.store_reply()  # before the run is reported waiting
                if await transitions.arun_wait(run_id=self.run_id) is None:
                    continue  # decided meanwhile: resume now
                return True
            if not await self._stream(graph_input, stream_config, context):
                await self._finish(Run.Status.SUCCEEDED)
                return True

    def _context(self) -> ChatContext:
        """The graph's runtime context for this attempt."""
        run = self.started.run
        return chat_context(
            conversation_id=self.conversation_id,
            user_id=run.user_message.conversation.user_id,
            run_id=self.run_id,
            branch_id=str(run.branch_id) if run.branch_id else None,
            turn_at=run.user_message.turn_at,
            model=run.user_message.conversation.chat_model,
        )

    async def _recall_earlier_attempts(self) -> None:
        """What the run's earlier attempts stored, and the tokens they used."""
        earlier = await arun_so_far(run_id=self.run_id)
        self.events.stored |= earlier.stored
        self.events.usage.update({key: Usage(**fields) for key, fields in earlier.usage.items()})

    async def _stream(self, graph_input, config: dict, context: ChatContext) -> bool:
        """Drive the graph until it ends or pauses; True if it paused for approvals."""
        turn = self.events
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
            if self.cancel_requested:
                await turn.keep_partial_reply(stopped=True)
            raise
        except TRANSIENT_DATABASE_ERRORS:
            raise  # the run resumes from its checkpoint, and writes the reply again
        except Exception:
            # What the model server sent before it failed stays, marked as cut off.
            await turn.keep_partial_reply(incomplete=Message.Incomplete.ERROR)
            raise
        return turn.take_interrupted()

    async def _input_for(self, config: dict, may_have_checkpoints: bool):
        """Where the run goes on, and from which checkpoint: its message if new (from the
        last checkpoint of its line), its decisions if it paused for approvals, or its last
        checkpoint if its process died."""
        run, user_message = self.started.run, self.started.run.user_message
        state = await self.graph.aget_state(config) if may_have_checkpoints else None
        if state is not None and state.metadata and state.metadata.get(RUN_METADATA_KEY) == self.run_id:
            if state.interrupts:
                await self.events.record_approvals(state.interrupts)  # a crash may have come first
                decisions = await aapproval_resume_values(
                    run_id=run.id, interrupt_ids=[i.id for i in state.interrupts]
                )
                return (WAIT if decisions is None else Command(resume=decisions)), config
            if state.next:
                return None, config  # resume where the checkpoint left off
            # The graph finished but the process died before recording it.
            await self.events.on_update({"recovered": {"messages": state.values.get("messages", [])}})
            return DONE, config
        fresh = {
            "messages": [
                RemoveMessage(id=REMOVE_ALL_MESSAGES),
                HumanMessage(content=user_message.content, id=str(user_message.id)),
            ]
        }
        if self.started.follows_a_finished_graph:
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

    async def _stopped(self) -> None:
        """End a run the user stopped, with the outcome of each tool it was running: a
        tool is let finish (a thread cannot be interrupted), or its outcome is unknown."""
        try:
            for outcome in await ledger.settle_stopped(self.run_id):
                if self.events is not None:
                    await self.events.store_tool_outcome(outcome)
        except RunGone:
            pass  # deleted meanwhile: its end cleans up after it
        await self._finish(Run.Status.CANCELLED)

    async def _finish(self, status: str, error: str | None = None) -> None:
        """End the run, noting its last checkpoint: the next turn of its line forks from it."""
        checkpointer, turn = self.graph.checkpointer, self.events
        checkpoint_id = checkpointer.take_last_written(self.conversation_id, self.run_id) or await self._last_checkpoint()
        # Trimmed before the run is reported ended, so whoever sees it ended sees its
        # conversation's checkpoints as they stay.
        ended = await transitions.arun_finish(
            run_id=self.run_id, status=status, error=error, checkpoint_id=checkpoint_id,
            run=self.started.run if self.started is not None else None,
            model=turn.model if turn is not None else "",
            usage=turn.usage_total() if turn is not None else None,
            reply=turn.take_reply() if turn is not None else None,
            # Counted only every few runs: a count per run was a query a turn for nothing.
            trim=checkpointer.count_due(self.conversation_id, every=TRIM_SLACK),
        )
        if ended is None:  # deleted (with its conversation): nothing to tell, what it wrote goes
            return await self._forget_deleted()
        # Text streamed but not stored is not a reply any more: this attempt's, or that of
        # an attempt that died with its process. A first attempt that stored all it
        # streamed left none.
        if turn is None or turn.partial or turn.streamed_reasoning or self.started.run.attempts > 1:
            for partial in (await events.stream_state(self.conversation_id))[1]:
                if partial["run_id"] == self.run_id:
                    await events.forget_partial(self.conversation_id, run_id=self.run_id, message_id=partial["message_id"])

    async def _forget_deleted(self) -> None:
        """The run was found gone at its end. If its conversation was deleted (the delete
        took the checkpoints written before), delete those it wrote since, and forget its
        stream's state. Through the saver that wrote them: its writes still on their way
        (LangGraph records a stopped step's error after the stop) are ahead of the delete,
        as the SQLite saver makes each wait for the one before."""
        if await aconversation_exists(conversation_id=self.conversation_id):
            logger.info("run %s stopped: it was deleted", self.run_id)
            return
        await self.graph.checkpointer.adelete_thread(self.conversation_id)
        await events.forget(self.conversation_id)
        logger.info("run %s stopped: its conversation was deleted", self.run_id)

    async def _last_checkpoint(self) -> str:
        """The id of the thread's latest checkpoint if the run wrote it (in an earlier
        attempt, or on another process), read from the saver; else ""."""
        latest = await self.graph.checkpointer.aget_tuple(
            {"configurable": {"thread_id": self.conversation_id, "checkpoint_ns": ""}}
        )
        own = latest is not None and latest.metadata.get(RUN_METADATA_KEY) == self.run_id
        return latest.config["configurable"]["checkpoint_id"] if own else ""


# The key of the "updates" stream under which LangGraph reports interrupts.
INTERRUPT_KEY = "__interrupt__"


class RunEvents:
    """Turns the graph's stream into stored messages and websocket frames."""

    def __init__(self, *, conversation_id: str, run_id: str, branch_id, turn_at, model: str):
        self.conversation_id = conversation_id
        self.run_id = run_id
        self.branch_id = branch_id
        self.turn_at = turn_at
        self.model = model
        # Text streamed and not stored yet, by Message id: the answer, and the reasoning.
        self.partial: dict[str, str] = {}
        self.partial_reasoning: dict[str, str] = {}
        # Snapshots carry streamed reasoning until the run ends (they show a stored
        # reply's own): set when there is some to forget then.
        self.streamed_reasoning = False
        # Tokens used, by model step (its reply's Message id) or summary.
        self.usage: dict[str, Usage] = {}
        # Messages of the run stored (by an earlier attempt too): a resumed graph reports
        # again the tool results it had before it paused, which are not stored or sent twice.
        self.stored: set[str] = set()
        self._sending: asyncio.Future | None = None
        self._interrupted = False
        # The run's last reply (message_store's fields), stored with the run's end.
        self._reply: dict | None = None

    async def on_custom(self, payload: dict) -> None:
        if "token" in payload:
            await self.on_token(payload["message_id"], payload["token"], payload["part"])
        elif "summary_usage" in payload:
            self.usage[payload["summary_id"]] = Usage(**payload["summary_usage"])
        else:
            await events.publish(self.conversation_id, {"type": "tool", "run_id": self.run_id, **payload})

    async def on_token(self, message_id: str, delta: str, part: str) -> None:
        texts = self.partial_reasoning if part == REASONING else self.partial
        texts[message_id] = texts.get(message_id, "") + delta
        self.streamed_reasoning |= part == REASONING
        # Shielded: a Stop never cuts a token frame in half, so the kept partial reply
        # is exactly what the sockets were sent.
        self._sending = asyncio.ensure_future(
            events.publish_token(
                self.conversation_id, run_id=self.run_id, message_id=message_id, delta=delta,
                reasoning=part == REASONING,
            )
        )
        await asyncio.shield(self._sending)

    async def on_update(self, payload: dict) -> None:
        for node, update in payload.items():
            if node == INTERRUPT_KEY:
                self._interrupted = True
                await self.record_approvals(update)
                continue
            for message in update.get("messages", []) if isinstance(update, dict) else []:
                if isinstance(message, AIMessage):
                    await self._store_reply(message)
                elif isinstance(message, ToolMessage):
                    await self._store_tool_result(message)

    async def record_approvals(self, interrupts) -> None:
        """Each interrupt is a tool call waiting for the user: record it as an Approval."""
        for pending in interrupts:
            approval = await aapproval_create(
                interrupt_id=pending.id, run_id=self.run_id, conversation_id=self.conversation_id, request=pending.value
            )
            if approval is not None:
                await events.publish(self.conversation_id, {"type": "approval", "approval": approval_data(approval)})

    def take_reply(self) -> dict | None:
        """The run's last reply, not stored yet, as message_store's fields; forgotten here."""
        if self._reply is None:
            return None
        fields, self._reply = self._reply, None
        return self._of_this_run(fields)

    async def store_reply(self) -> None:
        """Store and send the run's last reply now: something comes after it."""
        if self._reply is not None:
            fields, self._reply = self._reply, None
            await self._store(**fields)

    def take_interrupted(self) -> bool:
        interrupted, self._interrupted = self._interrupted, False
        return interrupted

    def usage_total(self) -> dict | None:
        return sum(self.usage.values(), Usage()).as_fields() if self.usage else None

    async def _store_reply(self, message: AIMessage) -> None:
        tool_calls = [{"id": c["id"], "name": c["name"], "args": c["args"]} for c in message.tool_calls]
        # Calls whose arguments did not parse: kept as sent, with the parser's error.
        tool_calls += [
            {"id": c["id"], "name": c["name"], "args": c["args"], "error": c["error"] or "invalid"}
            for c in message.invalid_tool_calls
        ]
        message_id = graph_message_id(self.conversation_id, message.id)
        usage = Usage.of(message)
        if message.usage_metadata:
            self.usage[str(message_id)] = usage
        fields = {
            "message_id": message_id,
            "role": Message.Role.ASSISTANT,
            "content": message.text,
            "tool_calls": tool_calls,
            "reasoning": message.additional_kwargs.get("reasoning_content", ""),
            "incomplete": message.response_metadata.get("ending", ""),
            "usage": usage.as_fields() if message.usage_metadata else None,
        }
        if tool_calls:
            await self._store(**fields)
            return
        # A reply that calls no tool is the run's last message: stored with the run's end
        # (one ORM call) and sent with its frame (one step), so a client that answers it
        # at once finds the conversation idle, and its message starts a run straight away.
        await self.store_reply()
        self._reply = fields
        # Complete: a Stop now keeps it whole.
        self.partial.pop(str(message_id), None)
        self.partial_reasoning.pop(str(message_id), None)

    async def _store_tool_result(self, message: ToolMessage) -> None:
        await self._store_tool_message(
            tool_call_id=message.tool_call_id, name=message.name, text=message.text,
            status="failed" if message.status == "error" else "succeeded",
        )

    async def store_tool_outcome(self, outcome: ledger.ToolOutcome) -> None:
        """The outcome of a tool call that was running when the run was stopped."""
        await self._store_tool_message(
            tool_call_id=outcome.tool_call_id, name=outcome.tool, text=outcome.result, status=outcome.status,
        )

    async def _store_tool_message(self, *, tool_call_id: str, name: str | None, text: str, status: str) -> None:
        message_id = graph_message_id(self.conversation_id, f"tool:{tool_call_id}")
        if str(message_id) in self.stored:
            return
        await self._store(
            message_id=message_id,
            role=Message.Role.TOOL,
            content=text,
            tool_call_id=tool_call_id,
            tool_name=name or "",
        )
        await events.publish(
            self.conversation_id,
            {"type": "tool", "run_id": self.run_id, "tool_call_id": tool_call_id, "name": name, "status": status,
             "result": text},
        )

    async def keep_partial_reply(self, *, stopped: bool = False, incomplete: str = "") -> None:
        """Keep what the assistant had written when the run stopped (the user's Stop, or a
        failure of the model server): marked, never given back to the model as whole."""
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)
        for message_id in dict.fromkeys([*self.partial, *self.partial_reasoning]):
            await self._store(
                message_id=message_id, role=Message.Role.ASSISTANT, content=self.partial.get(message_id, ""),
                reasoning=self.partial_reasoning.get(message_id, ""), stopped=stopped, incomplete=incomplete,
            )

    async def _store(self, **fields) -> Message:
        await self.store_reply()  # a later message: the last reply so far goes first
        stored = await transitions.amessage_store(**self._of_this_run(fields))
        self.stored.add(str(stored.id))
        frame = await transitions.message_frame(stored)
        await events.publish_stored(self.conversation_id, frame, run_id=self.run_id, message_id=str(stored.id))
        self.partial.pop(str(stored.id), None)
        self.partial_reasoning.pop(str(stored.id), None)
        return stored

    def _of_this_run(self, fields: dict) -> dict:
        """message_store's fields for a message of this run."""
        return {
            "conversation_id": self.conversation_id, "run_id": self.run_id, "branch_id": self.branch_id,
            "turn_at": self.turn_at, **fields,
        }
