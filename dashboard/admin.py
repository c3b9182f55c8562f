from django.contrib import admin

from dashboard.models import Event, SyncState


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Read-only: events belong to Helix TeamHub; the mirror only reflects them."""

    list_display = ["timestamp", "subject_id", "operation", "target", "project", "repository", "progress", "status"]
    list_filter = ["status", "target", "operation", "project"]
    search_fields = ["upstream_id", "subject_id", "project", "repository", "ref", "name", "title"]
    date_hierarchy = "timestamp"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SyncState)
class SyncStateAdmin(admin.ModelAdmin):
    list_display = ["source", "last_success_at", "last_error_at", "last_error"]
    readonly_fields = ["last_attempt_at", "last_success_at", "last_error", "last_error_at", "last_refresh_at"]
