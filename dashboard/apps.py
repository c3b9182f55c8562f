from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Pulseboard"

    def ready(self):
        from dashboard.live import push, transitions

        transitions.subscribe(push.publish)
