"""Two versions of a note, line by line side by side, for the admin's conflict page.

The work is bounded by the size of the texts, whatever they hold: lines the two share at the start and
at the end are set aside in one linear pass, and only what is left between is lined up, by a longest
common subsequence table of at most MAX_ALIGNED_CELLS cells (difflib's SequenceMatcher, which this
replaced, grows with the cube of the line count on repetitive text: 2 KB against 4 KB took a minute).
When more is left than that, the two middles are shown plainly, row against row, and the page says so.
At most MAX_ROWS rows are made (a megabyte of one-character lines would be half a million table rows);
the page says how many more there are.
"""

from dataclasses import dataclass
from itertools import islice

# Lines left on one side × lines left on the other: a table this size fills in about a tenth of a second.
MAX_ALIGNED_CELLS = 1_000_000
MAX_ROWS = 2_000


@dataclass(frozen=True)
class Row:
    mine: str | None  # None: the line is not on this side
    theirs: str | None
    kind: str  # same, changed, removed (only mine), added (only theirs)


@dataclass(frozen=True)
class Comparison:
    rows: list[Row]
    aligned: bool  # False: the versions differ in too many lines to line up, and their middles are shown plainly
    hidden: int = 0  # rows past MAX_ROWS, left out


def side_by_side(mine: str, theirs: str) -> Comparison:
    left, right = mine.splitlines(), theirs.splitlines()
    head = _shared_length(left, right)
    tail = _shared_length(left[head:][::-1], right[head:][::-1])
    ours, other = left[head : len(left) - tail], right[head : len(right) - tail]
    aligned = len(ours) * len(other) <= MAX_ALIGNED_CELLS
    middle = _blocks(ours, other) if aligned else [(False, ours, other)]
    blocks = [(True, left[:head], left[:head]), *middle, (True, left[len(left) - tail :], left[len(left) - tail :])]
    total = sum(max(len(one), len(two)) for _, one, two in blocks)
    rows = list(islice(_rows(blocks), MAX_ROWS))
    return Comparison(rows=rows, aligned=aligned, hidden=total - len(rows))


def _rows(blocks):
    for equal, one, two in blocks:
        if equal:
            yield from (Row(line, line, "same") for line in one)
        else:
            yield from _paired(one, two)


def _shared_length(left: list[str], right: list[str]) -> int:
    count = 0
    for one, two in zip(left, right, strict=False):
        if one != two:
            break
        count += 1
    return count


def _blocks(left: list[str], right: list[str]) -> list[tuple[bool, list[str], list[str]]]:
    """Runs of equal lines and, between them, what changed, from a longest common subsequence of the lines."""
    ids: dict[str, int] = {}
    a = [ids.setdefault(line, len(ids)) for line in left]  # small ints compare in constant time, long lines do not
    b = [ids.setdefault(line, len(ids)) for line in right]
    n, m = len(a), len(b)
    # after[i][j]: how many lines a[i:] and b[j:] share, in order.
    after = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below, line = after[i], after[i + 1], a[i]
        for j in range(m - 1, -1, -1):
            if line == b[j]:
                row[j] = below[j + 1] + 1
            else:
                row[j] = below[j] if below[j] >= row[j + 1] else row[j + 1]
    blocks: list[tuple[bool, list[str], list[str]]] = []
    i = j = 0
    while i < n or j < m:
        if i < n and j < m and a[i] == b[j]:
            start = i
            while i < n and j < m and a[i] == b[j]:
                i, j = i + 1, j + 1
            blocks.append((True, left[start:i], right[j - (i - start) : j]))
            continue
        i0, j0 = i, j
        while (i < n or j < m) and not (i < n and j < m and a[i] == b[j]):
            if j >= m or (i < n and after[i + 1][j] >= after[i][j + 1]):
                i += 1
            else:
                j += 1
        blocks.append((False, left[i0:i], right[j0:j]))
    return blocks


def _paired(ours: list[str], other: list[str]):
    for index in range(max(len(ours), len(other))):
        one = ours[index] if index < len(ours) else None
        two = other[index] if index < len(other) else None
        yield Row(one, two, "changed" if one is not None and two is not None else "removed" if two is None else "added")
