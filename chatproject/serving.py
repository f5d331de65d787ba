"""uvicorn's event loop for several worker processes: connections shared out evenly.

uvicorn's workers all listen on the one socket its supervisor bound, and a worker woken
by a connection accepts every connection waiting. A burst of sockets (users reconnecting
after a restart; the benchmark's 100 clients) lands unevenly: splits of 35/66 at 100
clients were common (BENCHMARKS.md). A conversation's run executes in the process that
holds its socket, so the busier worker set the latency tail while the other one idled.

Here a worker accepts one connection at a time, and only while it holds no more open
connections than the least loaded of its siblings; the others' counts are in a small
shared file beside the socket (`ConnectionLedger`). A worker that holds more waits a
moment for a sibling to take the connection and takes it itself if none does, so a
sibling that is stuck, or dead and not yet replaced, delays a connection by at most
`BACK_OFF_SECONDS`. Use it with `--loop chatproject.serving:EvenAcceptLoop` (README's
production command); anything else (one process, a unix socket, TLS) is served as uvloop
serves it.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import mmap
import os
import socket
import struct
import tempfile
from pathlib import Path

import uvloop

logger = logging.getLogger(__name__)

# How long a worker holding more connections than a sibling leaves a waiting connection
# to it, and how often a worker republishes its count (connections also close).
BACK_OFF_SECONDS = 0.05
REFRESH_SECONDS = 1.0


class EvenAcceptLoop(uvloop.Loop):
    async def create_server(self, protocol_factory, host=None, port=None, *, sock=None, ssl=None, backlog=100, **kwargs):
        if sock is None or ssl is not None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return await super().create_server(protocol_factory, host, port, sock=sock, ssl=ssl, backlog=backlog, **kwargs)
        return EvenAcceptServer(self, protocol_factory, sock, backlog)


class ConnectionLedger:
    """Open connections per worker of one listening socket, in a file the workers map.

    A slot per worker: its pid and its count, each written only by its owner. The file
    is named by the socket (shared by all workers, unique while it is open) and by the
    supervisor's pid, so workers of another server never meet in it. Slots of dead
    processes are ignored and reused.
    """

    SLOT = struct.Struct("qq")  # pid, open connections
    SLOTS = 256

    def __init__(self, sock: socket.socket, directory: str | None = None):
        stat = os.fstat(sock.fileno())
        name = f"chat-connections-{os.getppid()}-{stat.st_dev}-{stat.st_ino}"
        self.path = Path(directory or tempfile.gettempdir()) / name
        size = self.SLOT.size * self.SLOTS
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # siblings claim their slots one at a time
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
            self._offset = self._claim_slot() * self.SLOT.size  # claimed with count 0
        finally:
            # Unlocked explicitly: the mapping holds a duplicate of the descriptor, and
            # with it the lock, until it is closed.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _claim_slot(self) -> int:
        for index in range(self.SLOTS):
            pid, _ = self.SLOT.unpack_from(self._map, index * self.SLOT.size)
            if pid == 0 or not _alive(pid):
                self.SLOT.pack_into(self._map, index * self.SLOT.size, os.getpid(), 0)
                return index
        raise RuntimeError(f"more than {self.SLOTS} worker processes share {self.path}")

    def record(self, count: int) -> None:
        self.SLOT.pack_into(self._map, self._offset, os.getpid(), count)

    def fewest_elsewhere(self) -> int | None:
        """The fewest connections a live sibling holds; None if there is none."""
        counts = []
        for offset in range(0, len(self._map), self.SLOT.size):
            pid, count = self.SLOT.unpack_from(self._map, offset)
            if pid and offset != self._offset and _alive(pid):
                counts.append(count)
        return min(counts, default=None)

    def close(self) -> None:
        """Give up the slot; the last worker out removes the file."""
        self.SLOT.pack_into(self._map, self._offset, 0, 0)
        if self.fewest_elsewhere() is None:
            self.path.unlink(missing_ok=True)
        self._map.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EvenAcceptServer(asyncio.AbstractServer):
    """Serves a listening socket shared with sibling processes, one accept at a time,
    by the worker holding the fewest connections."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol_factory, sock: socket.socket, backlog: int):
        self._loop = loop
        self._protocol_factory = protocol_factory
        self._sock = sock
        self._transports: set[asyncio.BaseTransport] = set()
        self._ledger = ConnectionLedger(sock)
        self._connecting = 0  # accepted, transport not made yet
        self._back_off: asyncio.TimerHandle | None = None
        self._refresh: asyncio.TimerHandle | None = None
        self._closed = loop.create_future()
        sock.setblocking(False)
        sock.listen(backlog)
        loop.add_reader(sock.fileno(), self._on_connection_waiting)
        self._refresh_count()

    @property
    def sockets(self):
        return (self._sock,)

    def _open_connections(self) -> int:
        self._transports = {t for t in self._transports if not t.is_closing()}
        return len(self._transports) + self._connecting

    def _refresh_count(self) -> None:
        self._ledger.record(self._open_connections())
        self._refresh = self._loop.call_later(REFRESH_SECONDS, self._refresh_count)

    def _on_connection_waiting(self) -> None:
        fewest = self._ledger.fewest_elsewhere()
        if fewest is not None and self._open_connections() > fewest:
            # A sibling holds fewer: leave it the connection for a moment.
            self._loop.remove_reader(self._sock.fileno())
            self._back_off = self._loop.call_later(BACK_OFF_SECONDS, self._take_one_and_listen)
            return
        self._take_one()

    def _take_one_and_listen(self) -> None:
        self._loop.add_reader(self._sock.fileno(), self._on_connection_waiting)
        self._take_one()

    def _take_one(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # none waiting: a sibling took it
        except OSError as exc:  # out of file descriptors, say: the next wake-up tries again
            logger.warning("accept failed: %s", exc)
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connecting += 1
        self._ledger.record(self._open_connections())
        self._loop.create_task(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        try:
            transport, _ = await self._loop.connect_accepted_socket(self._protocol_factory, conn)
        except OSError as exc:  # the client went away before its transport was made
            logger.debug("connection dropped at accept: %s", exc)
            conn.close()
            return
        finally:
            self._connecting -= 1
        self._transports.add(transport)

    def close(self) -> None:
        if self._closed.done():
            return
        for handle in (self._back_off, self._refresh):
            if handle is not None:
                handle.cancel()
        self._loop.remove_reader(self._sock.fileno())
        self._ledger.close()
        self._closed.set_result(None)

    def is_serving(self) -> bool:
        return not self._closed.done()

    def get_loop(self):
        return self._loop

    async def start_serving(self) -> None:
        pass

    async def serve_forever(self) -> None:
        await self._closed

    async def wait_closed(self) -> None:
        await self._closed
