"""A saver that remembers the last checkpoint each run wrote, so a run's end needs no
query to find it, and that tells when a thread's checkpoints are due to be counted (to
trim them). Written for LangGraph's savers calling `aput` once per checkpoint with the
run's config (tests/agent/test_last_checkpoint.py pins langgraph-checkpoint's version)."""

from __future__ import annotations

from langgraph.checkpoint.base import get_checkpoint_metadata

from .context import RUN_METADATA_KEY

# Threads whose checkpoints written since their last count a saver keeps track of.
COUNTED_THREADS_MAX = 10_000


class RemembersLastCheckpoint:
    """A saver that remembers, per thread, the last checkpoint it wrote and the run that
    wrote it: the executor notes a run's last checkpoint when the run ends without
    reading it back. Runs of a conversation go one at a time, so while a run is active
    no other process writes to its thread.

    It also counts the checkpoints it wrote per thread since the executor last had the
    thread's checkpoints counted (`count_due`), so that a run's end counts them (to trim
    them) only every few runs rather than after each one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last_written: dict[str, tuple[str | None, str]] = {}
        # A thread not in it has not been counted since this process started (or forgot it).
        self._written_since_count: dict[str, int] = {}

    async def aput(self, config, checkpoint, metadata, new_versions):
        written = await super().aput(config, checkpoint, metadata, new_versions)
        if not config["configurable"].get("checkpoint_ns"):  # the graph's own, not a subgraph's
            thread_id = config["configurable"]["thread_id"]
            if thread_id in self._written_since_count:
                self._written_since_count[thread_id] += 1
            self._last_written[thread_id] = (
                # As the saver stores it: the run's key comes from the config's metadata.
                get_checkpoint_metadata(config, metadata).get(RUN_METADATA_KEY),
                written["configurable"]["checkpoint_id"],
            )
        return written

    def count_due(self, thread_id: str, every: int) -> bool:
        """Whether to count the thread's checkpoints now: `every` were written here since
        they were last counted, or this process has not counted them. True starts the
        tally over. Bounded: past COUNTED_THREADS_MAX threads it forgets them all, and
        each is counted again at its next run's end."""
        written = self._written_since_count.get(thread_id)
        if written is not None and written < every:
            return False
        if len(self._written_since_count) >= COUNTED_THREADS_MAX:
            self._written_since_count.clear()
        self._written_since_count[thread_id] = 0
        return True

    def forget_last_written(self, thread_id: str) -> None:
        """At an attempt's start: only what it writes will count."""
        self._last_written.pop(thread_id, None)

    def take_last_written(self, thread_id: str, run_id: str) -> str | None:
        """The id of the thread's last checkpoint if this run wrote it here; forgotten after."""
        writer, checkpoint_id = self._last_written.pop(thread_id, (None, ""))
        return checkpoint_id if writer == run_id else None
