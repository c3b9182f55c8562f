from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from dashboard.upstreams.hth import hooks as hth_hooks
from dashboard.upstreams.oneuptime import hooks as oneuptime_hooks
from dashboard.web import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("wall/", views.wall, name="wall"),
    path("incidents/<str:upstream_id>/", views.incident, name="incident"),
    path("insights/", views.insights_page, name="insights"),
    path("pipelines/", views.pipeline_list, name="pipelines"),
    path("pipelines/<str:project>/<str:repository>/<path:name>/", views.pipeline, name="pipeline"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("hooks/hth/", hth_hooks.receive, name="hth-hook"),
    path("hooks/oneuptime/", oneuptime_hooks.receive, name="oneuptime-hook"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
