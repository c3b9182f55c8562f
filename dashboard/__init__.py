"""Pulseboard's one Django app, laid out in the order the data flows:

    upstreams/   the APIs: a client and a sync per upstream (hth, oneuptime), the outbox's writeback, the
                 webhook receivers, and pulseboard-build (the CI build reporter, free of Django)
    models.py    the mirror, the sync's own state, and the transitions it commits
    id_tokens.py upstream ids and names made safe as HTML ids, URL segments and group names (any layer)
    live/        what counts as live, the transitions seam, pushes, and the /ws/live/ socket
    web/         the pages, /healthz, and markdown
    poller/      when and where the sync runs: the jobs and their cadence, which sources are configured,
                 the webhook queue's drain, the leader lock, retention, and daphne with the poller inside

Imports point down this list and never up (see the contracts in pyproject.toml): a page never calls an
upstream, and a sync reaches the pages only through `live.transitions`. `simulators/` (both APIs on
loopback), `demo.py`, `admin.py` and `management/` sit outside the flow and may use any of it; `metrics.py`
imports nothing of ours, so every layer may count into it.
"""
