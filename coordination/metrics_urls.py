from django.urls import path

from . import metrics_views

app_name = "metrics"

urlpatterns = [
    path("metrics", metrics_views.prometheus, name="prometheus"),
    path("metrics/dashboard/", metrics_views.dashboard, name="dashboard"),
]
