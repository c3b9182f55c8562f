"""Rendered wall tiles (and the pipelines list's rows), kept by what they show: a wall re-renders its 40
tiles on every push and snapshot, and nearly all of them are the same as last time.

A tile shows its pipeline's row and that row's current and last runs, and every write of a run re-derives
the row and draws it a new random `revision`: so (pipeline, revision) names the tile's data on every node.
Its rank (the order a screen hides tiles in) is in the key too, with whether "fixed by" still shows and,
while a run is live, the minute: its bar grows with the time it has taken. The other times in a tile the
page rewrites every second anyway. Bounded, least recently used first out; one per process.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable

from django.utils.safestring import SafeString, mark_safe

MOST_TILES = 2_000  # ~5 KB each: 10 MB at most

_rendered: OrderedDict[tuple, str] = OrderedDict()
_lock = threading.Lock()  # the push thread and the socket handlers render at once


def tile(key: tuple, render: Callable[[], str]) -> SafeString:
    """The tile `key` names, rendered by `render` when this process has not rendered it yet."""
    with _lock:
        html = _rendered.get(key)
        if html is not None:
            _rendered.move_to_end(key)
            return mark_safe(html)  # noqa: S308 (rendered by our template, which escapes)
    html = render()
    with _lock:
        _rendered[key] = html
        while len(_rendered) > MOST_TILES:
            _rendered.popitem(last=False)
    return mark_safe(html)  # noqa: S308 (as above)


def has(key: tuple) -> bool:
    """Whether `tile(key, …)` would not render: then the tile's runs need not be read."""
    with _lock:
        return key in _rendered


def clear() -> None:
    with _lock:
        _rendered.clear()
