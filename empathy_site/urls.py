from django.urls import include, path

from coordination.api import api

urlpatterns = [
    path("api/v1/", api.urls),
    path("", include("coordination.urls")),
]
