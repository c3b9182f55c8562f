"""What a database can hold of an upstream value: every record passes through here before it is stored.

JSON can carry what no database column takes: NUL (PostgreSQL text and jsonb refuse it), and a lone
UTF-16 surrogate such as "\\ud800" (valid JSON, but not Unicode: SQLite's and psycopg's UTF-8 encoders
raise on it, and one such row used to fail every pass of its source). NUL is dropped and a lone
surrogate becomes U+FFFD, the replacement character, so the record is still shown. A value nested
deeper than MAX_DEPTH or larger than MAX_CHARS is refused whole (`Unstorable`): no dashboard field needs it,
and PostgreSQL's jsonb and our own templates would struggle with it; the caller skips that one record.
"""

import json
import re
from typing import Any

MAX_DEPTH = 32  # the deepest documented record (an event's objects) is four levels deep
MAX_CHARS = 1_000_000  # one record as JSON; a push of a few hundred commits is far below it
_SURROGATE = re.compile("[\ud800-\udfff]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')  # a JSON string, escapes included
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89abcdefABCDEF][0-9a-fA-F]{2})")  # NUL, or a surrogate


class Unstorable(ValueError):
    """A record no database column should hold: nested too deep, or too large."""


def text(value: str) -> str:
    """`value` without NUL and with each lone surrogate replaced by U+FFFD."""
    if value.isascii():
        return value.replace("\x00", "")
    return _SURROGATE.sub("\ufffd", value.replace("\x00", ""))


def storable(value: Any) -> Any:
    """`value` (a JSON value) as every database can store it, or Unstorable.

    Checked on its JSON text, at C speed: most records need no change and are returned as they are.
    """
    try:
        dumped = json.dumps(value, default=str)  # ASCII: NUL and surrogates show as escapes; dates as text
    except RecursionError:
        raise Unstorable(f"nested deeper than {MAX_DEPTH} levels") from None
    if len(dumped) > MAX_CHARS:
        raise Unstorable(f"larger than {MAX_CHARS} characters as JSON")
    depth = deepest = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub("", dumped)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise Unstorable(f"nested deeper than {MAX_DEPTH} levels")
    return _cleaned(value) if _UNSTORABLE_ESCAPE.search(dumped) else value


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, list):
        return [_cleaned(item) for item in value]
    if isinstance(value, dict):
        return {_cleaned(key): _cleaned(item) for key, item in value.items()}
    return value
