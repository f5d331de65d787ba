"""Real server processes for tests: daphne on 127.0.0.1, each on its own database.

A backend's database is migrated once per session (with two users in it); each test
gets a copy: a copied SQLite file, or a PostgreSQL database made from a template. A
process the tests start (a bench) is handed those templates in CHAT_TEST_TEMPLATES and
copies them instead of migrating its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import websockets

from tests.support.frames import until_waiting

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PASSWORD = "correct horse battery staple"
USERS = ("alice", "bob")
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def postgres_admin_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_POSTGRES_URL


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def postgres_available() -> bool:
    try:
        psycopg.connect(postgres_admin_url(), connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(redis_url(), socket_connect_timeout=3).ping())
    except redis.RedisError:
        return False


def url_with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SQLITE_PATH"}}
    env.update(
        DJANGO_SETTINGS_MODULE="chatproject.settings",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        OFFLINE_MODEL_DELAY_MS="5",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=check, timeout=300
    )


CREATE_USERS = (
    "from django.contrib.auth.models import User\n"
    f"for name in {USERS!r}: User.objects.create_user(name, password={PASSWORD!r})\n"
)


def migrate_with_users(env: dict[str, str]) -> None:
    """`migrate`, then the users USERS: one Django start-up instead of two."""
    manage(env, "shell", "-c", "from django.core.management import call_command\n"
           "call_command('migrate', interactive=False)\n" + CREATE_USERS)


def create_staff(database: "Database", username: str, *permissions: str, superuser: bool = False) -> None:
    """A staff user (password PASSWORD) with the given "app_label.codename" permissions."""
    manage(
        database.env,
        "shell",
        "-c",
        "from django.contrib.auth.models import Permission, User\n"
        f"user = User.objects.create_user({username!r}, password={PASSWORD!r}, is_staff=True, is_superuser={superuser!r})\n"
        f"for perm in {list(permissions)!r}:\n"
        "    app_label, codename = perm.split('.')\n"
        "    user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))\n",
    )


def create_superuser(database: "Database", username: str) -> None:
    """A superuser (password PASSWORD) in one statement, with no `manage.py` start-up:
    alice's password hash, copied."""
    create_user(database, username, superuser=True)


def create_user(database: "Database", username: str, *, superuser: bool = False) -> None:
    """A user (password PASSWORD; staff too if `superuser`) in one statement, with no
    `manage.py` start-up: alice's password hash, copied."""
    database.query(
        "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined) "
        "SELECT password, %s, %s, '', '', '', %s, TRUE, date_joined FROM auth_user WHERE username = 'alice' RETURNING id",
        (superuser, username, superuser),
    )


# Run by add_messages after CONVERSATION, COUNT and TABLE_EVERY are set.
ADD_MESSAGES = """
from datetime import timedelta
from django.utils import timezone
from conversations.models import Message
from conversations.rendering import html_to_store

def content(i):
    if TABLE_EVERY and i % TABLE_EVERY == 0:
        return (f"**{i}** " + "| a | b |\\n|---|---|\\n| 1 | 2 |\\n" * 1_300)[:32_000]
    return f"message {i}"

start = timezone.now() + timedelta(seconds=1)
messages = Message.objects.bulk_create(
    Message(conversation_id=CONVERSATION, role=("user", "assistant")[i % 2], content=content(i), html=html_to_store(content(i)))
    for i in range(COUNT)
)
for i in range(0, COUNT, 3):
    Message.objects.filter(pk__in=[m.pk for m in messages[i:i + 3]]).update(created_at=start + timedelta(seconds=i))
"""


def add_messages(database: "Database", conversation_id: str, count: int, *, table_every: int = 0) -> None:
    """`count` messages at the end of a conversation that never forked, made directly as
    the app stores them: "message <i>" (with `table_every`, every so many a Markdown table
    at the message limit instead), three at each time after now (ties ordered by id)."""
    values = f"CONVERSATION, COUNT, TABLE_EVERY = {conversation_id!r}, {count}, {table_every}\n"
    manage(database.env, "shell", "-c", values + ADD_MESSAGES)


@dataclass
class Database:
    """One test's database, and how to point a server at it and read it directly."""

    backend: str
    env: dict[str, str]
    path: Path | None = None
    url: str | None = None

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.backend == "sqlite":
            with sqlite3.connect(self.path, timeout=30) as conn:
                return conn.execute(sql.replace("%s", "?"), params).fetchall()
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def count(self, table: str, where: str = "", params: tuple = ()) -> int:
        return self.query(f"SELECT COUNT(*) FROM {table} {'WHERE ' + where if where else ''}", params)[0][0]

    def counts(self) -> dict[str, int]:
        tables = ["conversations_conversation", "conversations_message", "conversations_run"]
        return {table: self.count(table) for table in tables}

    def checkpoint_rows(self, thread_id: str) -> int:
        tables = ["checkpoints", "writes"] if self.backend == "sqlite" else ["checkpoints", "checkpoint_blobs", "checkpoint_writes"]
        return sum(self.count(table, "thread_id = %s", (thread_id,)) for table in tables)


# JSON: backend → its migrated template (a PostgreSQL database name, a SQLite file), made
# by another Templates that outlives this process.
TEMPLATES_ENV = "CHAT_TEST_TEMPLATES"


class Templates:
    """Migrated template databases, one per backend, made on first use or handed in
    through TEMPLATES_ENV."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.handed_in: dict[str, str] = json.loads(os.environ.get(TEMPLATES_ENV) or "{}")
        # The template of each backend in use, made here or handed in.
        self.made: dict[str, str | Path] = {}
        self.copies: list[str] = []

    def template(self, backend: str):
        if backend not in self.made:
            if backend in self.handed_in:
                given = self.handed_in[backend]
                self.made[backend] = Path(given) if backend == "sqlite" else given
            else:
                self.made[backend] = self._make(backend)
        return self.made[backend]

    def to_hand_on(self, *backends: str) -> dict[str, str]:
        """The environment that hands these backends' templates to another process."""
        return {TEMPLATES_ENV: json.dumps({backend: str(self.template(backend)) for backend in backends})}

    def _make(self, backend: str):
        env = base_env()
        if backend == "sqlite":
            path = self.workdir / "template.sqlite3"
            env["SQLITE_PATH"] = str(path)
        else:
            name = f"chat_tpl_{os.getpid()}"
            admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin_sql(f'CREATE DATABASE "{name}"')
            env["DATABASE_URL"] = url_with_database(postgres_admin_url(), name)
        migrate_with_users(env)
        if backend == "sqlite":
            with sqlite3.connect(path) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return path
        return name

    def new_database(self, backend: str, *, redis: bool = False) -> Database:
        template = self.template(backend)
        env = base_env()
        if redis:
            env["REDIS_URL"] = redis_url()
        if backend == "sqlite":
            path = self.workdir / f"db-{uuid.uuid4().hex[:8]}.sqlite3"
            shutil.copy(template, path)
            env["SQLITE_PATH"] = str(path)
            return Database(backend, env, path=path)
        name = f"chat_t_{uuid.uuid4().hex[:10]}"
        admin_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self.copies.append(name)
        url = url_with_database(postgres_admin_url(), name)
        env["DATABASE_URL"] = url
        return Database(backend, env, url=url)

    def drop_all(self) -> None:
        """Drop the copies, and the PostgreSQL template if it was made here."""
        for name in self.copies:
            admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if "postgres" in self.made and "postgres" not in self.handed_in:
            admin_sql(f'DROP DATABASE IF EXISTS "{self.made["postgres"]}" WITH (FORCE)')


def admin_sql(sql: str) -> None:
    with psycopg.connect(postgres_admin_url(), autocommit=True) as conn:
        conn.execute(sql)


def _connections_on_port(pid: int, port: int) -> int:
    """The established TCP connections to local port `port` that process `pid` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            count += local_port == port and state == "01" and inode in inodes  # 01: ESTABLISHED
    return count


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# daphne's cap on the websocket messages it sends (and receives) as `make start` sets it:
# a single message frame over its default 1 MiB (a long tool result) would close the socket.
DAPHNE_FLAGS = ["--websocket-max-message-size", str(16 * 2**20)]

# uvicorn's fast loop, HTTP parser and websocket implementation, as README's production command.
UVICORN_FLAGS = ["--lifespan", "on", "--loop", "uvloop", "--http", "httptools", "--ws", "websockets"]


@dataclass
class Server:
    """A daphne process (or uvicorn with worker processes) serving the app; start,
    kill -9, start again."""

    database: Database
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    # 0: one daphne process; N: uvicorn's supervisor with N worker processes.
    workers: int = 0
    # daphne's options (default DAPHNE_FLAGS), e.g. [*DAPHNE_FLAGS, "--proxy-headers"].
    daphne_flags: list[str] = field(default_factory=lambda: list(DAPHNE_FLAGS))
    process: subprocess.Popen | None = None
    # Where the log of the latest start begins.
    log_offset: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.workers:
            # The several-process server of README's "Several server processes".
            return [PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                    str(self.workers), *UVICORN_FLAGS, "chatproject.asgi:application"]
        return [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), *self.daphne_flags, "chatproject.asgi:application"]

    # The timeouts only catch a hang: on a loaded machine a start can take many seconds.
    def start(self, timeout: float = 60) -> "Server":
        return self.spawn().until_healthy(timeout)

    def spawn(self) -> "Server":
        """Start the process and return at once: servers spawned together start up side by side."""
        with open(self.log_path, "a") as log:
            self.log_offset = log.tell()
            self.process = subprocess.Popen(
                self.command(),
                start_new_session=True,  # its own process group: kill() reaches uvicorn's workers too
                cwd=ROOT,
                env={**self.database.env, **self.extra_env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def until_healthy(self, timeout: float = 60) -> "Server":
        """Wait until the spawned server serves: /healthz 200, and every worker started."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200 and self._all_workers_up():
                        return self
                except httpx.HTTPError:
                    pass
                # A refused connection costs next to nothing: poll often, the start is what is waited for.
                time.sleep(0.02)
        self.kill()  # no fixture's teardown stops a server whose start failed
        raise RuntimeError(f"server did not become healthy: {self.log_path.read_text()[-3000:]}")

    def _all_workers_up(self) -> bool:
        """Every worker has started up: until then the first one up could take every
        connection made (and keep it)."""
        if not self.workers:
            return True
        with open(self.log_path, "rb") as log:
            log.seek(self.log_offset)
            return log.read().count(b"Application startup complete.") >= self.workers

    def kill(self) -> None:
        """SIGKILL to every process of the server: no cleanup of any kind runs."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def worker_pids(self) -> list[int]:
        """The pids of uvicorn's worker processes (spawned by its supervisor)."""
        pids = []
        for proc in Path("/proc").iterdir():
            try:
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if parent == self.process.pid and b"spawn_main" in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except (OSError, ValueError, IndexError):
                continue
        return sorted(pids)

    def connections_per_worker(self) -> dict[int, int]:
        """How many established TCP connections to the server's port each worker holds."""
        return {pid: _connections_on_port(pid, self.port) for pid in self.worker_pids()}

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def start_together(*servers: Server, timeout: float = 60) -> list[Server]:
    """Start servers side by side (a start is mostly CPU: imports); all healthy, or all stopped."""
    try:
        for server in servers:
            server.spawn()
        return [server.until_healthy(timeout) for server in servers]
    except BaseException:
        for server in servers:
            server.stop()
        raise


class Session:
    """A logged-in user of a server: HTTP with session and CSRF cookies, and websockets."""

    def __init__(self, server: Server, username: str | None):
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=30)
        if username:
            self.login(username)

    def login(self, username: str) -> None:
        self.http.get("/accounts/login/")
        response = self.http.post(
            "/accounts/login/",
            data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": self.http.cookies["csrftoken"]},
            headers={"Referer": f"{self.server.url}/accounts/login/"},
        )
        assert response.status_code == 302, response.text
        self.http.get("/")  # refresh the CSRF cookie rotated at login

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if "csrftoken" in self.http.cookies:
            headers.setdefault("X-CSRFToken", self.http.cookies["csrftoken"])
        headers.setdefault("Origin", self.server.url)
        return self.http.request(method, path, headers=headers, **kwargs)

    def create_conversation(self, title: str = "") -> dict:
        response = self.request("POST", "/api/conversations/", json={"title": title})
        assert response.status_code == 201, response.text
        return response.json()

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())

    def websocket(self, conversation_id: str, *, origin: str | None = None, cookies: bool = True):
        headers = {"Origin": origin or self.server.url}
        if cookies:
            headers["Cookie"] = self.cookie_header()
        return websockets.connect(
            f"{self.server.ws_url}/ws/conversations/{conversation_id}/",
            additional_headers=headers,
            max_size=2**24,
            open_timeout=10,
        )


async def receive(ws, timeout: float = 30) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def receive_until(ws, predicate, timeout: float = 60) -> list[dict]:
    """Frames up to and including the first one that matches."""
    frames: list[dict] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        frame = await receive(ws, max(0.1, deadline - asyncio.get_running_loop().time()))
        frames.append(frame)
        if predicate(frame):
            return frames


def run_ended(frame: dict) -> bool:
    return frame["type"] == "run" and frame["run"]["status"] in {"succeeded", "failed", "cancelled"}


async def send(ws, frame: dict) -> None:
    await ws.send(json.dumps(frame))


async def chat(ws, content: str, client_id: str | None = None) -> list[dict]:
    """Send a message and return every frame up to the end of its run."""
    frame = {"type": "message.send", "content": content}
    if client_id:
        frame["client_id"] = client_id
    await send(ws, frame)
    return await receive_until(ws, run_ended)


async def interrupt_mid_reply(server: Server, interrupt) -> tuple[Session, dict]:
    """Start `slow 200` and call `interrupt` (a SIGKILL, a SIGTERM, a database restart…)
    while the reply streams; it runs on a thread, as it may take seconds."""
    alice = Session(server, "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        await receive(ws)
        await send(ws, {"type": "message.send", "content": "slow 200"})
        await receive_until(ws, lambda f: f["type"] == "token" and "tick10" in f["delta"])
        await asyncio.to_thread(interrupt)
    return alice, conversation


async def ask(ws, content: str) -> tuple[dict, list[dict]]:
    """Send a message that calls a tool needing approval; the approval and the frames."""
    await send(ws, {"type": "message.send", "content": content})
    frames = await receive_until(ws, until_waiting)
    assert frames[-1]["run"]["status"] == "waiting", frames
    approvals = [f["approval"] for f in frames if f["type"] == "approval"]
    assert len(approvals) == 1
    return approvals[0], frames


async def decide(ws, approval, decision, **fields) -> list[dict]:
    await send(ws, {"type": "approval.decide", "approval_id": approval["id"], "decision": decision, **fields})
    return await receive_until(ws, run_ended)


async def fork(ws, frame: dict) -> tuple[dict, list[dict]]:
    """Send an edit or regenerate; the snapshot of the new branch and the run's frames."""
    await send(ws, frame)
    snapshot = await receive(ws)
    assert snapshot["type"] == "snapshot", snapshot
    return snapshot, await receive_until(ws, run_ended)


async def switch(ws, **target) -> dict:
    await send(ws, {"type": "branch.switch", **target})
    snapshot = await receive(ws)
    assert snapshot["type"] == "snapshot", snapshot
    return snapshot


async def talk(ws, *texts: str) -> None:
    for text in texts:
        frames = await chat(ws, text)
        assert frames[-1]["run"]["status"] == "succeeded"


async def snapshot_of(session: Session, conversation) -> dict:
    async with session.websocket(conversation["id"]) as ws:
        return await receive(ws)


async def wait_for_runs(database, *statuses: str, timeout: float = 30) -> float:
    """Seconds until the runs, in the order they were created, have these statuses."""
    expected = [(status,) for status in statuses]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if database.query("SELECT status FROM conversations_run ORDER BY created_at") == expected:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"the runs are {database.query('SELECT status FROM conversations_run ORDER BY created_at')}, not {statuses}")
