"""ASGI entry point: HTTP and websockets, with the agent runtime started at startup."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from conversations.runs.lifecycle import RuntimeLifecycle  # noqa: E402
from chatproject.connections import time_out_idle_connections  # noqa: E402
from chatproject.websocket import SameOriginValidator  # noqa: E402
from conversations.routing import websocket_urlpatterns  # noqa: E402

application = RuntimeLifecycle(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
time_out_idle_connections()
