"""Pipelines live: a new run, a progress bump, a result or a fix reaches the tile and the pipeline page in place."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from dashboard.live import screens
from tests.test_live_socket import hth_client, receive_until, run, session_cookie, socket, sync_events  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


async def refresh_all(client):
    from django.utils import timezone

    from dashboard.upstreams.hth import sync

    await sync_to_async(sync.refresh_unfinished_events)(client=client, now=timezone.now())


def test_the_pipeline_page_and_the_wall_follow_a_rerun_to_its_fix(session_cookie, hth_sim, hth_client):  # noqa: F811
    async def scenario():
        failed = hth_sim.start_build(project="luotsi", repository="chef", name="Release")
        hth_sim.set_progress(failed, 100, operation="failed")
        await sync_events(hth_client)
        screen = await sync_to_async(screens.screen_named)("Office TV")
        wall = socket(f"/ws/live/?page=wall&screen={screen.key}")
        page = socket("/ws/live/?page=pipeline&pipeline=luotsi/chef/Release", (b"cookie", session_cookie))
        assert (await wall.connect())[0] and (await page.connect())[0]
        snapshot = await page.receive_from()
        assert 'id="pipeline-header"' in snapshot and 'data-pipeline-state="failing"' in snapshot
        await wall.receive_from()

        rerun = hth_sim.start_build(project="luotsi", repository="chef", name="Release")
        hth_sim.set_progress(rerun, 22)
        await sync_events(hth_client)
        tile = await receive_until(wall, f'data-run-id="{rerun}"')
        assert 'data-pipeline-state="failing" data-rerunning' in tile and 'data-level="red"' in tile
        pushed = await receive_until(page, f'data-run-id="{rerun}" data-run-result="running"')
        assert "re-running" in pushed

        await asyncio.sleep(1.1)  # the simulator's updated_at moves by whole seconds
        hth_sim.set_progress(rerun, 100)
        await refresh_all(hth_client)
        fixed = await receive_until(page, 'data-pipeline-state="passing"')
        assert "✓ fixed by" in fixed and "fixed by <strong>" in fixed
        tile = await receive_until(wall, 'data-pipeline-state="passing"')
        assert "✓ fixed by" in tile and 'data-level="clear"' in tile
        for communicator in (wall, page):
            await communicator.disconnect()

    run(scenario)


def test_an_unknown_pipeline_page_socket_is_refused(session_cookie):  # noqa: F811
    async def scenario():
        communicator = socket("/ws/live/?page=pipeline&pipeline=nope/nope/nope", (b"cookie", session_cookie))
        assert (await communicator.connect())[0]
        assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}

    run(scenario)


def test_an_incident_change_tells_each_kind_of_wall_its_own_level():
    from django.utils import timezone

    from dashboard.live import pipelines, push
    from dashboard.models import Event, EventStatus, Incident, Transition, TransitionKind

    now = timezone.now()
    failed = Event.objects.create(
        upstream_id="f1", timestamp=now, operation="failed", target="build", project="atlas", repository="web", name="Release",
        raw={}, first_seen_at=now, synced_at=now, progress_changed_at=now, status=EventStatus.FAILED,
    )  # fmt: skip
    pipelines.refresh(pipelines.keys_of([failed]))
    screens.screen_named("Luotsi TV", project="luotsi")
    incident = Incident.objects.create(upstream_id="i1", title="Slow", severity="Minor", state="Created", synced_at=now)
    messages = push.render_messages(
        [Transition(kind=TransitionKind.INCIDENT_CHANGED, upstream_id="i1", incident=incident, at=now)]
    )
    levels = {m.group: m.html for m in messages if 'id="wall-level"' in m.html}
    assert 'data-level="red"' in levels[push.wall_group("", 1.0)]  # every project: atlas fails
    assert 'data-level="notice"' in levels[push.wall_group("luotsi", 1.0)]  # luotsi's builds are fine; an incident is open


def test_a_pipeline_page_is_rendered_for_a_push_only_while_someone_has_it_open(session_cookie, settings):  # noqa: F811
    from django.utils import timezone

    from dashboard.live import pipelines, push, watchers
    from dashboard.models import Event, EventStatus, Transition, TransitionKind

    now = timezone.now()
    runs = [
        Event.objects.create(
            upstream_id=f"r{number}",
            timestamp=now,
            operation="completed",
            target="build",
            project="atlas",
            repository=f"repo{number}",
            name="Release",
            raw={},
            first_seen_at=now,
            synced_at=now,
            progress_changed_at=now,
            progress=40,
            status=EventStatus.LIVE,
        )  # fmt: skip
        for number in range(2)
    ]
    pipelines.refresh(pipelines.keys_of(runs))
    if settings.REDIS_URL:  # a watch outlives its test by up to a minute
        from dashboard.live import shared_redis

        shared_redis.sync_client().delete(*[watchers._key(f"atlas/repo{number}/Release") for number in range(2)])
    changes = [Transition(kind=TransitionKind.PROGRESSED, upstream_id=run.upstream_id, event=run, at=now) for run in runs]
    groups = lambda: {message.group for message in push.render_messages(changes) if message.group.startswith("pipeline.")}  # noqa: E731
    assert groups() == set(), "nobody has either page open"

    async def open_page():
        page = socket("/ws/live/?page=pipeline&pipeline=atlas/repo1/Release", (b"cookie", session_cookie))
        assert (await page.connect())[0]
        await page.receive_from()
        await page.disconnect()

    run(open_page)
    assert groups() == {push.pipeline_group("atlas/repo1/Release")}
    if not settings.REDIS_URL:
        watchers._here.clear()  # lapsed, as WATCH_SECONDS after the page closed
        assert groups() == set()
