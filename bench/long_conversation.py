"""One conversation of N turns: does a turn stay as fast, and storage stay near the text?

Ours: a daphne server started here (offline model, OFFLINE_MODEL_DELAY_MS=0), one
websocket, N messages of ~200 characters one after another (each sent when the previous
run has ended). Turn time is server-side (Run.started_at → Run.finished_at) and
client-side (message.send → the run's `succeeded` frame); "turn 10", "turn 200" and "turn
N" are the medians of turns 6–15, 196–205 and of the last 10 turns. From about turn 110
the history fills its token budget and older turns are summarized (the offline model's
summary), so turn N against turn 200 is the cost of a turn once the budget is full. Storage: the conversation's checkpoint
rows and its Django rows (pg_column_size of each row on PostgreSQL) against the UTF-8
bytes of its user and assistant messages.

Baseline, same run, same database server: bare LangGraph with the default MessagesState,
its saver (AsyncPostgresSaver on an AsyncConnectionPool, or AsyncSqliteSaver), one node
that returns a ~200-character AIMessage, the same N messages through `ainvoke`.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/long_conversation.py --turns 1000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import add_backend_flag, choose_backend, describe_backend, header, human_bytes, median, ratio, table  # noqa: E402
from bench.storage import checkpoint_bytes, checkpoint_rows, django_bytes, text_bytes  # noqa: E402
from tests.live import Server, Session, Templates, receive, receive_until, run_ended, send  # noqa: E402

FILLER = (
    "the quick brown fox jumps over the lazy dog while the careful engineer measures how long "
    "each turn of a very long conversation takes and how many bytes it leaves behind in the database "
)


def user_text(turn: int, size: int = 200) -> str:
    prefix = f"Turn {turn}: "
    return (prefix + FILLER * (size // len(FILLER) + 2))[:size]


# By this turn the history fills the default budget (16,000 tokens less 4,096 for the
# reply: ~110 turns of these messages), and older turns are being summarized.
FULL_BUDGET_TURN = 200


def sample_points(turns: int) -> list[int]:
    points = {p for p in (10, 100, 200, 250, 500, 1000, 2000, 5000) if p < turns}
    points |= {max(1, turns // 2), turns}
    return sorted(points)


def window(times: list[float], turn: int) -> float:
    """Median of the turns around `turn` (1-based): 6–15 for turn 10."""
    lo, hi = max(0, turn - 5), min(len(times), turn + 5)
    return median(times[lo:hi])


def last_window(times: list[float]) -> float:
    return median(times[-10:])


async def ours(db, workdir: Path, turns: int, points: list[int]) -> dict:
    server = Server(db, workdir / "server.log", extra_env={"OFFLINE_MODEL_DELAY_MS": "0"}).start()
    client_times: list[float] = []
    storage: dict[int, tuple[int, int, int]] = {}
    try:
        alice = Session(server, "alice")
        conversation = alice.create_conversation("long conversation bench")
        cid = conversation["id"]
        async with alice.websocket(cid) as ws:
            await receive(ws)
            for turn in range(1, turns + 1):
                started = time.perf_counter()
                await send(ws, {"type": "message.send", "content": user_text(turn)})
                frames = await receive_until(ws, run_ended, timeout=120)
                client_times.append(time.perf_counter() - started)
                if frames[-1]["run"]["status"] != "succeeded":
                    raise RuntimeError(f"turn {turn} ended {frames[-1]['run']}")
                if turn in points:
                    storage[turn] = (sum(checkpoint_bytes(db, cid).values()), sum(django_bytes(db, cid).values()), text_bytes(db, cid))
        key = cid.replace("-", "") if db.backend == "sqlite" else cid
        rows = db.query(
            "SELECT started_at, finished_at, id FROM conversations_run WHERE conversation_id = %s ORDER BY created_at",
            (key,),
        )
        server_times = [_seconds(f) - _seconds(s) for s, f, _ in rows]
        turn_of_run = {str(run_id): turn for turn, (_, _, run_id) in enumerate(rows, 1)}
        summarized_at = [turn_of_run.get(str(run_id)) for (run_id,) in db.query(
            "SELECT run_id FROM conversations_summary WHERE conversation_id = %s ORDER BY created_at", (key,)
        )]
        return {
            "client": client_times, "server": server_times, "storage": storage, "summarized_at": summarized_at,
            "checkpoint_detail": checkpoint_bytes(db, cid), "checkpoint_rows": checkpoint_rows(db, cid),
            "django_detail": django_bytes(db, cid),
        }
    finally:
        server.stop()


def _seconds(value) -> float:
    if isinstance(value, str):  # SQLite
        from datetime import datetime

        value = datetime.fromisoformat(value)
    return value.timestamp()


async def baseline(db, turns: int, points: list[int]) -> dict:
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.graph import START, MessagesState, StateGraph

    def reply(state: MessagesState) -> dict:
        return {"messages": [AIMessage(content=f'You said: "{state["messages"][-1].content}"')]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", reply)
    builder.add_edge(START, "model")
    thread = "baseline-long-conversation"
    config = {"configurable": {"thread_id": thread}}
    times: list[float] = []
    storage: dict[int, tuple[int, int, int]] = {}
    text = 0
    async with _saver(db) as saver:
        graph = builder.compile(checkpointer=saver)
        for turn in range(1, turns + 1):
            content = user_text(turn)
            started = time.perf_counter()
            result = await graph.ainvoke({"messages": [HumanMessage(content=content)]}, config)
            times.append(time.perf_counter() - started)
            text += len(content.encode()) + len(result["messages"][-1].content.encode())
            if turn in points:
                storage[turn] = (sum(checkpoint_bytes(db, thread).values()), 0, text)
    return {"client": times, "storage": storage, "checkpoint_detail": checkpoint_bytes(db, thread),
            "checkpoint_rows": checkpoint_rows(db, thread)}


class _saver:
    def __init__(self, db):
        self.db = db

    async def __aenter__(self):
        if self.db.backend == "postgres":
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
            from psycopg.rows import dict_row
            from psycopg_pool import AsyncConnectionPool

            self.pool = AsyncConnectionPool(
                self.db.url, min_size=1, max_size=10, open=False,
                kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0},
            )
            await self.pool.open(wait=True)
            self.close = self.pool.close
            return AsyncPostgresSaver(self.pool)
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        conn = await aiosqlite.connect(str(self.db.path))
        await conn.execute("PRAGMA journal_mode=WAL")
        self.close = conn.close
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        return saver

    async def __aexit__(self, *exc):
        await self.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--baseline-turns", type=int, default=None, help="turns of the baseline (default: --turns)")
    parser.add_argument("--no-baseline", action="store_true")
    add_backend_flag(parser)
    args = parser.parse_args()
    backend = choose_backend(args.backend)
    baseline_turns = args.baseline_turns or args.turns
    header("long conversation", {"backend": describe_backend(backend), "turns": args.turns,
                                 "baseline turns": 0 if args.no_baseline else baseline_turns,
                                 "user message": "200 chars", "OFFLINE_MODEL_DELAY_MS": 0})
    workdir = Path(tempfile.mkdtemp(prefix="bench-long-"))
    templates = Templates(workdir)
    try:
        points = sample_points(args.turns)
        t0 = time.perf_counter()
        app = await ours(templates.new_database(backend, redis=backend == "postgres"), workdir, args.turns, points)
        print(f"ours: {args.turns} turns in {time.perf_counter() - t0:.1f} s")
        base = None
        if not args.no_baseline:
            t0 = time.perf_counter()
            base = await baseline(templates.new_database(backend), baseline_turns, sample_points(baseline_turns))
            print(f"baseline: {baseline_turns} turns in {time.perf_counter() - t0:.1f} s")
        print()
        report(args.turns, app, base, baseline_turns)
    finally:
        if "postgres" in templates.made:
            templates.drop_all()


def report(turns: int, app: dict, base: dict | None, baseline_turns: int) -> None:
    n = turns
    a10s, aNs = window(app["server"], 10), last_window(app["server"])
    a10c, aNc = window(app["client"], 10), last_window(app["client"])
    b10 = window(base["client"], 10) if base else None
    bN = last_window(base["client"]) if base else None
    a_ck, a_dj, a_text = app["storage"][n]
    a_total = a_ck + a_dj
    full = n >= FULL_BUDGET_TURN + 5  # a tiny run has no turn 200
    a200s = window(app["server"], FULL_BUDGET_TURN) if full else None
    a200c = window(app["client"], FULL_BUDGET_TURN) if full else None
    rows = [
        ["turn 10, ms (server: started→finished)", a10s * 1000, None, "–"],
        [f"turn {FULL_BUDGET_TURN}, ms (server)", a200s and a200s * 1000, None, "–"],
        [f"turn {n}, ms (server: started→finished)", aNs * 1000, None, "–"],
        ["turn 10, ms (client: send→run succeeded; baseline: ainvoke)", a10c * 1000, b10 and b10 * 1000, ratio(a10c, b10)],
        [f"turn {n}, ms (client; baseline at turn {baseline_turns})", aNc * 1000, bN and bN * 1000, ratio(aNc, bN)],
        [f"turn {n} / turn 10 (server)", aNs / a10s, None, "goal ≤ 1.2"],
        [f"turn {n} / turn 10 (client)", aNc / a10c, bN / b10 if base else None, "–"],
        [f"turn {n} / turn {FULL_BUDGET_TURN} (server), the history's budget full", a200s and aNs / a200s, None, "goal ≤ 1.2"],
        [f"turn {n} / turn {FULL_BUDGET_TURN} (client)", a200c and aNc / a200c, None, "goal ≤ 1.2"],
    ]
    if base:
        b_ck, _, b_text = base["storage"][baseline_turns]
        rows += [
            [f"bytes in database after {n} turns (ours: checkpoints + Django rows)", human_bytes(a_total), human_bytes(b_ck), ratio(a_total, b_ck)],
            ["text bytes (user + assistant)", human_bytes(a_text), human_bytes(b_text), ratio(a_text, b_text)],
            ["bytes / text bytes", a_total / a_text, b_ck / b_text, "goal ≤ 3"],
            ["bytes per turn", a_total / n, b_ck / baseline_turns, ratio(a_total / n, b_ck / baseline_turns)],
        ]
    else:
        rows += [
            [f"bytes in database after {n} turns", human_bytes(a_total), None, "–"],
            ["bytes / text bytes", a_total / a_text, None, "goal ≤ 3"],
        ]
    table(["measure", "ours", "bare LangGraph", "ratio / goal"], rows)

    print("storage by turn (linear if bytes/turn stays flat):")
    srows = []
    for turn, (ck, dj, text) in sorted(app["storage"].items()):
        b = base["storage"].get(turn) if base else None
        srows.append([turn, human_bytes(ck), human_bytes(dj), (ck + dj) / turn, (ck + dj) / text,
                      b and human_bytes(b[0]), b and b[0] / turn, b and b[0] / b[2]])
    table(["turns", "ours: checkpoints", "ours: Django rows", "ours B/turn", "ours ×text",
           "baseline: checkpoints", "baseline B/turn", "baseline ×text"], srows)
    print(f"ours, checkpoint rows after {n} turns: {app['checkpoint_rows']}; bytes: {app['checkpoint_detail']}")
    print(f"ours, Django bytes: {app['django_detail']}")
    summarized = app["summarized_at"]
    print(f"ours, summaries of older turns: {len(summarized)}, written at turns {summarized[:3]}…{summarized[-3:]}"
          if summarized else "ours: no summary written (the history never outgrew its budget)")
    if base:
        print(f"baseline, checkpoint rows after {baseline_turns} turns: {base['checkpoint_rows']}; bytes: {base['checkpoint_detail']}")
    print("issue 6's figure for the baseline: after 400 turns, 128 MB of checkpoint blobs (~640× the text), a turn ~4× slower than at the start")


if __name__ == "__main__":
    asyncio.run(main())
