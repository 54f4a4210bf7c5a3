from django.urls import path

from . import views

app_name = "coordination"

urlpatterns = [
    path("", views.team_list, name="team-list"),
    path("teams/<str:team_id>/", views.team_dashboard, name="team-dashboard"),
    path("teams/<str:team_id>/tasks/<str:task_id>/", views.task_detail, name="task-detail"),
]
