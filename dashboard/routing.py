"""WebSocket URL table (the live consumer arrives with the live UI)."""

websocket_urlpatterns = []
