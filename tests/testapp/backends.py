"""Object-permission backends in the style of django-guardian and django-rules.

``ReportGrantBackend`` grants ``view_report`` on a report to the users named in
GRANTS; ``VetoBackend`` raises ``PermissionDenied`` for every object, Django's
way for a backend to stop the backends after it from granting.
"""

from django.core.exceptions import PermissionDenied

GRANTS: set[tuple[int, int]] = set()  # (user id, report id)


class ReportGrantBackend:
    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        return obj is not None and perm == "testapp.view_report" and (user_obj.pk, obj.pk) in GRANTS


class VetoBackend:
    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        if obj is not None:
            raise PermissionDenied
        return False
