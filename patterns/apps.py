from django.apps import AppConfig


class PatternsConfig(AppConfig):
    name = "patterns"
    verbose_name = "Pattern library"
    default_auto_field = "django.db.models.BigAutoField"
