from django.contrib.auth import views as auth_views
from django.urls import include, path

from coordination.api import api
from coordination.login import RateLimitedLoginView

urlpatterns = [
    path("api/v1/", api.urls),
    path("accounts/login/", RateLimitedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("patterns/", include("patterns.urls")),
    path("", include("coordination.metrics_urls")),
    path("", include("coordination.urls")),
]
