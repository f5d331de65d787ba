"""Startup and recovery: time to serve after a process starts, and to finish 100 runs
interrupted by SIGKILL.

Startup: from spawning `daphne chatproject.asgi:application` to the first `/healthz` 200
(database and checkpointer answer), polled every 10 ms, on SQLite and on PostgreSQL.
Baseline: a bare Python process that imports LangGraph and the same saver, opens it and
reads one checkpoint, then exits (the least any LangGraph server does before serving).

Recovery: a server starts R conversations, each with a long reply (`slow W`, words
OFFLINE_MODEL_DELAY_MS apart); once every run has started (none queued) it is killed with SIGKILL; a
new server starts on the same database, and we time from spawning it until all R runs
have ended `succeeded` (the new process takes over runs whose owner was a dead local
process at its first sweep; a run resumes from its last checkpoint, so the interrupted
reply is written again). Baseline: the same R replies on a fresh server, uninterrupted,
from the sends to all `succeeded`.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/startup.py
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench.common import (  # noqa: E402
    add_backend_flag, choose_backend, describe_backend, header, median, raise_fd_limit, ratio, table,
)
from tests.live import PYTHON, ROOT, Server, Session, Templates, postgres_available, receive, redis_available, send  # noqa: E402

BARE_START = """
import asyncio, sys, time
async def main(kind, target):
    if kind == "postgres":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool
        pool = AsyncConnectionPool(target, min_size=1, max_size=10, open=False,
                                   kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0})
        await pool.open(wait=True)
        saver = AsyncPostgresSaver(pool)
    else:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
        conn = await aiosqlite.connect(target)
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
    import langgraph.graph  # noqa: F401
    await saver.aget_tuple({"configurable": {"thread_id": "healthz", "checkpoint_ns": ""}})
    print("ready", flush=True)
    if kind == "postgres":
        await pool.close()
    else:
        await conn.close()
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def time_to_healthy(db, log: Path, timeout: float = 60) -> tuple[float, subprocess.Popen]:
    server = Server(db, log)
    began = time.perf_counter()
    server.process = subprocess.Popen(
        [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(server.port), "chatproject.asgi:application"],
        cwd=ROOT, env=db.env, stdout=open(log, "a"), stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(timeout=2) as client:
            while time.perf_counter() - began < timeout:
                if server.process.poll() is not None:
                    raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
                try:
                    if client.get(f"{server.url}/healthz").status_code == 200:
                        return time.perf_counter() - began, server
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
        raise RuntimeError("server did not become healthy")
    except BaseException:
        server.stop()
        raise


def bare_start(db) -> float:
    target = db.url if db.backend == "postgres" else str(db.path)
    began = time.perf_counter()
    out = subprocess.run([PYTHON, "-c", BARE_START, db.backend, target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - began
    if "ready" not in out.stdout:
        raise RuntimeError(out.stderr[-2000:])
    return elapsed


def startup(templates, backends: list[str], trials: int, workdir: Path) -> list[list]:
    rows = []
    for backend in backends:
        ours, bare = [], []
        for trial in range(trials):
            db = templates.new_database(backend, redis=backend == "postgres")
            elapsed, server = time_to_healthy(db, workdir / f"startup-{backend}-{trial}.log")
            server.stop()
            ours.append(elapsed)
            bare.append(bare_start(db))
        rows.append([f"start → /healthz 200, s ({describe_backend(backend)}; median of {trials})",
                     median(ours), median(bare), ratio(median(ours), median(bare))])
    return rows


def runs_succeeded(db) -> int:
    return db.count("conversations_run", "status = %s", ("succeeded",))


async def start_replies(server: Server, db, runs: int, words: int, timeout: float) -> tuple[list, float]:
    """Open a socket per conversation, send `slow W` on each, and wait until no run is
    queued any more (every run has started: the database says so, not the sockets, whose
    token frames may lag behind under this load)."""
    alice = Session(server, "alice")
    ids = [alice.create_conversation(f"recovery {i}")["id"] for i in range(runs)]
    sockets = []
    for batch in range(0, runs, 50):
        opened = await asyncio.gather(*(alice.websocket(cid).__aenter__() for cid in ids[batch:batch + 50]))
        await asyncio.gather(*(receive(ws) for ws in opened))
        sockets += opened
    sent = time.perf_counter()
    await asyncio.gather(*(send(ws, {"type": "message.send", "content": f"slow {words}"}) for ws in sockets))
    while db.count("conversations_run") < runs or db.count("conversations_run", "status = %s", ("queued",)):
        if time.perf_counter() - sent > timeout:
            raise RuntimeError("the runs did not all start")
        await asyncio.sleep(0.05)
    return sockets, sent


async def wait_all_succeeded(db, runs: int, timeout: float) -> float:
    began = time.perf_counter()
    while runs_succeeded(db) < runs:
        if time.perf_counter() - began > timeout:
            raise RuntimeError(f"only {runs_succeeded(db)} of {runs} runs succeeded after {timeout} s")
        await asyncio.sleep(0.1)
    return time.perf_counter()


async def recovery(templates, backend: str, runs: int, words: int, delay_ms: int, workdir: Path, timeout: float) -> list[list]:
    env = {"OFFLINE_MODEL_DELAY_MS": str(delay_ms)}
    # Baseline: the same replies, uninterrupted.
    db = templates.new_database(backend, redis=backend == "postgres")
    server = Server(db, workdir / "uninterrupted.log", extra_env=env).start()
    try:
        sockets, sent = await start_replies(server, db, runs, words, timeout)
        uninterrupted = await wait_all_succeeded(db, runs, timeout) - sent
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    finally:
        server.stop()
    # Ours: kill mid-reply, restart, time until all succeeded.
    db = templates.new_database(backend, redis=backend == "postgres")
    first = Server(db, workdir / "killed.log", extra_env=env).start()
    try:
        sockets, _ = await start_replies(first, db, runs, words, timeout)
        running = db.count("conversations_run", "status = %s", ("running",))
        first.kill()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        succeeded_before = runs_succeeded(db)
    finally:
        first.stop()
    second = Server(db, workdir / "restarted.log", extra_env=env)
    spawned = time.perf_counter()
    second.start(timeout=60)
    healthy = time.perf_counter() - spawned
    try:
        resumed = await wait_all_succeeded(db, runs, timeout) - spawned
        attempts = db.query("SELECT MAX(attempts), MIN(attempts) FROM conversations_run")[0]
    finally:
        second.stop()
    model_time = words * delay_ms / 1000
    return [
        [f"{runs} replies of {words} words, uninterrupted: sends → all succeeded, s", None, uninterrupted, "–"],
        [f"SIGKILL with {running} running / {succeeded_before} done → restart → all {runs} succeeded, s",
         resumed, uninterrupted, ratio(resumed, uninterrupted)],
        ["  of which: restarted process start → /healthz 200, s", healthy, None, "–"],
        [f"  attempts per run after recovery (max / min); one reply alone takes {model_time:.1f} s of model time",
         f"{attempts[0]} / {attempts[1]}", None, "–"],
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3, help="startups timed per backend")
    parser.add_argument("--runs", type=int, default=100, help="runs interrupted by SIGKILL")
    parser.add_argument("--words", type=int, default=200, help="words of each interrupted reply (slow W)")
    parser.add_argument("--delay-ms", type=int, default=50, help="OFFLINE_MODEL_DELAY_MS for the recovery part")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--skip-recovery", action="store_true")
    add_backend_flag(parser)
    args = parser.parse_args()
    backend = choose_backend(args.backend)
    backends = ["sqlite"] + (["postgres"] if postgres_available() and redis_available() else [])
    fds = raise_fd_limit()
    header("startup and recovery", {"startup backends": backends, "trials": args.trials, "recovery backend": describe_backend(backend),
                                    "runs": args.runs, "reply": f"slow {args.words}", "OFFLINE_MODEL_DELAY_MS": args.delay_ms,
                                    "RUN_LEASE_SECONDS": "5 (default)", "RLIMIT_NOFILE": fds})
    workdir = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    templates = Templates(workdir)
    try:
        rows = startup(templates, backends, args.trials, workdir)
        if not args.skip_recovery:
            rows += await recovery(templates, backend, args.runs, args.words, args.delay_ms, workdir, args.timeout)
        table(["measure", "ours", "baseline", "ratio"], rows)
        print("startup baseline: a bare Python process importing LangGraph and the saver, opening it and reading one checkpoint")
        print("recovery baseline: the same replies on a live server, never interrupted")
        print("quoted by issue 4: Aegra 0.11 resumes never (default mode), ~35 s after restart (Redis mode)")
    finally:
        if "postgres" in templates.made:
            templates.drop_all()


if __name__ == "__main__":
    asyncio.run(main())
