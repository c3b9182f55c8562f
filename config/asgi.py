"""The protocol router: HTTP goes to Django, WebSockets through the origin check (scheme, host, port) and auth."""

import os

from django.core.asgi import get_asgi_application

from config import collector

collector.tune()  # a process that serves sockets holds thousands of them
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()  # before anything that imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from dashboard.live import routing  # noqa: E402
from dashboard.live.login import login_stack  # noqa: E402
from dashboard.live.origin import SameOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(login_stack(URLRouter(routing.websocket_urlpatterns))),
    }
)
