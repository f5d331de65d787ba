"""Slow and idle HTTP connections to daphne are closed after HTTP_IDLE_TIMEOUT_SECONDS
(chatproject/connections.py): a request sent in part and then nothing, an idle
keep-alive connection; hundreds of them do not keep a normal request from its answer.
A websocket stays open however long it is quiet."""

import asyncio
import http.client
import socket
import time

import httpx
import pytest

from tests.live import Server, Session, receive, send

TIMEOUT = 3
# The timeout's own latitude on a busy machine: Twisted's timer, the process's scheduling.
LATE = 3
PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"
CONNECTIONS = 300

# Under pytest-xdist (`--dist loadgroup`) the module runs in one process, which starts its
# daphne once.
pytestmark = pytest.mark.xdist_group("test_slow_connections")


@pytest.fixture(scope="module")
def app(templates, tmp_path_factory):
    """One daphne for the module, on SQLite: what is tested is the HTTP server's, not the
    database's, and no test leaves a connection open for the next."""
    log = tmp_path_factory.mktemp("slow-connections") / "server.log"
    server = Server(templates.new_database("sqlite"), log, extra_env={"HTTP_IDLE_TIMEOUT_SECONDS": str(TIMEOUT)}).start()
    yield server
    server.stop()


def partial_request(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(PARTIAL)
    return sock


def seconds_until_closed(sock: socket.socket, since: float) -> float:
    """Waits for the server to close the connection (it sends nothing before)."""
    sock.settimeout(TIMEOUT + LATE)
    assert sock.recv(1024) == b""
    sock.close()
    return time.monotonic() - since


def test_a_request_sent_in_part_and_then_nothing_is_closed_after_the_timeout(app):
    started = time.monotonic()
    closed = seconds_until_closed(partial_request(app), started)
    assert TIMEOUT - 0.5 < closed < TIMEOUT + LATE


async def test_many_unfinished_requests_do_not_keep_a_normal_one_from_its_answer(app):
    async def unfinished():
        reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
        writer.write(PARTIAL)
        await writer.drain()
        return reader, writer

    started = time.monotonic()
    slow = await asyncio.gather(*(unfinished() for _ in range(CONNECTIONS)))
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{app.url}/healthz", timeout=TIMEOUT)
    assert answer.status_code == 200 and time.monotonic() - started < TIMEOUT  # before any slow one is closed
    closed = await asyncio.wait_for(asyncio.gather(*(reader.read() for reader, _ in slow)), TIMEOUT + LATE)
    assert closed == [b""] * CONNECTIONS
    for _, writer in slow:
        writer.close()


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(app):
    connection = http.client.HTTPConnection("127.0.0.1", app.port)
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    assert response.status == 200 and not response.will_close
    response.read()
    answered = time.monotonic()
    closed = seconds_until_closed(connection.sock, answered)
    assert TIMEOUT - 0.5 < closed < TIMEOUT + LATE


async def test_a_quiet_websocket_stays_open(app):
    alice = Session(app, "alice")
    conversation = alice.create_conversation()
    async with alice.websocket(conversation["id"]) as ws:
        assert (await receive(ws))["type"] == "snapshot"
        await asyncio.sleep(TIMEOUT + 1)
        await send(ws, {"type": "ping"})
        assert (await receive(ws))["type"] == "pong"
