"""Two versions of a note, line by line side by side, for the admin's conflict page."""

from dataclasses import dataclass
from difflib import SequenceMatcher


@dataclass(frozen=True)
class Row:
    mine: str | None  # None: the line is not on this side
    theirs: str | None
    kind: str  # same, changed, removed (only mine), added (only theirs)


def side_by_side(mine: str, theirs: str) -> list[Row]:
    left, right = mine.splitlines(), theirs.splitlines()
    rows = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, left, right, autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [Row(line, line, "same") for line in left[i1:i2]]
            continue
        ours, other = left[i1:i2], right[j1:j2]
        for index in range(max(len(ours), len(other))):
            one = ours[index] if index < len(ours) else None
            two = other[index] if index < len(other) else None
            rows.append(
                Row(one, two, "changed" if one is not None and two is not None else "removed" if two is None else "added")
            )
    return rows
