"""chatproject.serving: worker processes on one listening socket share connections evenly.

The several-process check (uvicorn, 100 sockets at once) is
tests/fault/test_workers.py::test_new_connections_are_spread_over_the_workers."""

import asyncio
import socket
import subprocess
import sys
import time

import pytest

from chatproject import serving
from chatproject.serving import ConnectionLedger, EvenAcceptLoop, EvenAcceptServer


@pytest.fixture
def listening():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_workers_of_one_socket_see_each_others_counts(listening, tmp_path):
    first, second = ConnectionLedger(listening, str(tmp_path)), ConnectionLedger(listening, str(tmp_path))
    assert first.path == second.path
    assert first.fewest_elsewhere() == 0 and second.fewest_elsewhere() == 0
    first.record(7)
    assert second.fewest_elsewhere() == 7
    second.record(3)
    assert first.fewest_elsewhere() == 3
    second.close()
    assert first.fewest_elsewhere() is None
    first.close()
    assert not first.path.exists()  # the last one out removes the file


def test_the_slot_of_a_dead_worker_is_ignored_and_reused(listening, tmp_path):
    survivor = ConnectionLedger(listening, str(tmp_path))
    dead = ConnectionLedger(listening, str(tmp_path))
    dead.SLOT.pack_into(dead._map, dead._offset, _dead_pid(), 0)  # as a worker killed with SIGKILL leaves it
    assert survivor.fewest_elsewhere() is None
    replacement = ConnectionLedger(listening, str(tmp_path))
    assert replacement._offset == dead._offset
    assert survivor.fewest_elsewhere() == 0


def test_a_worker_holding_more_than_a_sibling_leaves_it_the_connection(listening, tmp_path, monkeypatch):
    monkeypatch.setattr(serving, "BACK_OFF_SECONDS", 0.5)
    monkeypatch.setattr(serving.tempfile, "gettempdir", lambda: str(tmp_path))
    sibling = ConnectionLedger(listening, str(tmp_path))
    loop = EvenAcceptLoop()
    try:
        loop.run_until_complete(_accepts_by_fewest_connections(loop, listening, sibling))
    finally:
        loop.close()


async def _accepts_by_fewest_connections(loop, listening, sibling) -> None:
    accepted: list[float] = []

    class Recorder(asyncio.Protocol):
        def connection_made(self, transport):
            accepted.append(time.monotonic())

    server = await loop.create_server(Recorder, sock=listening)
    assert isinstance(server, EvenAcceptServer)
    clients = []

    async def connect() -> float:
        before = len(accepted)
        began = time.monotonic()
        clients.append(socket.create_connection(listening.getsockname()))
        while len(accepted) == before:
            await asyncio.sleep(0.01)
        return accepted[-1] - began

    # Both hold none: this worker takes it at once.
    assert await connect() < 0.3
    # It holds one, the sibling none: the sibling is left the connection for the back-off,
    # then (the sibling never takes it) this worker takes it.
    assert 0.4 < await connect() < 2
    # The sibling holds more: at once again.
    sibling.record(10)
    assert await connect() < 0.3
    server.close()
    await server.wait_closed()
    for client in clients:
        client.close()
