import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """A join from a clock to its incident by upstream id: no column, so nothing in the database changes
    (and unapplying it must not ask SQLite's schema editor, which cannot remove a ForeignObject)."""

    dependencies = [
        ("dashboard", "0015_pipeline_weeks"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="incidentclock",
                    name="incident",
                    field=models.ForeignObject(
                        from_fields=["incident_upstream_id"],
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        serialize=False,
                        to="dashboard.incident",
                        to_fields=["upstream_id"],
                    ),
                ),
            ]
        ),
    ]
