from django.urls import path

from . import views

app_name = "patterns"

urlpatterns = [
    path("staging/", views.staging, name="staging"),
    path("staging/bulk/", views.bulk, name="bulk"),
    path("staging/<str:team_id>/<str:pattern_id>/approve/", views.approve, name="approve"),
    path("staging/<str:team_id>/<str:pattern_id>/reject/", views.reject, name="reject"),
    path("staging/<str:team_id>/<str:pattern_id>/lock/", views.lock, name="lock"),
    path("staging/<str:team_id>/<str:pattern_id>/unlock/", views.unlock, name="unlock"),
    path("library/", views.library_page, name="library"),
    path("decisions/", views.decisions, name="decisions"),
]
