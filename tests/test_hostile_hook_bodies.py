"""Hostile JSON posted to the real `serve`'s webhook receivers: a one-line 400 and nothing queued, never a 500.

JSON nested 100,000 deep broke the parser itself; a NUL or a lone surrogate broke PostgreSQL's jsonb (run
with DATABASE_URL=postgres://… to see that half fail without the fix).
"""

import json

import pytest
import requests

from dashboard.models import HookDelivery
from tests.test_request_bodies import SECRET, server  # noqa: F401 -- the fixture

pytestmark = pytest.mark.django_db(transaction=True)

DEEP = b"[" * 100_000 + b"]" * 100_000


def hth_event(hth_sim, **changes) -> dict:
    push = hth_sim.add_event(target="push")
    return json.loads(hth_sim.webhook_body([push]))[0] | changes


@pytest.mark.parametrize(
    "path, body, reason",
    [
        ("/hooks/hth/", DEEP, "the body's JSON nests deeper than 32 levels"),
        ("/hooks/oneuptime/", b'{"noteId": "n1", "data": ' + DEEP + b"}", "the body's JSON nests deeper than 32 levels"),
        (
            "/hooks/oneuptime/",
            b'{"noteId": "n1", "data": ' + b'{"a": ' * 40 + b"1" + b"}" * 41,
            "the body's JSON nests deeper than 32 levels",
        ),
        ("/hooks/hth/", "NUL", "the body holds a NUL character (\\u0000)"),
        ("/hooks/hth/", "SURROGATE", "the body holds a lone surrogate (such as \\ud800), which is no character"),
        ("/hooks/hth/", "RAW SURROGATE", "the body holds a lone surrogate (such as \\ud800), which is no character"),
    ],
)
def test_hostile_json_is_a_one_line_400_and_nothing_is_queued(server, hth_sim, path, body, reason):  # noqa: F811
    if body == "NUL":
        body = json.dumps([hth_event(hth_sim, title="a\u0000b")]).encode()
    elif body == "SURROGATE":
        body = json.dumps([hth_event(hth_sim, title="a\ud800b")]).encode()  # the escape \ud800
    elif body == "RAW SURROGATE":
        body = json.dumps([hth_event(hth_sim, title="a\ud800b")], ensure_ascii=False).encode("utf-8", "surrogatepass")
    answer = requests.post(
        f"http://127.0.0.1:{server.port}{path}", data=body, headers={"X-Pulseboard-Secret": SECRET}, timeout=30
    )
    assert (answer.status_code, answer.text) == (400, reason + "\n")
    assert not HookDelivery.objects.exists()
