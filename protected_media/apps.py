from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ProtectedMediaConfig(AppConfig):
    name = "protected_media"
    verbose_name = _("Protected media")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import audit_grants, checks

        checks.register()
        audit_grants.connect()
