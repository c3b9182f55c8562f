from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from dashboard import feeds
from dashboard.health import health_report


def dashboard(request):
    return render(
        request,
        "dashboard/dashboard.html",
        {"events": feeds.recent_events(), "live_events": feeds.live_events()},
    )


@never_cache
def healthz(request):
    return JsonResponse(health_report(now=timezone.now()))
