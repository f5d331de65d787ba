"""The checkpointer starts with the ASGI app: under daphne (no lifespan) and uvicorn (lifespan)."""

import subprocess
import time

import httpx
import pytest

from tests.conftest import require_services
from tests.live import PYTHON, ROOT, Server, admin_sql, free_port

READY = "agent runtime ready"


def wait_for_log(log_path, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = log_path.read_text()
        if text in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in log:\n{log_path.read_text()[-3000:]}")


def start(command: list[str], database, log_path) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=ROOT, env=database.env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)


# Each server on one backend: how the runtime starts is the server's matter, and every
# other live test starts daphne on both backends and waits for /healthz to answer 200.
# daphne on SQLite, as `make start` runs it; uvicorn on PostgreSQL and Redis, as in production.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_daphne_starts_the_checkpointer_before_any_request(database, tmp_path):
    port, log_path = free_port(), tmp_path / "daphne.log"
    process = start([PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chatproject.asgi:application"], database, log_path)
    try:
        log = wait_for_log(log_path, READY)  # no request has been sent yet
        assert "GET" not in log
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert response.json() == {"database": "ok", "checkpointer": "ok"}
        assert log_path.read_text().count(READY) == 1
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_uvicorn_starts_it_in_lifespan_and_closes_it_at_shutdown(database, tmp_path):
    port, log_path = free_port(), tmp_path / "uvicorn.log"
    process = start(
        [PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--lifespan", "on", "chatproject.asgi:application"],
        database,
        log_path,
    )
    try:
        log = wait_for_log(log_path, "Application startup complete")
        assert log.index(READY) < log.index("Application startup complete")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert "agent runtime closed" in log_path.read_text()


@pytest.mark.postgres
def test_healthz_answers_503_while_the_database_is_gone_and_200_after(templates, tmp_path):
    require_services("postgres")
    database = templates.new_database("postgres")
    server = Server(database, tmp_path / "server.log").start()
    name = database.url.rpartition("/")[2]
    try:
        admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        response = httpx.get(f"{server.url}/healthz", timeout=30)
        assert response.status_code == 503
        assert response.json()["database"].startswith("failed")
        assert response.json()["checkpointer"].startswith("failed")
        admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        response = httpx.get(f"{server.url}/healthz", timeout=30)
        assert response.status_code == 200, response.text
    finally:
        admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        server.stop()
