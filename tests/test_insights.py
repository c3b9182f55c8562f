"""/insights/: the retrospective's figures from the real sync, kept true when upstream backdates or deletes."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model

from dashboard.upstreams.oneuptime import sync as note_sync
from dashboard.web import insights

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)  # the page counts weeks back from the real now
THIS_WEEK = insights.week_start(NOW)
LAST_WEEK = THIS_WEEK - timedelta(weeks=1)


@pytest.fixture
def sim(oneuptime_sim):
    oneuptime_sim.now = NOW
    oneuptime_sim.clock = lambda: oneuptime_sim.now
    return oneuptime_sim


@pytest.fixture
def person(client):
    client.force_login(get_user_model().objects.create_user("lead", password="a long pass phrase"))
    return client


def incident(sim, declared, *, severity, ack_after, resolve_after):
    """An incident declared at `declared`, acknowledged and resolved so many minutes later, through the incident form."""
    sim.now = declared
    made = sim.add_incident(severity=severity, declaredAt=declared)
    sim.now = declared + timedelta(minutes=ack_after)
    sim.set_incident_state(made["_id"], "Acknowledged")
    if resolve_after is not None:
        sim.now = declared + timedelta(minutes=resolve_after)
        sim.set_incident_state(made["_id"], "Resolved")
    sim.now = NOW
    return made


def row(html, kind, key):
    attribute = "week" if kind == "week" else "severity"
    return re.search(rf'data-insight="{kind}" data-{attribute}="{key}" data-incidents="(\d+)">(.*?)</tr>', html)


def test_per_week_and_per_severity_counts_and_medians_and_backdating_recomputes(sim, oneuptime_client, person):
    last_week = LAST_WEEK + timedelta(days=2)
    incident(sim, last_week, severity="Critical", ack_after=2, resolve_after=30)
    incident(sim, last_week + timedelta(hours=3), severity="Critical", ack_after=10, resolve_after=90)
    slow = incident(sim, last_week + timedelta(hours=6), severity="Major", ack_after=60, resolve_after=300)
    incident(sim, THIS_WEEK + timedelta(minutes=1), severity="Minor", ack_after=4, resolve_after=None)
    note_sync.sync_notes(client=oneuptime_client, now=NOW)

    html = person.get("/insights/?weeks=2").content.decode()
    earlier = row(html, "week", f"{LAST_WEEK:%Y-%m-%d}")
    assert earlier[1] == "3" and "<td>10 min</td>" in earlier[2], "median time to acknowledge of 2, 10 and 60 min"
    assert "<td>1 h 30 min</td>" in earlier[2] and "<td>5 h 0 min</td>" in earlier[2], "median and p90 to resolve"
    assert row(html, "week", f"{THIS_WEEK:%Y-%m-%d}")[1] == "1"
    assert row(html, "severity", "Critical")[1] == "2" and row(html, "severity", "Minor")[1] == "1"
    assert 'data-insight="total" data-incidents="4"' in html

    sim.now = NOW + timedelta(minutes=1)
    sim.delete_state(sim.states_of(slow["_id"])[1]["_id"])  # acknowledged, but really a minute in:
    sim.add_state(slow["_id"], "Acknowledged", starts_at=last_week + timedelta(hours=6, minutes=1))
    note_sync.sync_notes(client=oneuptime_client, now=sim.now)
    html = person.get("/insights/?weeks=2&severity=Major").content.decode()
    assert row(html, "week", f"{LAST_WEEK:%Y-%m-%d}")[1] == "1"
    assert "<td>1 min</td>" in row(html, "week", f"{LAST_WEEK:%Y-%m-%d}")[2], "the backdated acknowledgement counts"


def test_it_asks_for_a_login_and_a_nonsense_filter_shows_the_default(client, person):
    assert client.get("/insights/").status_code == 200
    client.logout()
    assert client.get("/insights/").status_code == 302
    person.force_login(get_user_model().objects.get(username="lead"))
    html = person.get("/insights/?weeks=lots&severity=%00").content.decode()
    assert html.count('data-insight="week"') == insights.WEEKS_SHOWN


def test_quantiles_are_times_some_incident_took():
    minutes = [timedelta(minutes=m) for m in (1, 2, 3, 4, 100)]
    assert insights.quantile([(minutes, 5)], 0.5) == timedelta(minutes=3)
    assert insights.quantile([(minutes, 5)], 0.9) == timedelta(minutes=100)
    assert insights.quantile([(minutes[:2], 2), (minutes[2:], 3)], 0.5) == timedelta(minutes=3), "weeks merge"
    assert insights.quantile([], 0.5) is None and insights.quantile([([], 0)], 0.5) is None


def test_a_kept_sample_stands_for_the_durations_it_replaced():
    """Past samples.MOST a week keeps evenly spaced durations; merged with a small week, each still counts
    for as many as it stands for, so the median stays where the whole list puts it."""
    from dashboard.live import samples

    many = list(range(1, 3001))  # seconds; with the small week's one, 3,001 durations whose median is 1,501
    kept = samples.bounded(many)
    assert len(kept) == samples.MOST and kept[0] == 1 and kept == sorted(kept)
    assert insights.quantile([(kept, len(many)), ([5000], 1)], 0.5) == 1501
    assert insights.quantile([(kept, len(many)), ([5000], 1)], 0.9) == 2701 == insights.quantile([(many + [5000], 3001)], 0.9)


def test_a_week_of_more_incidents_than_a_row_keeps_stays_bounded_with_true_counts(person):
    from dashboard.live import incident_weeks, samples
    from dashboard.models import IncidentClock, IncidentWeek

    count = 2 * samples.MOST + 500
    IncidentClock.objects.bulk_create(
        IncidentClock(
            incident_upstream_id=f"many-{number}",
            started_at=LAST_WEEK + timedelta(seconds=number),
            time_to_acknowledge=timedelta(seconds=number + 1),
            time_to_resolve=timedelta(minutes=number + 1) if number % 2 else None,
            computed_at=NOW,
        )
        for number in range(count)
    )
    incident_weeks.refresh([LAST_WEEK])
    week = IncidentWeek.objects.get(week=LAST_WEEK)
    assert (week.incidents, week.acknowledged, week.resolved) == (count, count, count // 2)
    assert len(week.acknowledge_seconds) == len(week.resolve_seconds) == samples.MOST
    html = person.get("/insights/?weeks=2").content.decode()
    assert f"({count // 2} resolved)" in html
    median = insights.insights(now=NOW, weeks=2).total.tta_median.total_seconds()
    assert abs(median - 1250) <= 3, f"the median of 1 s to 2,500 s is 1,250 s, not {median}"
    assert incident_weeks.differences() == []


def test_a_clock_whose_incident_has_not_arrived_counts_without_severity_and_every_row_still_dumps(person):
    """The clock reads its severity through a join by upstream id; a timeline can arrive before its incident."""
    from io import StringIO

    from django.core.management import call_command

    from dashboard.live import incident_clock
    from dashboard.models import IncidentStateChange

    started = THIS_WEEK  # a week begins at its Monday, 00:00 UTC, inclusive
    IncidentStateChange.objects.create(
        upstream_id="st-1", incident_upstream_id="not-yet", state_name="Created", state_order=1, starts_at=started, synced_at=NOW
    )
    incident_clock.rebuild(["not-yet"], now=NOW)
    html = person.get("/insights/?weeks=1").content.decode()
    assert row(html, "week", f"{THIS_WEEK:%Y-%m-%d}")[1] == "1"
    assert row(html, "severity", r"\(none\)")[1] == "1"
    out = StringIO()
    call_command("dumpdata", "dashboard", stdout=out)
    assert '"incident_upstream_id": "not-yet"' in out.getvalue()


def test_a_severity_changed_upstream_moves_the_incident_and_the_weeks_equal_a_rebuild(sim, oneuptime_client, person):
    """/insights/ reads per-week rows the sync derives (live/incident_weeks.py): a change of severity alone,
    which leaves the timeline as it was, still moves the incident, and the rows are what a rebuild gives."""
    from dashboard.live import incident_weeks

    made = incident(sim, LAST_WEEK + timedelta(days=1), severity="Minor", ack_after=5, resolve_after=20)
    note_sync.sync_notes(client=oneuptime_client, now=NOW)  # the first pass: history, derived and told to nobody
    html = person.get("/insights/?weeks=2").content.decode()
    assert row(html, "severity", "Minor")[1] == "1" and "<td>5 min</td>" in row(html, "severity", "Minor")[2]

    sim.now = NOW + timedelta(minutes=1)
    with sim._lock:
        sim._touch(sim.incidents[made["_id"]], {"incidentSeverityId": sim._severities["Critical"]}, sim.clock())
    note_sync.sync_notes(client=oneuptime_client, now=sim.now)
    html = person.get("/insights/?weeks=2").content.decode()
    assert row(html, "severity", "Critical")[1] == "1" and row(html, "severity", "Minor") is None
    assert incident_weeks.differences() == []
