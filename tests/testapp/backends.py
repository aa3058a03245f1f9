"""An object-permission backend in the style of django-guardian and django-rules:
grants ``view_report`` on a report to the users named in GRANTS."""

GRANTS: set[tuple[int, int]] = set()  # (user id, report id)


class ReportGrantBackend:
    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        return obj is not None and perm == "testapp.view_report" and (user_obj.pk, obj.pk) in GRANTS
