"""Idle HTTP connections under daphne.

daphne's HTTP server is Twisted's: it closes a connection that has sent nothing for its
factory's `timeOut` (Twisted's default is 60 s; any byte received starts it again), and
refuses a request head over 16 KiB or 500 headers. daphne has no option for that
timeout, so the app sets it on daphne's listening factory once the reactor runs:
HTTP_IDLE_TIMEOUT_SECONDS. It covers a client that sends part of a request and then
nothing, and a keep-alive connection left idle between requests; Twisted suspends it
while a request is being answered, and a websocket, once upgraded, is no longer Twisted's
HTTP connection. uvicorn sets its own (`--timeout-keep-alive`).
"""

import sys

from django.conf import settings


def time_out_idle_connections() -> None:
    if "twisted.internet.reactor" not in sys.modules:
        return  # not daphne
    from twisted.internet import reactor

    reactor.callWhenRunning(_set_idle_timeout, reactor, settings.HTTP_IDLE_TIMEOUT_SECONDS)


def _set_idle_timeout(reactor, seconds: int) -> None:
    from twisted.web.http import HTTPFactory

    # daphne listens before it runs the reactor: its ports are among the reactor's readers.
    for reader in reactor.getReaders():
        factory = getattr(reader, "factory", None)
        if isinstance(factory, HTTPFactory):
            factory.timeOut = seconds
