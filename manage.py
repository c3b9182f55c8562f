#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import secrets
import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"


def use_demo_defaults():
    """`demo` must work on a fresh machine: its own database, and a secret key made once and kept."""
    DATA_DIR.mkdir(exist_ok=True)
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(50))
    os.environ.setdefault("DJANGO_SECRET_KEY", key_file.read_text().strip())
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{DATA_DIR / 'demo.sqlite3'}")


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if sys.argv[1:2] == ["demo"]:
        use_demo_defaults()
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A bad environment variable deserves one clear line, not a traceback.
        sys.exit(f"Configuration error: {exc}")


if __name__ == "__main__":
    main()
