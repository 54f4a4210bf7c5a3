from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/teams/", consumers.TeamListConsumer.as_asgi()),
    path("ws/teams/<str:team_id>/", consumers.TeamConsumer.as_asgi()),
    path("ws/metrics/", consumers.MetricsConsumer.as_asgi()),
    path("ws/patterns/staging/", consumers.StagingConsumer.as_asgi()),
]
