"""Per-user limits: how often a user may send messages or decide approvals, and how many
websockets they may hold open (settings RATE_LIMIT_*, WS_MAX_SOCKETS_PER_USER).

Each limit counts a user across all their sockets and conversations: in Redis when
REDIS_URL is set, so that every server process shares it, else in this process.

Hand-written rather than a library: django-ratelimit needs an HTTP request, and `limits`
would bring a second Redis client (coredis) beside the one events.py keeps per event
loop, and still no count of open sockets. Both algorithms below are a Lua script each.

- Rates are a sliding-window log: a sorted set of the times of the user's accepted
  actions in the last window. One more is accepted while fewer than the limit are in it;
  a refused one is not recorded, so it never extends a lock-out, and `retry_after` is
  when the oldest leaves the window. Exact ("N in any W seconds"), unlike a fixed window
  that allows 2N around a boundary; at most N small entries per user.
- Sockets are a sorted set of slots scored by when they expire (now + TTL). Each socket
  refreshes its slot every TTL/3 while it lives and removes it when it closes; a process
  killed with SIGKILL refreshes nothing, so its slots lapse within the TTL. Expired
  slots are dropped before each count.

Times come from Redis's own clock (TIME), so processes whose clocks differ still agree.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import defaultdict, deque
from functools import cache

from django.conf import settings
from redis.exceptions import RedisError

from . import events

logger = logging.getLogger(__name__)

RATE_SETTINGS = {"messages": "RATE_LIMIT_MESSAGES", "decisions": "RATE_LIMIT_DECISIONS"}

NOW_MS = """
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)
"""
# KEYS[1] the user's log; ARGV: limit, window (ms), a unique member. 0 (recorded), or
# the milliseconds until one more is accepted.
HIT = NOW_MS + """
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tonumber(oldest[2]) + window - now
"""
# KEYS[1] the user's slots; ARGV: cap, TTL (ms), the slot. 1 (taken) or 0 (full).
ACQUIRE = NOW_MS + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# KEYS[1] the user's slots; ARGV: TTL (ms), the slot.
REFRESH = NOW_MS + """
redis.call('ZADD', KEYS[1], now + ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
"""


class RateLimited(Exception):
    def __init__(self, action: str, limit: int, window: float, retry_after: float):
        super().__init__(f"too many {action}: at most {limit} every {window:g} s; try again in {retry_after:.1f} s")
        self.retry_after = retry_after


class RedisStore:
    async def hit(self, key: str, limit: int, window: float) -> float:
        wait_ms = await events.script(HIT)(keys=[key], args=[limit, round(window * 1000), uuid.uuid4().hex])
        return int(wait_ms) / 1000

    async def acquire(self, key: str, slot: str, cap: int, ttl: float) -> bool:
        return bool(await events.script(ACQUIRE)(keys=[key], args=[cap, round(ttl * 1000), slot]))

    async def refresh(self, key: str, slot: str, ttl: float) -> None:
        await events.script(REFRESH)(keys=[key], args=[round(ttl * 1000), slot])

    async def release(self, key: str, slot: str) -> None:
        await events.redis_client().zrem(key, slot)


class LocalStore:
    """The same counts in one process (no Redis). Only the event loop's thread uses it,
    and nothing awaits between a check and its write, so no lock is needed; a process
    that dies takes its sockets' slots with it, so they need no expiry."""

    def __init__(self):
        self.logs: defaultdict[str, deque[float]] = defaultdict(deque)
        self.slots: defaultdict[str, set[str]] = defaultdict(set)

    async def hit(self, key: str, limit: int, window: float) -> float:
        now, log = time.monotonic(), self.logs[key]
        while log and log[0] <= now - window:
            log.popleft()
        if len(log) < limit:
            log.append(now)
            return 0
        return log[0] + window - now

    async def acquire(self, key: str, slot: str, cap: int, ttl: float) -> bool:
        if len(self.slots[key]) >= cap:
            return False
        self.slots[key].add(slot)
        return True

    async def refresh(self, key: str, slot: str, ttl: float) -> None:
        pass

    async def release(self, key: str, slot: str) -> None:
        self.slots[key].discard(slot)
        if not self.slots[key]:
            del self.slots[key]


_local_store = LocalStore()


def _store() -> RedisStore | LocalStore:
    return RedisStore() if settings.REDIS_URL else _local_store


@cache
def _namespace() -> str:
    """User ids number the users of one database: apps on different databases that share
    a Redis (or the tests, each with its own database) must not share counts."""
    database = settings.DATABASES["default"]
    where = f"{database.get('HOST', '')}:{database.get('PORT', '')}/{database['NAME']}"
    return hashlib.sha256(where.encode()).hexdigest()[:12]


def _key(kind: str, user) -> str:
    return f"chat:limit:{_namespace()}:{user.pk}:{kind}"


async def acheck_rate(*, user, action: str) -> None:
    """Count one action ("messages" or "decisions") of the user; raise RateLimited, and
    count nothing, if the user has used up the limit. Call it before changing anything."""
    rate = getattr(settings, RATE_SETTINGS[action])
    if rate is None:
        return
    limit, window = rate
    wait = await _store().hit(_key(action, user), limit, window)
    if wait > 0:
        raise RateLimited(action, limit, window, retry_after=max(round(wait, 3), 0.001))


class SocketSlot:
    """One of the user's open websockets, counted toward WS_MAX_SOCKETS_PER_USER while
    it is held: `acquire` on connect, `release` when the socket is gone."""

    def __init__(self, user):
        self.key = _key("sockets", user)
        self.slot = uuid.uuid4().hex
        self.held = False
        self.refresher: asyncio.Task | None = None

    async def acquire(self) -> bool:
        cap, ttl = settings.WS_MAX_SOCKETS_PER_USER, settings.WS_SOCKET_TTL_SECONDS
        if not cap:
            return True
        self.held = await _store().acquire(self.key, self.slot, cap, ttl)
        if self.held and settings.REDIS_URL:
            self.refresher = asyncio.create_task(self.refresh_forever(ttl))
        return self.held

    async def refresh_forever(self, ttl: float) -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                await _store().refresh(self.key, self.slot, ttl)
            except RedisError:  # the next try may succeed before the slot lapses
                logger.warning("could not refresh a websocket's slot", exc_info=True)

    async def release(self) -> None:
        if self.refresher is not None:
            self.refresher.cancel()
        if self.held:
            self.held = False
            await _store().release(self.key, self.slot)
