"""`?q=` on PostgreSQL: a pg_trgm index on dashboard.web.filters.search_text(); nothing on SQLite.

Built CONCURRENTLY (hence not atomic): on a million events it takes a minute or more, and a plain
CREATE INDEX would hold up every write of the poller for that long.
"""

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models
from django.db.models.functions import Concat, Upper

# dashboard.web.filters.search_text(), as `?q=` compares it (icontains is UPPER(…) LIKE UPPER(…) on
# PostgreSQL). Copied rather than imported so this migration never changes; tests/test_read_scale.py
# checks that the page's search still uses the index.
SEARCH_FIELDS = ("name", "title", "ref", "description", "repository", "subject_id")
SEARCH_INDEX = GinIndex(
    OpClass(Upper(Concat(*[part for field in SEARCH_FIELDS for part in (field, models.Value(" "))][:-1], output_field=models.TextField())), name="gin_trgm_ops"),
    name="event_search_trgm",
)


def add_search_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # SQLite searches with a plain scan
        schema_editor.add_index(apps.get_model("dashboard", "Event"), SEARCH_INDEX, concurrently=True)


def remove_search_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("dashboard", "Event"), SEARCH_INDEX, concurrently=True)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("dashboard", "0005_event_read_indexes"),
    ]

    operations = [
        TrigramExtension(),  # does nothing on SQLite
        migrations.RunPython(add_search_index, remove_search_index),
    ]
