"""The server's version: a hash of the code, templates and static files it serves.

Wall displays compare it with the version their page was rendered from and reload after a deploy,
so a TV never runs yesterday's JavaScript against today's server.
"""

import hashlib
from functools import cache
from pathlib import Path

from django.conf import settings

SOURCES = ("dashboard", "templates", "static", "config")


@cache
def server_version() -> str:
    digest = hashlib.sha256()
    for folder in SOURCES:
        for path in sorted((Path(settings.BASE_DIR) / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(settings.BASE_DIR)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def context(request) -> dict:
    return {"server_version": server_version()}
