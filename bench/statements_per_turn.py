"""SQL statements per turn: what one chat turn costs the database, counted by PostgreSQL.

Each statement is a round trip, a parse and a plan on the server, and work on the
app's event loop or ORM thread: their number is what a turn's database cost is made of,
and it does not depend on how loaded the machine is, unlike timings.

Ours: a daphne server started here (offline model, no delay), one conversation,
`--turns` messages over one websocket after two warm-up turns. Baseline, same run: bare
LangGraph (MessagesState, one node, as in many_conversations.py) with AsyncPostgresSaver
on an AsyncConnectionPool, the same number of turns. PostgreSQL logs every statement of
the two databases (`ALTER DATABASE … SET log_statement = 'all'`); the bench reads the
server's log file, which it must be able to read (Debian: /var/log/postgresql/).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/statements_per_turn.py --turns 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import add_backend_flag, choose_backend, describe_backend, header, table  # noqa: E402
from tests.live import Server, Session, Templates, admin_sql, postgres_admin_url, receive_until, run_ended  # noqa: E402

CHECKPOINT_TABLES = re.compile(r"\b(checkpoints|checkpoint_blobs|checkpoint_writes)\b", re.IGNORECASE)
CHECKS = {"", "SELECT 1"}  # a pool's or Django's connection check


def log_file() -> Path:
    import psycopg

    with psycopg.connect(postgres_admin_url(), autocommit=True) as conn:
        current = conn.execute("SELECT pg_current_logfile()").fetchone()[0]
        if current:
            data = conn.execute("SHOW data_directory").fetchone()[0]
            return Path(data) / current
        cluster = conn.execute("SHOW cluster_name").fetchone()[0]  # Debian: "15/main"
    return Path(f"/var/log/postgresql/postgresql-{cluster.replace('/', '-')}.log")


def statements(text: str, database: str) -> list[str]:
    """The statements one database ran, from the log lines of its sessions."""
    found = []
    for entry in re.split(r"\n(?=\S)", text):
        if f"@{database} " in entry.split("LOG:", 1)[0]:
            match = re.search(r"LOG:  (?:statement|execute [^:]*): (.*)", entry, re.DOTALL)
            if match:
                found.append(" ".join(match.group(1).split()))
    return found


def classify(found: list[str], turns: int) -> dict[str, float]:
    kinds = Counter(
        "checks" if sql in CHECKS else "checkpointer" if CHECKPOINT_TABLES.search(sql) else "django" for sql in found
    )
    return {kind: kinds[kind] / turns for kind in ("checkpointer", "django", "checks")} | {"total": len(found) / turns}


class Log:
    def __init__(self, path: Path):
        self.path = path
        self.start = path.stat().st_size

    def read(self) -> str:
        time.sleep(0.5)  # the server writes its log asynchronously
        with open(self.path, errors="replace") as f:
            f.seek(self.start)
            return f.read()


def log_all_statements(database: str) -> None:
    admin_sql(f"ALTER DATABASE \"{database}\" SET log_statement = 'all'")


async def _chat(session: Session, conversation_id: str, turns: int) -> None:
    async with session.websocket(conversation_id) as ws:
        await receive_until(ws, lambda frame: frame["type"] == "snapshot")
        for turn in range(turns):
            await ws.send(json.dumps({"type": "message.send", "content": f"hello {turn}"}))
            await receive_until(ws, run_ended)


def ours(templates: Templates, workdir: Path, turns: int) -> tuple[dict, list[str]]:
    db = templates.new_database("postgres", redis=True)
    name = db.url.rsplit("/", 1)[1]
    server = Server(db, workdir / "server.log", extra_env={"OFFLINE_MODEL_DELAY_MS": "0"}).start()
    try:
        session = Session(server, "alice")
        conversation_id = session.create_conversation()["id"]
        asyncio.run(_chat(session, conversation_id, 2))  # warm-up: connections, first-turn work
        log_all_statements(name)
        server.stop()  # the setting applies to new sessions: restart
        server.start()
        session = Session(server, "alice")
        asyncio.run(_chat(session, conversation_id, 1))
        time.sleep(2)  # lease upkeep and the like settle
        log = Log(log_file())
        asyncio.run(_chat(session, conversation_id, turns))
        found = statements(log.read(), name)
    finally:
        server.stop()
    return classify(found, turns), found


async def _bare(url: str, turns: int) -> None:
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from bench.many_conversations import _graph

    async with AsyncConnectionPool(url, min_size=1, max_size=10, open=False,
                                   kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0}) as pool:
        graph = _graph(0).compile(checkpointer=AsyncPostgresSaver(pool))
        config = {"configurable": {"thread_id": "bare"}}
        for turn in range(turns):
            async for _ in graph.astream({"messages": [HumanMessage(content=f"hello {turn}")]}, config, stream_mode="custom"):
                pass


def bare(templates: Templates, turns: int) -> dict:
    db = templates.new_database("postgres")
    name = db.url.rsplit("/", 1)[1]
    log_all_statements(name)
    asyncio.run(_bare(db.url, 1))  # warm-up, as ours
    log = Log(log_file())
    asyncio.run(_bare(db.url, turns))
    return classify(statements(log.read(), name), turns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=10, help="turns counted")
    parser.add_argument("--show", action="store_true", help="also list our statements, most frequent first")
    add_backend_flag(parser, postgres_only=True)
    args = parser.parse_args()
    backend = choose_backend(args.backend)
    header("SQL statements per turn", {"backend": describe_backend(backend), "turns": args.turns,
                                       "log": str(log_file())})
    workdir = Path(tempfile.mkdtemp(prefix="bench-statements-"))
    templates = Templates(workdir)
    try:
        mine, found = ours(templates, workdir, args.turns)
        theirs = bare(templates, args.turns)
    finally:
        templates.drop_all()
    labels = {"total": "all statements", "checkpointer": "checkpoint tables", "django": "Django's tables",
              "checks": "connection checks"}
    table(["per turn", "ours", "bare LangGraph + AsyncPostgresSaver"],
                [[labels[k], f"{mine[k]:.1f}", f"{theirs[k]:.1f}"] for k in labels])
    print("\nours also stores the messages, the run and its status, which bare LangGraph does not have.")
    if args.show:
        for sql, count in Counter(re.sub(r"'[^']*'", "?", sql)[:140] for sql in found).most_common():
            print(f"{count / args.turns:5.1f}  {sql}")


if __name__ == "__main__":
    main()
