"""Bare and real Channels apps for `make bench`'s fan-out figures, each with the same bench-only trigger.

`application` is a bare consumer: one group, and a fixed string per message; `lean` the same without
Channels' database hop per message. `pulseboard` is the real app (config/asgi.py). All add
/ws/bench-trigger/: a socket whose every message becomes one group_send from inside the server, so
the in-memory layer (which lives in one process) is measured the same way as Redis. Side by side they
show what Pulseboard's consumer adds on top of daphne and the channel layer. Run them as
`python -m daphne tests.bench_echo:application` (or `:lean`, `:pulseboard`) with
DJANGO_SETTINGS_MODULE=config.settings, so they share the real settings' channel layer.
"""

import json

import django

django.setup()  # the channel layer comes from settings.CHANNEL_LAYERS

from config import collector  # noqa: E402

collector.tune()  # as config/asgi.py does for Pulseboard, so that the bare consumers get it too

from channels.consumer import get_handler_name  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path, re_path  # noqa: E402

GROUP = "bench"
FORWARDED = '<span id="bench">forwarded</span>'


class EchoConsumer(AsyncWebsocketConsumer):
    groups = [GROUP]  # an open broadcast: the base class joins it before accepting

    async def fragment(self, message):
        await self.send(text_data=FORWARDED)


class LeanEchoConsumer(EchoConsumer):
    """The bare consumer without Channels' per-message trip through the shared sync thread (its
    dispatch closes stale database connections first): the cheapest a socket with a channel of its
    own can forward, for a fair comparison with Pulseboard's hub."""

    async def dispatch(self, message):
        await getattr(self, get_handler_name(message))(message)


class TriggerConsumer(AsyncWebsocketConsumer):
    """Bench only: each message, [group, html], is sent to the group as a pushed fragment would be."""

    async def receive(self, text_data=None, bytes_data=None):
        group, html = json.loads(text_data)
        await self.channel_layer.group_send(group, {"type": "fragment", "html": html, "meta": None, "skip": "", "group": group})
        await self.send(text_data="sent")


TRIGGER = path("ws/bench-trigger/", TriggerConsumer.as_asgi())

application = ProtocolTypeRouter({"websocket": URLRouter([TRIGGER, path("ws/live/", EchoConsumer.as_asgi())])})
lean = ProtocolTypeRouter({"websocket": URLRouter([TRIGGER, path("ws/live/", LeanEchoConsumer.as_asgi())])})


def __getattr__(name: str):
    """`pulseboard`, built only when daphne asks: the bench process imports this module for GROUP alone."""
    if name != "pulseboard":
        raise AttributeError(name)
    from config import asgi

    return ProtocolTypeRouter({"http": asgi.application, "websocket": URLRouter([TRIGGER, re_path(r"^", asgi.application)])})
