"""What /metrics exposes (Prometheus), counted where the work happens; imports nothing of ours, so any layer may.

Each process counts for itself (its syncs, its sockets, its pushes): scrape every node. The figures read
from the database (events, notes, live builds, the outbox) are added at scrape time by web/scrape.py
and are the same on every node.
"""

from prometheus_client import Counter, Gauge, Histogram

SYNC_SECONDS = Histogram(
    "pulseboard_sync_duration_seconds",
    "How long one run of a source's task took (sync, live refresh, outbox delivery).",
    ["source", "task"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
SYNC_RUNS = Counter(
    "pulseboard_sync_runs_total",
    "Runs of a source's task by outcome: ok, unfinished (stopped early) or error.",
    ["source", "task", "outcome"],
)
UPSTREAM_ERRORS = Counter(
    "pulseboard_upstream_errors_total",
    "Upstream answers of 400 or more by status, 'network' for no answer, 'too_large' for one past the size limit.",
    ["status"],
)
HOOK_DELIVERIES = Counter(
    "pulseboard_hook_deliveries_total",
    "Webhook deliveries by what the receiver did: queued, coalesced (the same was already waiting),"
    " or dropped (the queue was full; the regular passes read it anyway).",
    ["outcome"],
)
SOCKETS = Gauge("pulseboard_sockets_connected", "Live sockets open on this process.")
PUSH_SECONDS = Histogram(
    "pulseboard_push_fanout_seconds",
    "Time to hand one sync's fragments to the channel layer.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

PUSHES_DROPPED = Counter(
    "pulseboard_pushes_dropped_total",
    "Batches of fragments not sent (push queue full, or the channel layer failed); their pages resnapshot.",
)


def count_upstream_answer(response, *args, **kwargs):
    """A requests response hook: count error answers by status."""
    if response.status_code >= 400:
        UPSTREAM_ERRORS.labels(str(response.status_code)).inc()
