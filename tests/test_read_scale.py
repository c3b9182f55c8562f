"""The read side at scale: every page query can be answered from an index, however big the table.

Timing belongs to `make bench` (tests/bench_scale.py, 1,000,000 events). Here we read the plans the
database makes for the queries the pages really run: a missing index shows in a plan at any table
size. PostgreSQL picks a sequential scan for a table of ten rows whatever the indexes, so its plans
are taken with sequential scans switched off: the question is whether an index *can* answer.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.models import Event, EventStatus
from dashboard.web import feeds, pages
from dashboard.web.filters import SEARCH_FIELDS, EventFilter, event_meta

pytestmark = pytest.mark.django_db
POSTGRES = connection.vendor == "postgresql"


def make_event(upstream_id, *, minutes_ago=0, **fields):
    now = timezone.now()
    values = {
        "timestamp": now - timedelta(minutes=minutes_ago),
        "operation": "created",
        "target": "push",
        "project": "luotsi",
        "repository": "chef",
        "subject_id": "assimov",
        "raw": {},
        "first_seen_at": now,
        "synced_at": now,
        "progress_changed_at": now,
        "status": EventStatus.COMPLETED,
    } | fields
    return Event.objects.create(upstream_id=upstream_id, **values)


def plans(work, *, index_scans_only: bool = False, in_index_order: bool = False) -> list[str]:
    """The database's plan for each query that `work()` runs on the events table.

    `in_index_order` leaves only plain index scans, the plan PostgreSQL picks for a LIMIT on a big table.
    """
    with CaptureQueriesContext(connection) as ran:
        work()
    found = []
    with connection.cursor() as cursor:
        if POSTGRES:
            cursor.execute("SET LOCAL enable_seqscan = off")
            if index_scans_only:  # leaves the bitmap scans, which only an index condition can drive
                cursor.execute("SET LOCAL enable_indexscan = off")
            if in_index_order:
                cursor.execute("SET LOCAL enable_bitmapscan = off")
        for query in ran.captured_queries:
            if "dashboard_event" in query["sql"]:
                cursor.execute(("EXPLAIN " if POSTGRES else "EXPLAIN QUERY PLAN ") + query["sql"])
                found.append("\n".join(" ".join(str(part) for part in row) for row in cursor.fetchall()))
    return found


def unbounded_reads(plan: str) -> list[str]:
    """Reads of the events table, or of one of its indexes, from end to end (no condition bounds them)."""
    if not POSTGRES:
        return [line for line in plan.splitlines() if "SCAN dashboard_event" in line]
    reads, lines = [], plan.splitlines()
    for number, line in enumerate(lines):
        if " on dashboard_event" in line and "Scan" in line and "Bitmap Heap Scan" not in line:  # a heap scan reads its bitmap
            details = []
            for detail in lines[number + 1 :]:
                if "->" in detail:
                    break
                details.append(detail)
            if "Seq Scan" in line or not any("Index Cond" in detail for detail in details):
                reads.append(line.strip())
    return reads


@pytest.mark.parametrize(
    "name, index",
    [
        ("project", "event_project_feed"),
        ("repository", "event_repository_feed"),
        ("target", "event_target_feed"),
        ("operation", "event_operation_feed"),
        ("person", "event_person_feed"),
    ],
)
def test_each_filter_of_the_feed_has_an_index(name, index):
    make_event("a")
    [plan] = plans(lambda: feeds.event_feed(event_filter=EventFilter(**{name: "x"})))
    assert index in plan


def test_a_deep_page_starts_at_its_cursor_instead_of_reading_down_to_it():
    for number in range(5):
        make_event(f"e{number}", minutes_ago=number)
    page = feeds.event_feed(event_filter=EventFilter(), limit=2)
    [plan] = plans(lambda: feeds.event_feed(event_filter=EventFilter(), before=page.next_cursor, limit=2), in_index_order=True)
    assert "event_feed" in plan
    assert not unbounded_reads(plan), plan


def test_the_next_page_goes_on_where_the_last_one_stopped_even_within_one_second():
    now = timezone.now()
    for number in range(5):
        make_event(f"same-{number}", timestamp=now)  # one timestamp: only the id orders them
    make_event("older", minutes_ago=1)
    first = feeds.event_feed(event_filter=EventFilter(), limit=3)
    second = feeds.event_feed(event_filter=EventFilter(), before=first.next_cursor, limit=3)
    seen = [event.upstream_id for event in first.events + second.events]
    assert seen == ["same-4", "same-3", "same-2", "same-1", "same-0", "older"]


def test_filter_choices_probe_the_indexes_instead_of_reading_the_table():
    make_event("a")
    found = plans(feeds.filter_choices)
    assert len(found) == len(feeds.CHOICES)
    for plan in found:
        assert not unbounded_reads(plan), plan


def test_filter_choices_are_the_distinct_values_in_order(client, django_user_model, monkeypatch):
    make_event("a", project="zeta", repository="web")
    make_event("b", project="alpha", repository="chef", subject_id="")
    make_event("c", project="alpha", repository="", target="build", operation="completed")
    choices = feeds.filter_choices()
    assert choices == {
        "projects": ["alpha", "zeta"],
        "repositories": ["chef", "web"],
        "targets": ["build", "push"],
        "operations": ["completed", "created"],
        "people": ["assimov"],
    }
    client.force_login(django_user_model.objects.create_user("oncall", password="x"))
    html = client.get("/").content.decode()
    assert '<datalist id="repositories"><option value="chef"><option value="web"></datalist>' in html
    monkeypatch.setattr(feeds, "CHOICES_SHOWN", 1)
    assert feeds.filter_choices()["projects"] == ["alpha"]


def test_the_dashboard_snapshot_does_not_pay_for_the_filter_choices():
    make_event("a")
    with CaptureQueriesContext(connection) as ran:
        html = pages.snapshot(page="dashboard", event_filter=EventFilter(), now=timezone.now())
    assert 'data-event-id="a"' in html
    assert not [query["sql"] for query in ran.captured_queries if "DISTINCT" in query["sql"] or "RECURSIVE" in query["sql"]]


def test_search_finds_a_word_in_any_searched_field_like_the_live_filter_does():
    events = [make_event(field, **{field: f"x Needle-{field} y"}) for field in SEARCH_FIELDS]
    events.append(make_event("haystack", name="nothing here"))
    event_filter = EventFilter(q="needle")
    found = {event.upstream_id for event in feeds.event_feed(event_filter=event_filter).events}
    assert found == set(SEARCH_FIELDS)
    assert {event.upstream_id for event in events if event_filter.matches(event_meta(event))} == found


@pytest.mark.skipif(not POSTGRES, reason="SQLite searches with a plain scan; the trigram index is PostgreSQL's")
def test_search_uses_the_trigram_index_on_postgresql():
    make_event("a", name="Release pipeline")
    [plan] = plans(lambda: feeds.event_feed(event_filter=EventFilter(q="pipeline")), index_scans_only=True)
    assert "event_search_trgm" in plan, plan
