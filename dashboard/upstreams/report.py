"""What one pass of any source did, in counts: logged by the poller and printed by `sync --once`."""

from dataclasses import dataclass


@dataclass
class SyncReport:
    seen: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    transitions: int = 0
    finished: bool = True

    def add(self, other: "SyncReport") -> None:
        for name in ("seen", "created", "updated", "skipped", "transitions"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.finished = self.finished and other.finished

    def __str__(self):
        text = f"{self.seen} seen, {self.created} new, {self.updated} updated, {self.skipped} skipped, {self.transitions} transitions"
        return text if self.finished else text + " (stopped early)"
