"""Many conversations at once: turns per second and latency under concurrent sockets.

Ours: the server started here as README's production command (uvicorn with one worker
process per CPU, `--workers`; `--workers 0` for one daphne process as `make start`),
offline model with OFFLINE_MODEL_DELAY_MS=50, PostgreSQL and Redis; C websocket clients, each in its own conversation,
of one user (one login, its session cookie on every socket) or, with `--users U`, of U
users in turn (one login each, the per-user limits at their defaults), each sending M
messages "slow 5" one after another: the next is
sent when the previous reply's final assistant `message` frame arrives. Latency is from
message.send to that frame; turns/s is C×M over the time from the first send to the last
reply. Sockets are connected and have their snapshot before the clock starts.

Baselines, same run, in this process: bare LangGraph (MessagesState, one node that
streams 5 words with the offline model's pauses, 4 × 50 ms), the same C×M turns driven
concurrently with asyncio, (a) with InMemorySaver, (b) with AsyncPostgresSaver on an
AsyncConnectionPool (max 10 connections, as CHECKPOINT_POOL_SIZE), or AsyncSqliteSaver
on SQLite.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/many_conversations.py --clients 10,100,500

The host's speed can drift by ±15% within minutes, and a baseline measured a minute after
ours sees another host. `--rounds N` measures ours and the baselines N times, one after
the other, and reports each figure's median and each round's ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    add_backend_flag, choose_backend, describe_backend, header, median, percentile, raise_fd_limit, ratio, table,
)
from bench.procstat import Sampler, describe  # noqa: E402
from tests.live import Server, Session, Templates  # noqa: E402

WORDS = 5
PRODUCTION_LIMITS = {"RATE_LIMIT_MESSAGES": "60/60", "RATE_LIMIT_DECISIONS": "60/60", "WS_MAX_SOCKETS_PER_USER": "20"}
PEERS = [
    ["Aegra 0.11", "31.6", "3.9 s"],
    ["`langgraph dev`", "32–55", "–"],
    ["bare LangGraph + AsyncPostgresSaver", "124–129", "0.9 s"],
    ["model-bound limit", "400", "–"],
]


async def _recv(ws, timeout: float) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def _client(ws, messages: int, start: asyncio.Event, latencies: list[float], timeout: float) -> None:
    await start.wait()
    for _ in range(messages):
        sent = time.perf_counter()
        await ws.send(json.dumps({"type": "message.send", "content": f"slow {WORDS}"}))
        while True:
            frame = await _recv(ws, timeout)
            if frame["type"] == "message" and frame["message"]["role"] == "assistant":
                break
            if frame["type"] == "error" or (frame["type"] == "run" and frame["run"]["status"] in {"failed", "cancelled"}):
                raise RuntimeError(f"unexpected frame {frame}")
        latencies.append(time.perf_counter() - sent)
        if frame["message"]["content"].split() != [f"tick{i}" for i in range(1, WORDS + 1)]:
            raise RuntimeError(f"unexpected reply {frame['message']['content']!r}")


def _users(db, count: int) -> list[str]:
    """`count` users who can log in (alice, and others with her password), one login each."""
    names = ["alice"] + [f"user{i}" for i in range(1, count)]
    for name in names[1:]:
        db.query(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, "
            "date_joined) SELECT password, FALSE, %s, '', '', '', FALSE, TRUE, date_joined FROM auth_user "
            "WHERE username = 'alice' RETURNING id",
            (name,),
        )
    return names


async def ours(templates, backend: str, workdir: Path, clients: int, messages: int, delay_ms: int, timeout: float,
               extra_env: dict, workers: int = 0, users: int = 1) -> dict:
    db = templates.new_database(backend, redis=backend == "postgres")
    server = Server(db, workdir / f"server-{clients}.log", extra_env={"OFFLINE_MODEL_DELAY_MS": str(delay_ms), **extra_env},
                    workers=workers).start()
    try:
        people = [Session(server, name) for name in _users(db, users)]
        owners = [people[i % len(people)] for i in range(clients)]
        ids = [(owner, owner.create_conversation(f"many {i}")["id"]) for i, owner in enumerate(owners)]
        sockets = []
        for batch in range(0, clients, 50):
            opened = await asyncio.gather(*(owner.websocket(cid).__aenter__() for owner, cid in ids[batch:batch + 50]))
            await asyncio.gather(*(_recv(ws, timeout) for ws in opened))  # snapshots
            sockets += opened
        split = list(server.connections_per_worker().values()) if workers else [len(sockets)]
        latencies: list[float] = []
        start = asyncio.Event()
        tasks = [asyncio.create_task(_client(ws, messages, start, latencies, timeout)) for ws in sockets]
        sampler = Sampler(server.process.pid)
        sampler.start()
        began = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - began
        cpu = sampler.stop()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        return {"latencies": latencies, "wall": wall,
                "cpu": f"{describe(cpu, wall)}; sockets per server process {'/'.join(map(str, split))}"}
    finally:
        server.stop()
        if backend == "postgres":
            from tests.live import admin_sql

            admin_sql(f'DROP DATABASE IF EXISTS "{db.url.rsplit("/", 1)[1]}" WITH (FORCE)')


def _graph(delay_ms: int):
    from langchain_core.messages import AIMessage
    from langgraph.config import get_stream_writer
    from langgraph.graph import START, MessagesState, StateGraph

    async def model(state: MessagesState) -> dict:
        writer = get_stream_writer()
        words = [f"tick{i}" for i in range(1, WORDS + 1)]
        for index, word in enumerate(words):
            if index:
                await asyncio.sleep(delay_ms / 1000)
            writer(word)
        return {"messages": [AIMessage(content=" ".join(words))]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_edge(START, "model")
    return builder


async def bare(saver_kind: str, templates, backend: str, clients: int, messages: int, delay_ms: int) -> dict:
    from langchain_core.messages import HumanMessage

    builder = _graph(delay_ms)
    close = None
    db = None
    if saver_kind == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        saver = InMemorySaver()
    elif backend == "postgres":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        db = templates.new_database("postgres")
        pool = AsyncConnectionPool(db.url, min_size=1, max_size=10, open=False,
                                   kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0})
        await pool.open(wait=True)
        saver, close = AsyncPostgresSaver(pool), pool.close
    else:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        db = templates.new_database("sqlite")
        conn = await aiosqlite.connect(str(db.path))
        await conn.execute("PRAGMA journal_mode=WAL")
        saver, close = AsyncSqliteSaver(conn), conn.close
        await saver.setup()
    graph = builder.compile(checkpointer=saver)
    latencies: list[float] = []

    async def client(index: int) -> None:
        config = {"configurable": {"thread_id": f"bare-{saver_kind}-{clients}-{index}"}}
        for _ in range(messages):
            sent = time.perf_counter()
            async for _chunk in graph.astream({"messages": [HumanMessage(content=f"slow {WORDS}")]}, config,
                                              stream_mode="custom"):
                pass
            latencies.append(time.perf_counter() - sent)

    sampler = Sampler(None)
    sampler.start()
    began = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - began
    cpu = sampler.stop()
    if close:
        await close()
    if db is not None and backend == "postgres":
        from tests.live import admin_sql

        admin_sql(f'DROP DATABASE IF EXISTS "{db.url.rsplit("/", 1)[1]}" WITH (FORCE)')
    return {"latencies": latencies, "wall": wall,
            "cpu": f"CPU seconds over {wall:.1f} s wall: this process {cpu['client']:.1f}, PostgreSQL {cpu['postgres']:.1f}"}


MEASURES = [("tps", "turns/s"), ("p50", "p50 s"), ("p95", "p95 s"), ("p99", "p99 s")]


def summary(result: dict, turns: int) -> dict:
    lat = result["latencies"]
    return {"tps": turns / result["wall"], "p50": percentile(lat, 50), "p95": percentile(lat, 95), "p99": percentile(lat, 99)}


def medians(summaries: list[dict | None]) -> dict | None:
    """Each measure's median over the rounds (None without a baseline)."""
    if None in summaries:
        return None
    return {key: median([s[key] for s in summaries]) for key, _ in MEASURES}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="10,100,500", help="comma list of client counts")
    parser.add_argument("--messages", type=int, default=10, help="messages per client, one after another")
    parser.add_argument("--delay-ms", type=int, default=50, help="OFFLINE_MODEL_DELAY_MS")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for one reply")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="server processes: uvicorn with this many workers (README's production command); "
                             "0 for one daphne process (`make start`). Default: the number of CPUs")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure ours and the baselines this many times, one after the other; "
                             "report the medians, and each round's ratios")
    parser.add_argument("--users", type=int, default=1,
                        help="users the conversations belong to, in turn (one login each): 50 users with two "
                             "conversations each is --clients 100 --users 50")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the server (e.g. CHECKPOINT_POOL_SIZE=50), repeatable")
    add_backend_flag(parser)
    args = parser.parse_args()
    backend = choose_backend(args.backend)
    if backend == "sqlite":
        args.workers = 0  # without Redis, processes share no events: one process
    counts = [int(c) for c in args.clients.split(",") if c.strip()]
    extra_env = dict(item.split("=", 1) for item in args.env)
    if args.users > 1:  # production's limits per user (bench.common sets them out of one user's reach)
        extra_env = {**PRODUCTION_LIMITS, **extra_env}
    fds = raise_fd_limit()
    header("many conversations", {"backend": describe_backend(backend), "clients": counts, "messages per client": args.messages,
                                  "reply": f"slow {WORDS} ({WORDS} words)", "OFFLINE_MODEL_DELAY_MS": args.delay_ms,
                                  "RLIMIT_NOFILE": fds, "rounds": args.rounds, "users": args.users,
                                  "server": f"uvicorn, {args.workers} worker processes" if args.workers else "daphne, one process", **({"server env": extra_env} if extra_env else {})})
    workdir = Path(tempfile.mkdtemp(prefix="bench-many-"))
    templates = Templates(workdir)
    saver = "AsyncPostgresSaver" if backend == "postgres" else "AsyncSqliteSaver"
    rows, round_rows, notes = [], [], []
    try:
        for clients in counts:
            turns = clients * args.messages
            rounds = []  # (ours, InMemorySaver, the database saver) per round
            for number in range(1, args.rounds + 1):
                label = f"{clients} clients" + (f", round {number}" if args.rounds > 1 else "")
                app = summary(r := await ours(templates, backend, workdir, clients, args.messages, args.delay_ms, args.timeout,
                                               extra_env, args.workers, args.users), turns)
                notes.append(f"ours, {label}: {r['cpu']}")
                mem = pg = None
                if not args.no_baseline:
                    mem = summary(r := await bare("memory", templates, backend, clients, args.messages, args.delay_ms), turns)
                    notes.append(f"bare InMemorySaver, {label}: {r['cpu']}")
                    pg = summary(r := await bare("db", templates, backend, clients, args.messages, args.delay_ms), turns)
                    notes.append(f"bare {saver}, {label}: {r['cpu']}")
                rounds.append((app, mem, pg))
                if args.rounds > 1:
                    round_rows.append([clients, number, app["tps"], pg and pg["tps"], ratio(app["tps"], pg and pg["tps"]),
                                       app["p95"], pg and pg["p95"], ratio(app["p95"], pg and pg["p95"])])
            app, mem, pg = (medians([measured[i] for measured in rounds]) for i in range(3))
            if args.rounds > 1 and pg:  # the median of the rounds' own ratios: each pair measured together
                tps_ratio, p95_ratio = (median([o[key] / b[key] for o, _, b in rounds]) for key in ("tps", "p95"))
                round_rows.append([clients, "median", app["tps"], pg["tps"], f"{tps_ratio:.2f}×", app["p95"], pg["p95"],
                                   f"{p95_ratio:.2f}×"])
            limit = clients / ((WORDS - 1) * args.delay_ms / 1000)
            for key, label in MEASURES:
                rows.append([clients, label, app[key], mem and mem[key], pg and pg[key], ratio(app[key], pg and pg[key]),
                             f"{limit:.0f}" if key == "tps" else f"{(WORDS - 1) * args.delay_ms / 1000:.2f}"])
            print(f"done: {clients} clients, {turns} turns" + (f" × {args.rounds} rounds" if args.rounds > 1 else ""), flush=True)
        print()
        if round_rows:
            print("each round (ours, then the baselines):")
            table(["clients", "round", "ours turns/s", f"bare {saver} turns/s", "turns/s ratio", "ours p95 s", "bare p95 s", "p95 ratio"],
                  round_rows)
            print(f"medians of {args.rounds} rounds:")
        table(["clients", "measure", "ours", "bare + InMemorySaver", f"bare + {saver}", f"ours / bare {saver}", "model-bound"], rows)
        print("goals at 100 clients: turns/s ≥ 0.5× bare AsyncPostgresSaver; p95 ≤ 2× bare")
        for note in notes:
            print(note)
        print()
        print("quoted by issue 6 (not measured here):")
        table(["peer", "turns/s", "p95"], PEERS)
    finally:
        if "postgres" in templates.made:
            templates.drop_all()


if __name__ == "__main__":
    asyncio.run(main())
