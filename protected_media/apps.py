from importlib.util import find_spec

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from .conf import conf


class ProtectedMediaConfig(AppConfig):
    name = "protected_media"
    verbose_name = _("Protected media")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.checks import Tags, register
        from django.db.models.signals import post_migrate

        from . import audit_grants, checks
        from .ops import adopt

        checks.register()
        register(adopt.check_unadopted_files, Tags.database)
        post_migrate.connect(adopt.say_after_first_migrate, sender=self)
        audit_grants.connect()
        # A site that serves the metrics gets them counted. Without
        # prometheus-client nothing is connected, and check E016 says what to
        # install rather than every start failing on an ImportError.
        if conf.metrics_url is not None and find_spec("prometheus_client") is not None:
            from .ops import metrics  # an optional dependency (the metrics extra)

            metrics.connect()
