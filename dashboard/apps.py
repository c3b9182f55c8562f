from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Pulseboard"

    def ready(self):
        from dashboard.live import push, sessions, transitions

        transitions.subscribe(push.publish)
        sessions.listen()
