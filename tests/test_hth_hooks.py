"""POST /hooks/hth/ over HTTP (Django's test client), then the poller's drain applying what was queued."""

import hashlib
import hmac
import json
import time
import uuid

import pytest
from django.utils import timezone

from dashboard.models import Event, HookDelivery, Source, Transition, TransitionKind
from dashboard.poller import hooks
from dashboard.simulators.hth import hook_request
from dashboard.upstreams.webhooks import MAX_BODY_BYTES

pytestmark = pytest.mark.django_db
SECRET = "hth-webhook-secret"


@pytest.fixture
def hooked(hth_sim, settings):
    settings.HTH_WEBHOOK_SECRET = SECRET
    # A fresh record of signed Hooks already received, so that tests posting the same Hook do not meet.
    settings.CACHES = {
        **settings.CACHES,
        "hooks": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(uuid.uuid4())},
    }
    return hth_sim


def post_events(client, body: bytes, secret: str | None = SECRET):
    headers = {"X-Pulseboard-Secret": secret} if secret is not None else {}
    return client.post("/hooks/hth/", body, content_type="application/json", headers=headers)


def post_hook(client, payload: dict, *, secret: str = SECRET, content_type: str = "form", signature: str | None = None):
    body, headers = hook_request(payload, secret=secret, content_type=content_type)
    if signature is not None:
        headers["X-Hub-Signature"] = signature
    return client.post("/hooks/hth/", body, content_type=headers.pop("Content-Type"), headers=headers)


def test_a_webhook_push_is_stored_and_announced_when_the_poller_drains(client, hooked):
    push = hooked.add_event(target="push", project="luotsi")
    response = post_events(client, hooked.webhook_body([push]))
    assert response.status_code == 202
    assert response.json() == {"queued": 1}
    assert not Event.objects.exists()  # the receiver only queues

    assert hooks.drain(now=timezone.now()) == set()
    event = Event.objects.get(upstream_id=push["id"])
    assert event.target == "push" and event.project == "luotsi"
    assert event.subject["first_name"]  # the API's copy, read back by id: the push's own is never stored
    assert Transition.objects.filter(upstream_id=push["id"], kind=TransitionKind.EVENT_NEW).count() == 1
    assert not HookDelivery.objects.exists()


def test_repeated_and_late_deliveries_change_nothing_twice(client, hooked):
    build = hooked.start_build(project="luotsi", repository="chef")
    hooked.set_progress(build, 30)
    early = hooked.webhook_body([next(e for e in hooked.events if e["id"] == build)])
    hooked.update_event(build, progress=60, updated_at="2099-01-01T00:00:00Z")
    late = hooked.webhook_body([next(e for e in hooked.events if e["id"] == build)])

    for body in (late, late, early):  # the newer copy twice, then the older one arrives last
        assert post_events(client, body).status_code == 202
    hooks.drain(now=timezone.now())

    assert Event.objects.get(upstream_id=build).progress == 60
    assert Transition.objects.filter(upstream_id=build, kind=TransitionKind.EVENT_NEW).count() == 1
    before = list(Transition.objects.filter(upstream_id=build).values_list("kind", "progress"))
    synced_at = Event.objects.get(upstream_id=build).synced_at
    post_events(client, late)
    hooks.drain(now=timezone.now())
    assert list(Transition.objects.filter(upstream_id=build).values_list("kind", "progress")) == before
    assert Event.objects.get(upstream_id=build).synced_at == synced_at  # not even rewritten


def test_a_delivery_with_some_bad_events_queues_the_good_ones(client, hooked):
    push = hooked.add_event(target="push")
    good = json.loads(hooked.webhook_body([push]))
    response = post_events(client, json.dumps([*good, {"id": "x", "timestamp": "never"}, "nonsense"]).encode())
    assert response.status_code == 202
    assert HookDelivery.objects.get().payload == {"id": push["id"]}  # only the id: the event is read back


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"{not json", "the body is not JSON"),
        (b'{"id": "1"}', "expected a JSON array of Event objects, got dict"),
        (b'[{"id": "1"}]', "no usable event: event 1: missing timestamp"),
    ],
)
def test_a_malformed_body_is_a_one_line_400_and_nothing_is_queued(client, hooked, body, reason):
    response = post_events(client, body)
    assert response.status_code == 400
    assert response.content.decode() == reason + "\n"
    assert not HookDelivery.objects.exists()


@pytest.mark.parametrize("secret, status", [(None, 401), ("", 401), ("wrong", 403), (SECRET[:-1], 403)])
def test_a_missing_or_wrong_secret_is_refused_and_nothing_is_queued(client, hooked, secret, status):
    push = hooked.add_event(target="push")
    assert post_events(client, hooked.webhook_body([push]), secret=secret).status_code == status
    assert not HookDelivery.objects.exists()


def test_a_body_over_the_limit_is_413(client, hooked):
    response = post_events(client, b"[" + b" " * MAX_BODY_BYTES + b"]")
    assert response.status_code == 413
    assert not HookDelivery.objects.exists()


def test_an_unconfigured_receiver_is_404(client, hth_sim, settings):
    settings.HTH_WEBHOOK_SECRET = ""
    assert post_events(client, b"[]", secret="").status_code == 404
    settings.HTH_WEBHOOK_SECRET = SECRET
    settings.HTH_API_URL = ""
    assert post_events(client, b"[]").status_code == 404


def test_only_post_is_accepted(client, hooked):
    response = client.get("/hooks/hth/", headers={"X-Pulseboard-Secret": SECRET})
    assert response.status_code == 405
    assert response["Allow"] == "POST"


@pytest.mark.parametrize("content_type", ["form", "json"])
def test_a_signed_hook_is_a_hint_that_starts_the_list_pass(client, hooked, content_type):
    payload = {"operation": "created", "type": "project", "subject": {"id": "a1"}, "project": {"id": "luotsi"}}
    assert post_hook(client, payload, content_type=content_type).status_code == 202
    other = {**payload, "subject": {"id": "a2"}}
    assert post_hook(client, other, content_type=content_type).json() == {"queued": 0}  # a waiting hint covers it
    assert HookDelivery.objects.get().kind == HookDelivery.Kind.HTH_HINT
    assert hooks.drain(now=timezone.now()) == {Source.HTH}
    assert hooks.drain(now=timezone.now()) == set()


def test_a_hook_signature_may_carry_githubs_prefix(client, hooked):
    body, headers = hook_request({"type": "repository"}, secret=SECRET)
    headers["X-Hub-Signature"] = "sha1=" + headers["X-Hub-Signature"]
    response = client.post("/hooks/hth/", body, content_type=headers.pop("Content-Type"), headers=headers)
    assert response.status_code == 202


@pytest.mark.parametrize("signature, status", [("", 401), ("0" * 40, 403)])
def test_a_hook_with_a_bad_signature_is_refused(client, hooked, signature, status):
    assert post_hook(client, {"type": "repository"}, signature=signature).status_code == status
    assert not HookDelivery.objects.exists()


def test_a_hook_signed_with_another_secret_is_403(client, hooked):
    assert post_hook(client, {"type": "repository"}, secret="not-ours").status_code == 403


def test_a_hook_with_a_nonsense_body_is_400(client, hooked):
    body = b"%%%=&&"
    headers = {"X-Hub-Signature": hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()}
    response = client.post("/hooks/hth/", body, content_type="application/x-www-form-urlencoded", headers=headers)
    assert response.status_code == 400
    assert "form-encoded" in response.content.decode()


def test_a_hint_waits_in_the_queue_while_hinted_passes_are_spaced(client, hooked):
    push = hooked.add_event(target="push")
    post_events(client, hooked.webhook_body([push]))
    post_hook(client, {"type": "repository"})
    assert hooks.drain(now=timezone.now(), take_hints=False) == set()
    assert Event.objects.filter(upstream_id=push["id"]).exists()  # events are never held back
    assert list(HookDelivery.objects.values_list("kind", flat=True)) == [HookDelivery.Kind.HTH_HINT]
    assert hooks.drain(now=timezone.now()) == {Source.HTH}


def test_the_regular_pass_confirms_a_pushed_event_without_announcing_it_again(client, hooked):
    from dashboard.upstreams.hth import sync as hth_sync
    from dashboard.upstreams.hth.client import HthClient

    hth = HthClient(base_url=hooked.url, company_key=hooked.company_key, account_key=hooked.account_key)
    hth_sync.sync_events(client=hth, now=timezone.now())  # the mirror is backfilled
    push = hooked.add_event(target="push")
    post_events(client, hooked.webhook_body([push]))
    hooks.drain(now=timezone.now())
    hth_sync.sync_events(client=hth, now=timezone.now())
    assert list(Transition.objects.filter(upstream_id=push["id"]).values_list("kind", flat=True)) == [TransitionKind.EVENT_NEW]
    assert Event.objects.get(upstream_id=push["id"]).subject["first_name"]  # the list API's expanded subject now


def test_a_pushed_event_is_read_back_so_a_forged_or_reposted_copy_never_lands(client, hooked):
    build = hooked.start_build(project="luotsi", repository="chef")
    hooked.set_progress(build, 30)
    real = next(e for e in hooked.events if e["id"] == build)
    reposted = {**real, "operation": "failed", "progress": 100, "updated_at": "2099-01-01T00:00:00Z"}
    forged = {**real, "id": "forged-build", "operation": "failed", "timestamp": "2099-01-01T00:00:00Z"}
    assert post_events(client, json.dumps([reposted, forged]).encode()).json() == {"queued": 2}
    hooks.drain(now=timezone.now())
    assert not Event.objects.filter(upstream_id="forged-build").exists()  # Helix TeamHub answers 404 for it
    event = Event.objects.get(upstream_id=build)
    assert (event.operation, event.progress) == (real["operation"], 30)
    assert ("GET", f"/api/events/{build}?expand=subject") in hooked.requests


def test_pushed_events_outside_hth_projects_are_not_stored(client, hooked, settings):
    settings.HTH_PROJECTS = ["luotsi"]
    outside = hooked.add_event(target="push", project="tuike")
    assert post_events(client, hooked.webhook_body([outside])).json() == {"queued": 0}
    # A push may claim one of our projects for an event that upstream files under another.
    disguised = hooked.add_event(target="push", project="tuike")
    claim = {**json.loads(hooked.webhook_body([disguised]))[0], "project": {"id": "luotsi"}}
    assert post_events(client, json.dumps([claim]).encode()).json() == {"queued": 1}
    hooks.drain(now=timezone.now())
    assert not Event.objects.exists()


def test_repeated_ids_are_queued_once(client, hooked):
    push = hooked.add_event(target="push")
    body = hooked.webhook_body([push, push])
    assert post_events(client, body).json() == {"queued": 1}
    assert post_events(client, body).json() == {"queued": 0}
    assert HookDelivery.objects.count() == 1


def test_a_full_queue_drops_named_events_for_one_list_hint_and_says_so_in_metrics(client, hooked, settings, monkeypatch):
    from dashboard.upstreams import webhooks

    settings.METRICS_TOKEN = "scrape"
    monkeypatch.setattr(webhooks, "MAX_QUEUED", 5)
    events = [hooked.add_event(target="push") for _ in range(8)]
    assert post_events(client, hooked.webhook_body(events)).json() == {"queued": 6}
    assert post_events(client, hooked.webhook_body([hooked.add_event(target="push")])).json() == {"queued": 0}
    kinds = list(HookDelivery.objects.values_list("kind", flat=True))
    assert kinds.count(HookDelivery.Kind.HTH_EVENTS) == 5 and kinds.count(HookDelivery.Kind.HTH_HINT) == 1
    scraped = client.get("/metrics", headers={"Authorization": "Bearer scrape"}).content.decode()
    dropped = next(
        line for line in scraped.splitlines() if line.startswith('pulseboard_hook_deliveries_total{outcome="dropped"}')
    )
    assert float(dropped.split()[-1]) >= 4
    assert "pulseboard_hook_queue 6.0" in scraped
    assert hooks.drain(now=timezone.now()) == {Source.HTH}  # the list pass reads what was dropped


def test_a_drain_stops_between_two_reads_and_keeps_the_batch(client, hooked):
    events = [hooked.add_event(target="push") for _ in range(3)]
    post_events(client, hooked.webhook_body(events))
    asked = []
    hooks.drain(now=timezone.now(), should_stop=lambda: asked.append(1) or len(asked) > 1)
    reads = [path for method, path in hooked.requests if path.startswith("/api/events/")]
    assert len(reads) == 1  # one read, then the stop was seen
    assert HookDelivery.objects.count() == 3  # still queued for the next run


def test_a_replayed_hook_is_refused_within_the_window(client, hooked, monkeypatch):
    from dashboard.upstreams import webhooks

    monkeypatch.setattr(webhooks, "REPLAY_WINDOW_SECONDS", 1)
    payload = {"operation": "pushed", "type": "repository", "ref": "refs/heads/main"}
    assert post_hook(client, payload).status_code == 202
    hooks.drain(now=timezone.now())
    replay = post_hook(client, payload)
    assert (replay.status_code, replay.content) == (409, b"this signed Hook was already received in the last 1 seconds\n")
    assert not HookDelivery.objects.exists()
    assert post_hook(client, {**payload, "ref": "refs/heads/next"}).status_code == 202  # another Hook is news
    time.sleep(1.2)
    assert post_hook(client, payload).status_code == 202  # the record is bounded in time
