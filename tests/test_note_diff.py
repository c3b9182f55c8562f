"""The conflict page's line diff does work bounded by the size of its texts, whatever they hold.

Work is counted, not timed: every line of Python run while diffing is one unit of a budget, so a
diff that grows faster than its cap allows fails here at once, on any machine (timings: bench_notes.py).
"""

import sys

import pytest

from dashboard.web.diff import MAX_ALIGNED_CELLS, MAX_ROWS, Row, side_by_side


class BudgetExceeded(Exception):
    pass


class WorkBudget:
    """Counts the lines of Python run inside the block and stops the block once `lines` are spent."""

    def __init__(self, lines: int):
        self.left = lines

    def __enter__(self):
        sys.settrace(lambda frame, event, arg: self._line)
        return self

    def __exit__(self, *exc):
        sys.settrace(None)

    def _line(self, frame, event, arg):
        if event == "line":
            self.left -= 1
            if self.left < 0:
                raise BudgetExceeded
        return self._line


# About three lines of Python per cell of the table, plus a few per line of text.
BUDGET = 4 * MAX_ALIGNED_CELLS


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        pytest.param("a\n" * 1000, "a\nc\n" * 1000, id="2 KB against 4 KB of repeated lines"),
        pytest.param("a\n" * 990, "c\na\n" * 495, id="within the cap, all alike"),
        pytest.param("a\nb\n" * 20_000, "b\na\n" * 20_000, id="80 KB each, interleaved"),
        pytest.param("x" * 2_000_000, "y" * 2_000_000, id="one line of 2 MB each"),
    ],
)
def test_hostile_texts_are_diffed_within_a_fixed_budget(mine, theirs):
    with WorkBudget(BUDGET):
        rows = side_by_side(mine, theirs).rows
    shown_mine = [row.mine for row in rows if row.mine is not None]
    shown_theirs = [row.theirs for row in rows if row.theirs is not None]
    assert shown_mine == mine.splitlines()[: len(shown_mine)] and shown_theirs == theirs.splitlines()[: len(shown_theirs)]
    assert len(rows) <= MAX_ROWS


def test_what_both_share_at_the_ends_is_kept_apart_from_what_changed():
    mine = "\n".join(["## Update"] + [f"line {n}" for n in range(1500)] + ["Ours.", "Signed, ops"])
    theirs = "\n".join(["## Update"] + [f"line {n}" for n in range(1500)] + ["Theirs.", "Signed, ops"])

    comparison = side_by_side(mine, theirs)

    assert comparison.aligned
    assert [row for row in comparison.rows if row.kind != "same"] == [Row("Ours.", "Theirs.", "changed")]


def test_lines_are_lined_up_around_what_both_keep():
    comparison = side_by_side("one\ntwo\nthree\nfour", "zero\none\nthree\nfour!")

    assert comparison.rows == [
        Row(None, "zero", "added"),
        Row("one", "one", "same"),
        Row("two", None, "removed"),
        Row("three", "three", "same"),
        Row("four", "four!", "changed"),
    ]


def test_texts_too_different_to_line_up_are_shown_plainly_and_say_so():
    mine = "\n".join(f"mine {n}" for n in range(1001))
    theirs = "\n".join(f"theirs {n}" for n in range(1001))

    comparison = side_by_side(mine, theirs)

    assert not comparison.aligned
    assert comparison.rows[0] == Row("mine 0", "theirs 0", "changed") and len(comparison.rows) == 1001


def test_at_most_max_rows_are_made_and_the_rest_are_counted():
    comparison = side_by_side("a\n" * 500_000, "b\n" * 400_000)

    assert len(comparison.rows) == MAX_ROWS and comparison.hidden == 500_000 - MAX_ROWS
    assert comparison.rows[-1] == Row("a", "b", "changed")
