"""One channel per process for all its sockets: a group's message comes in once and is handed to each.

Channels gives every socket a channel of its own in every group it joins. A fragment for 5,000 walls
then became 5,000 queue entries (channels_redis's core layer writes once per process, but with 5,000
channel names, and copies it into 5,000 queues on arrival), 5,000 task wake-ups and, from the tasks
and queues made again for each message, a garbage collector that paused the process for a second
every few fragments (`make bench`). Here a process joins each group once, with the hub's channel,
and its reader hands every message to the group's local sockets in turn.

A message names its group (`send` below adds it): one channel now hears many groups. The hub joins
again well within the layer's group expiry, which would otherwise end a membership (and a wall's
pushes) after a day, silently. The groups of one screen or one person (live/push.py, live/sessions.py)
carry rare control messages: each family shares one layer group, so that 5,000 walls, each in a group
of its own screen, cost the layer one membership, and every hub picks out its own screen's sockets.
"""

import asyncio
import logging
import weakref
from collections import defaultdict
from typing import Protocol

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

RENEW_SECONDS = 3600.0  # at most; a quarter of the layer's group expiry when that is shorter
RETRY_MOST_SECONDS = 5.0


class Listener(Protocol):
    async def deliver(self, message: dict) -> None: ...


SHARED_FAMILIES = ("screen", "user")  # "screen.12" is heard through the layer's group "screen"


async def send(group: str, message: dict) -> None:
    """group_send for the sockets of every process, through their hubs."""
    await get_channel_layer().group_send(layer_group(group), {**message, "group": group})


def layer_group(group: str) -> str:
    family = group.split(".", 1)[0]
    return family if family in SHARED_FAMILIES else group


async def join(group: str, listener: Listener) -> None:
    await _hub().join(group, listener)


async def leave(group: str, listener: Listener) -> None:
    await _hub().leave(group, listener)


def listening() -> bool:
    return _hub().listening()


class Hub:
    def __init__(self, layer):
        self.layer = layer
        self.members: defaultdict[str, set[Listener]] = defaultdict(set)
        self.families: defaultdict[str, int] = defaultdict(int)  # groups with local listeners, per family
        self.in_layer: set[str] = set()  # the groups the layer has the hub's channel in
        self.settling: dict[str, asyncio.Future] = {}  # a group whose membership is on its way to the layer
        self.channel = ""
        self.started: asyncio.Future | None = None
        self.failing = False
        self.repairing: asyncio.Future | None = None
        self.tasks: list[asyncio.Task] = []

    async def join(self, group: str, listener: Listener) -> None:
        await self.start()
        if not self.members[group] and layer_group(group) != group:
            self.families[layer_group(group)] += 1
        self.members[group].add(listener)
        if self.failing:
            return  # repair() joins it once the layer answers; a handshake must not wait on a dead layer
        try:
            await self.settle(group)
        except BaseException:
            self._forget(group, listener)
            raise

    async def leave(self, group: str, listener: Listener) -> None:
        if self._forget(group, listener):
            await self.settle(group)

    def _forget(self, group: str, listener: Listener) -> bool:
        members = self.members.get(group)
        if members is None or listener not in members:
            return False
        members.discard(listener)
        if not members:
            del self.members[group]
            if layer_group(group) != group:
                self.families[layer_group(group)] -= 1
        return True

    async def settle(self, group: str) -> None:
        """Bring the layer's membership in line with whether the group has local listeners. One caller
        at a time does it per layer group, and checks again after each change, so a last leave and a
        first join that cross never leave the layer with the wrong one; the others wait for it. A
        storm's thousands of joins to one group cost the layer one group_add."""
        group = layer_group(group)
        while (running := self.settling.get(group)) is not None:
            await asyncio.shield(running)
        settled = self.settling[group] = asyncio.get_running_loop().create_future()
        try:
            while self.heard(group) != (group in self.in_layer):
                if self.heard(group):
                    await self.layer.group_add(group, self.channel)
                    self.in_layer.add(group)
                else:
                    await self.layer.group_discard(group, self.channel)
                    self.in_layer.discard(group)
        except Exception:
            # The layer is down: the socket joins anyway, deaf (its heartbeat says so) until the hub
            # reaches the layer again and joins every group its sockets hear (repair()).
            self.lost()
        finally:
            del self.settling[group]
            settled.set_result(None)

    def heard(self, group: str) -> bool:
        """Does a local socket listen to this layer group (or, for a family, to one of its members)?"""
        if group in SHARED_FAMILIES:
            return self.families[group] > 0
        return group in self.members

    async def start(self) -> None:
        if self.started is None:
            self.started = asyncio.ensure_future(self._start())
        try:
            await asyncio.shield(self.started)
        except Exception:
            self.started = None  # the next join tries again
            raise

    async def _start(self) -> None:
        self.channel = await self.layer.new_channel()  # the layer's own prefix: channels_redis reads no other
        self.tasks = [asyncio.create_task(self.read()), asyncio.create_task(self.renew())]

    async def read(self) -> None:
        """Each message to each listener of its group, in the order they came: a listener's deliver()
        must not wait on anything slow (consumers.py hands slow work to a task of its own). A layer
        that fails (Redis down or restarted) is read again after a pause, while repair() joins the
        hub's groups afresh (a restarted Redis has forgotten them)."""
        pause = 0.0
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except Exception as error:
                pause = min(RETRY_MOST_SECONDS, pause * 2 or 0.5)
                self.lost(error)
                await asyncio.sleep(pause)
                continue
            pause = 0.0
            group = message.get("group")
            if group is None:
                log.warning("a %r message without its group reached the hub; dropped", message.get("type"))
                continue
            await self.hand_out(self.members.get(group, ()), message)

    async def hand_out(self, listeners, message: dict) -> None:
        for listener in list(listeners):
            try:
                await listener.deliver(message)
            except Exception:
                log.exception("delivering a %r message to one socket failed", message.get("type"))

    def lost(self, error: BaseException | None = None) -> None:
        """The layer failed: one log line per outage (not a traceback per socket or per retry), and one
        repair that runs until the layer answers again."""
        if not self.failing:
            self.failing = True
            reason = " ".join(str(error).split())[:200] if error else "joining a group failed"
            log.warning("the channel layer is unreachable (%s); sockets stay open, deaf, until it is back", reason)
        if self.repairing is None or self.repairing.done():
            self.repairing = asyncio.ensure_future(self.repair())

    async def repair(self) -> None:
        """Join every group a local socket hears, until that works; then tell every socket it may have
        missed messages, so each sends its page a fresh snapshot (live/consumers.py)."""
        pause = 0.5
        while True:
            await asyncio.sleep(pause)
            try:
                for group in {layer_group(group) for group in self.members} - set(self.settling):
                    await self.layer.group_add(group, self.channel)
                    self.in_layer.add(group)
                for group in self.in_layer - {layer_group(group) for group in self.members} - set(self.settling):
                    await self.layer.group_discard(group, self.channel)
                    self.in_layer.discard(group)
            except Exception:
                pause = min(RETRY_MOST_SECONDS, pause * 2)
                continue
            break
        self.failing = False
        log.warning("the channel layer is back; %d sockets take a fresh snapshot", len(self.listeners()))
        await self.hand_out(self.listeners(), {"type": "layer.resumed"})

    def listeners(self) -> set[Listener]:
        return set().union(*self.members.values()) if self.members else set()

    async def renew(self) -> None:
        expiry = getattr(self.layer, "group_expiry", None)
        every = min(RENEW_SECONDS, expiry / 4) if expiry else RENEW_SECONDS
        while True:
            await asyncio.sleep(every)
            await self.join_again()

    async def join_again(self) -> None:
        for group in [group for group in self.in_layer if group not in self.settling]:
            try:
                await self.layer.group_add(group, self.channel)
            except Exception as error:
                self.lost(error)
                return

    def listening(self) -> bool:
        """False while the layer cannot be read: a socket's heartbeat then stays away, and its page,
        hearing nothing, says it is not live and reconnects, rather than show a quiet wall as live."""
        return not self.failing and bool(self.tasks) and not any(task.done() for task in self.tasks)


_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> {layer: Hub}


def _hub() -> Hub:
    """The hub of this event loop and channel layer (tests change layers; each loop has its own queues)."""
    layer = get_channel_layer()
    hubs = _hubs.setdefault(asyncio.get_running_loop(), {})
    if layer not in hubs:
        for old in hubs.values():  # a layer replaced (settings changed) takes its old hub with it
            for task in [*old.tasks, old.repairing]:
                if task:
                    task.cancel()
        hubs.clear()
        hubs[layer] = Hub(layer)
    return hubs[layer]
