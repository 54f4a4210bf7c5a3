from django.urls import path

app_name = "patterns"

urlpatterns = []
