"""A bare Channels app for `make bench`'s fan-out figures: one group, and a fixed string per message.

Side by side with Pulseboard's LiveConsumer it shows what our consumer adds on top of daphne and
channels_redis themselves (the access check, a rendered snapshot per connect, a heartbeat task).
Run it as `python -m daphne tests.bench_echo:application` with DJANGO_SETTINGS_MODULE=config.settings
and REDIS_URL set, so that it shares the real settings' channel layer.
"""

import django

django.setup()  # the channel layer comes from settings.CHANNEL_LAYERS

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = "bench"
FORWARDED = '<span id="bench">forwarded</span>'


class EchoConsumer(AsyncWebsocketConsumer):
    groups = [GROUP]  # an open broadcast: the base class joins it before accepting

    async def fragment(self, message):
        await self.send(text_data=FORWARDED)


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/live/", EchoConsumer.as_asgi())])})
