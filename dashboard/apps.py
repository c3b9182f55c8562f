from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Pulseboard"

    def ready(self):
        from dashboard.live import push, sessions, transitions

        transitions.subscribe(push.publish)
        sessions.listen()
        post_migrate.connect(rebuild_derived_after_migrating, sender=self)


def rebuild_derived_after_migrating(sender, plan=None, **kwargs):
    """Pipelines and the retrospective's weeks are derived from the mirror: a migration of ours may have
    changed how, so derive them afresh."""
    from django.utils import timezone

    from dashboard.live import incident_weeks, pipeline_weeks, pipelines

    if any(migration.app_label == "dashboard" and not backwards for migration, backwards in plan or []):
        pipelines.rebuild()
        pipeline_weeks.rebuild(now=timezone.now())
        incident_weeks.rebuild()
