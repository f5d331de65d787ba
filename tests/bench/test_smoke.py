"""Each bench runs end to end with tiny parameters: it exits 0 and prints its table.

No timing is asserted: these only keep the benches working as the app changes.
"""

import os
import subprocess
import sys

import pytest

from tests.live import ROOT, postgres_admin_url, postgres_available, redis_available, redis_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(autouse=True)
def services():
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable (set DATABASE_URL)")
    if not redis_available():
        pytest.skip("Redis is not reachable (set REDIS_URL)")


@pytest.fixture
def databases(templates) -> dict[str, str]:
    """For a bench that makes databases: this session's migrated templates, which it copies
    instead of migrating its own (the migration itself is tested where the templates are made)."""
    return templates.to_hand_on("sqlite", "postgres")


def run_bench(name: str, *args: str, databases: dict[str, str] | None = None, timeout: float = 240) -> str:
    """The timeout only catches a hang: a slow CI machine took over a minute for startup."""
    env = {**os.environ, "DATABASE_URL": postgres_admin_url(), "REDIS_URL": redis_url(), **(databases or {})}
    result = subprocess.run(
        [sys.executable, f"bench/{name}.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "machine:" in result.stdout
    assert "|---" in result.stdout, result.stdout  # the table
    return result.stdout


def test_long_conversation(databases):
    out = run_bench("long_conversation", "--turns", "3", databases=databases)
    assert "bytes / text bytes" in out


def test_many_conversations(databases):
    out = run_bench("many_conversations", "--clients", "2", "--messages", "2", "--delay-ms", "5", "--workers", "2",
                    "--rounds", "2", "--users", "2", databases=databases)
    assert "turns/s" in out and "medians of 2 rounds" in out and "users=2" in out


def test_startup(databases):
    out = run_bench("startup", "--trials", "1", "--runs", "3", "--words", "20", "--delay-ms", "5", databases=databases)
    assert "/healthz 200" in out and "all 3 succeeded" in out


def test_sidebar(databases):
    out = run_bench("sidebar", "--conversations", "50", "--small", "10", "--repeats", "2", databases=databases)
    assert "queries at 50" in out


def test_turn_statements(databases):
    out = run_bench("turn_statements", "--calls", "3", "--rounds", "2", databases=databases)
    assert "all five (one turn)" in out


def test_statements_per_turn(databases):
    out = run_bench("statements_per_turn", "--turns", "2", databases=databases)
    assert "all statements" in out


def test_event_publish():
    out = run_bench("event_publish", "--events", "50")
    assert "Redis round trips" in out


def test_rendering():
    out = run_bench("rendering", "--repeats", "1", "--only", "reference link bomb,README")
    assert "plain text" in out and "unchanged" in out
