"""When and where the sync runs: what runs every 30 s, and on which node.

    jobs.py       the loop: every task of every source on its own cadence, each in its own thread
    sources.py    which upstreams are configured, their tasks, and one run of each kept for /healthz
    hooks.py      the webhook queue's drain: a delivery becomes a hint that wakes its source's sync
    leader.py     which process of many polls: the PostgreSQL advisory lock
    retention.py  housekeeping: old events deleted in small batches
    server.py     daphne with the jobs inside one process (`serve`)

The poller sits above the data path: it may call the upstreams' syncs and the live path's transitions,
and the models; it never renders a page, and nothing in upstreams/, live/, web/ or models.py imports it
(the contracts in pyproject.toml; /healthz's read of the lock holder is the one named exception).
"""
