"""Kiosk keys become hashes: each screen's existing key is hashed, so every kiosk link keeps working."""

import hashlib

from django.db import migrations, models

import dashboard.models


def hash_existing_keys(apps, schema_editor):
    Screen = apps.get_model("dashboard", "Screen")
    for screen in Screen.objects.only("pk", "token"):
        Screen.objects.filter(pk=screen.pk).update(key_hash=hashlib.sha256(screen.token.encode()).hexdigest())


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0008_incident_deleted_transition"),
    ]

    operations = [
        migrations.AddField(
            model_name="screen",
            name="key_hash",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.RunPython(hash_existing_keys, migrations.RunPython.noop),
        migrations.RemoveField(model_name="screen", name="token"),
        migrations.AlterField(
            model_name="screen",
            name="key_hash",
            field=models.CharField(default=dashboard.models.unknown_key_hash, editable=False, max_length=64, unique=True),
        ),
    ]
