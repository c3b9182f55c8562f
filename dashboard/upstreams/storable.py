"""What a database can hold of an upstream value: every record passes through here before it is stored.

JSON can carry what no database column takes: NUL (PostgreSQL text and jsonb refuse it), and a lone
UTF-16 surrogate such as "\\ud800" (valid JSON, but not Unicode: SQLite's and psycopg's UTF-8 encoders
raise on it, and one such row used to fail every pass of its source). NUL is dropped and a lone
surrogate becomes U+FFFD, the replacement character, so the record is still shown. A value nested
deeper than MAX_DEPTH or larger than MAX_CHARS is refused whole (`Unstorable`): no dashboard field needs it,
and PostgreSQL's jsonb and our own templates would struggle with it; the caller skips that one record.
"""

import re
from typing import Any

MAX_DEPTH = 32  # the deepest documented record (an event's objects) is four levels deep
MAX_CHARS = 1_000_000  # text in one record, keys included; a push of a few hundred commits is far below it
_SURROGATE = re.compile("[\ud800-\udfff]")


class Unstorable(ValueError):
    """A record no database column should hold: nested too deep, or too large."""


def text(value: str) -> str:
    """`value` without NUL and with each lone surrogate replaced by U+FFFD."""
    if value.isascii():
        return value.replace("\x00", "")
    return _SURROGATE.sub("\ufffd", value.replace("\x00", ""))


def storable(value: Any) -> Any:
    """A copy of the JSON value `value` that every database can store, or Unstorable."""
    budget = [MAX_CHARS]

    def clean(item: Any, depth: int) -> Any:
        if isinstance(item, str):
            budget[0] -= len(item)
            if budget[0] < 0:
                raise Unstorable(f"larger than {MAX_CHARS} characters")
            return text(item)
        if not isinstance(item, (dict, list)):
            return item
        if depth >= MAX_DEPTH:
            raise Unstorable(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, list):
            return [clean(element, depth + 1) for element in item]
        return {clean(key, depth + 1): clean(element, depth + 1) for key, element in item.items()}

    return clean(value, 0)
