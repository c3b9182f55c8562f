"""The outbox of admin edits to OneUptime notes (being written)."""

from dashboard.sync import SyncReport


def deliver_due(*, client, now) -> SyncReport:
    return SyncReport()
