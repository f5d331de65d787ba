"""The websocket's Origin check: the same rule as Django's CSRF check for HTTP."""

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host


class SameOriginValidator:
    """Let a websocket in only from the app's own pages: its Origin must name the host the
    socket was opened on (one of ALLOWED_HOSTS), port included, or be one of
    CSRF_TRUSTED_ORIGINS. Channels' AllowedHostsOriginValidator ignores the port (any
    other app on 127.0.0.1 could connect) and lets every Origin, or none, in when
    ALLOWED_HOSTS is "*".

    The scheme is not compared: behind a proxy that ends TLS the socket arrives as ws://
    while the page is https://."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if self.allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

    @staticmethod
    def allowed(scope) -> bool:
        headers = {name: value.decode("latin1") for name, value in scope.get("headers", [])}
        origin, host = headers.get(b"origin", "").lower(), headers.get(b"host", "").lower()
        domain, _ = split_domain_port(host)
        if not origin or not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            return False
        return origin in {f"http://{host}", f"https://{host}"} or origin in settings.CSRF_TRUSTED_ORIGINS
