"""What an admin is told about a note's write-back after saving it: where it is, in words.

The admin's message after a save starts as "sending to OneUptime…" and follows the write until it is
delivered or held (static/dashboard/admin-write-back.js asks for these words about once a second).
"""

from dataclasses import dataclass

from dashboard.models import IncidentNote, NoteWrite
from dashboard.upstreams.oneuptime import writeback

FINAL = {"delivered", "held", "deleted"}


@dataclass(frozen=True)
class Progress:
    stage: str  # "sending", "retrying", "delivered", "held" or "deleted"
    words: str

    @property
    def final(self) -> bool:
        return self.stage in FINAL


def progress_of(note: IncidentNote | None) -> Progress:
    """Where the note's latest change is on its way to OneUptime. None: the note is gone, its delete delivered."""
    if note is None:
        return Progress("deleted", "Deleted in OneUptime too.")
    state = writeback.state_of(note)
    write = writeback.outstanding_write(note)
    if state == writeback.SYNCED:
        return Progress("delivered", "Delivered to OneUptime.")
    if state == NoteWrite.State.CONFLICT:
        return Progress(
            "held", "Held, not sent: OneUptime's text changed since you loaded it. Open the note to choose a version."
        )
    if state == NoteWrite.State.FAILED:
        return Progress(
            "held", f"Held, not sent: OneUptime refused it ({write.last_error}). Fix that, then retry it from the list."
        )
    doing = "Deleting in OneUptime" if state == writeback.DELETING else "Sending to OneUptime"
    if write.attempts and write.last_error:
        return Progress("retrying", f"{doing}: not through yet ({write.last_error}); it is retried by itself until it is.")
    return Progress("sending", f"{doing}…")
