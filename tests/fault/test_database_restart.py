"""PostgreSQL restarted in the middle of a run: the run completes, nothing is lost.

The test runs its own PostgreSQL cluster (the machine's initdb and pg_ctl), so that it
can restart it without touching the shared server.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import require_services
from tests.live import Database, Server, base_env, free_port, interrupt_mid_reply, migrate_with_users, wait_for_runs

pytestmark = [pytest.mark.asyncio, pytest.mark.postgres]

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def as_postgres(*command: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)


class Cluster:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="chat-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self.dir.chmod(0o755)
        as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", *extra, action)

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture
def cluster():
    require_services("postgres")
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL server binaries are missing in {PG_BIN} (set PG_BIN)")
    cluster = Cluster()
    cluster.pg_ctl("start")
    yield cluster
    cluster.pg_ctl("stop", "-m", "immediate")
    shutil.rmtree(cluster.dir, ignore_errors=True)


async def test_a_run_completes_across_a_database_restart(cluster, tmp_path):
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE chat")
    env = {**base_env(), "DATABASE_URL": cluster.url("chat"), "OFFLINE_MODEL_DELAY_MS": "20"}
    migrate_with_users(env)
    database = Database("postgres", env, url=cluster.url("chat"))
    server = Server(database, tmp_path / "server.log").start()
    try:
        alice, conversation = await interrupt_mid_reply(server, lambda: cluster.pg_ctl("restart", "-m", "fast"))
        await wait_for_runs(database, "succeeded", timeout=60)
        messages = alice.request("GET", f"/api/conversations/{conversation['id']}/messages/").json()["results"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["content"].split(" ") == [f"tick{i}" for i in range(1, 201)]
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        server.stop()
