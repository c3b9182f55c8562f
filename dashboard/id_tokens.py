"""Upstream text as HTML ids, URL path segments and Channels group names, none of which it may break.

Upstream ids and names are hostile input: `x" hx-swap-oob=…` must not become markup, "/" must not
break a URL, and "team a" must not share a group with "team_a". Text made only of a conservative set
of characters is used as it is (readable ids, stable links); anything else becomes a digest of it,
which starts with "_" and so can never equal plain text. The text itself is still stored and shown,
escaped, wherever the page shows it.
"""

import hashlib
import re

PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def is_plain(text: str) -> bool:
    return PLAIN.fullmatch(text) is not None


def id_token(text: str) -> str:
    """`text` itself when plain, else "_" and a digest: safe in an id, a URL or a group name, and unique."""
    if is_plain(text):
        return text
    return "_" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
