"""The websocket's Origin check: Django's own CSRF origin check, on the opening request."""

from channels.security.websocket import WebsocketDenier
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware


class Handshake(HttpRequest):
    """A websocket's opening request, with the headers and scheme Django reads from an
    HTTP request (ASGIRequest's rules: a header name with "_" is dropped)."""

    def __init__(self, scope):
        super().__init__()
        for name, value in scope.get("headers", []):
            name = name.decode("latin1")
            if "_" not in name:
                self.META["HTTP_" + name.upper().replace("-", "_")] = value.decode("latin1")
        self.secure = scope.get("scheme") == "wss"

    def _get_scheme(self) -> str:
        return "https" if self.secure else "http"


class SameOriginValidator:
    """Let a websocket in only from the app's own pages, by the rule Django's CSRF check
    applies to an HTTP POST: the Origin is the scheme and host (port included) the socket
    was opened on, the host one of ALLOWED_HOSTS, or it matches CSRF_TRUSTED_ORIGINS
    (wildcards included). A socket with no Origin or no Host is refused.

    Channels' AllowedHostsOriginValidator ignores the port (any other app on 127.0.0.1
    could connect) and lets every Origin, or none, in when ALLOWED_HOSTS is "*".
    `_origin_verified` is private to Django, used rather than copied so that the two
    checks cannot drift apart (tests/chatproject/test_entry_points.py covers both)."""

    csrf = CsrfViewMiddleware(lambda request: None)

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if self.allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

    @classmethod
    def allowed(cls, scope) -> bool:
        request = Handshake(scope)
        if "HTTP_ORIGIN" not in request.META or "HTTP_HOST" not in request.META:
            return False
        return cls.csrf._origin_verified(request)
