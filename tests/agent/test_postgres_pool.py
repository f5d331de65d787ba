"""agent.postgres_pool: a connection lent without a query unless the server disturbed it.
Written for one version of psycopg_pool's `check` hook."""

import asyncio
import importlib.metadata

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from agent.checkpointer import database_settings, is_postgres, postgres_conninfo
from agent.postgres_pool import checkpoint_pool

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_written_for_this_version_of_psycopg_pool():
    assert importlib.metadata.version("psycopg-pool") == "3.3.3", (
        "agent/postgres_pool.py relies on the pool calling `check` before it lends a connection (and trying "
        "another when it raises): check it, then update this version"
    )


def require_postgresql():
    if not is_postgres(database_settings()):
        pytest.skip("PostgreSQL is not reachable (set DATABASE_URL)")


@pytest.fixture
async def pool():
    require_postgresql()
    made = checkpoint_pool(postgres_conninfo(database_settings()), max_size=1)
    await made.open(wait=True, timeout=30)
    yield made
    await made.close()


@pytest.fixture
def stock_checks(monkeypatch):
    """The stock check's queries, counted."""
    made = []
    check = AsyncConnectionPool.check_connection

    async def counted(conn):
        made.append(conn)
        await check(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counted))
    return made


async def backend_pid(pool) -> int:
    async with pool.connection() as conn:
        return (await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone())["pid"]


async def test_a_quiet_connection_is_lent_without_a_query(pool, stock_checks):
    first = await backend_pid(pool)
    assert await backend_pid(pool) == first
    assert stock_checks == []


async def test_a_connection_the_server_ended_is_checked_and_replaced(pool, stock_checks):
    ended = await backend_pid(pool)
    async with await psycopg.AsyncConnection.connect(postgres_conninfo(database_settings()), autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", [ended])
    await asyncio.sleep(0.2)  # the server's goodbye reaches the idle connection's socket
    assert await backend_pid(pool) != ended
    assert len(stock_checks) == 1
