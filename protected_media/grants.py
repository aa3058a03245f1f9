"""Who besides the owner may read a file: its grants, as the owner sees them.

The default policy (``policy.default_grant``) lets others read a file in
three ways that someone can grant file by file: the file's groups (the
field's ``groups_field``), an active share link, and an object permission
(``<app>.view_<model>``) held by a user or a group through django-guardian.
``shared_with`` lists them for a page of rows in a constant number of queries
(one per kind of grant), so that a listing can show every one of them to the
owner. ``PROTECTED_MEDIA_ALLOW_STAFF`` is not a grant on one file but on all
of them, and is reported as ``staff``. A custom policy's own rules are not
known here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count
from django.utils import timezone

from .conf import conf
from .records import ShareLink

if TYPE_CHECKING:
    from django.db.models import Model

# Where prefetch_grants leaves a row's grants, for describe-style helpers.
ATTRIBUTE = "_protected_media_shared_with"


@dataclass(frozen=True)
class SharedWith:
    """The grants on one file: group and user names sorted, links counted."""

    groups: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    links: int = 0
    staff: bool = False

    def __bool__(self) -> bool:
        return bool(self.groups or self.users or self.links or self.staff)

    def as_json(self) -> dict[str, object]:
        return {
            "groups": list(self.groups),
            "users": list(self.users),
            "links": self.links,
            "staff": self.staff,
        }

    def __str__(self) -> str:
        """For people: ``group readers, user carol, 2 links`` or ``no one``."""
        parts = [f"group {name}" for name in self.groups]
        parts += [f"user {name}" for name in self.users]
        if self.links:
            parts.append(f"{self.links} link{'s' if self.links != 1 else ''}")
        if self.staff:
            parts.append("all staff")
        return ", ".join(parts) if parts else "no one"


def shared_with(rows: Sequence[Model], field_name: str = "file") -> dict[Any, SharedWith]:
    """Each row's grants, by primary key. The rows are of one model, holding
    their file in ``field_name``; at most one query per kind of grant."""
    if not rows:
        return {}
    model = type(rows[0])
    field: Any = model._meta.get_field(field_name)
    pks = [row.pk for row in rows]
    groups = _groups(model, getattr(field, "groups_field", None), pks)
    users = defaultdict(set)
    if apps.is_installed("guardian"):
        for pk, name in _guardian_groups(model, pks):
            groups[pk].add(name)
        for pk, name in _guardian_users(model, pks):
            users[pk].add(name)
    names = {row.pk: getattr(row, field.attname) for row in rows}
    links = _active_links([name for name in names.values() if name])
    return {
        pk: SharedWith(
            groups=tuple(sorted(groups[pk])),
            users=tuple(sorted(users[pk])),
            links=links.get(names[pk], 0) if names[pk] else 0,
            staff=conf.allow_staff,
        )
        for pk in pks
    }


def prefetch_grants(rows: list[Any], field_name: str = "file") -> list[Any]:
    """``shared_with`` for a listing, left on each row (``grants_of``)."""
    found = shared_with(rows, field_name)
    for row in rows:
        setattr(row, ATTRIBUTE, found[row.pk])
    return rows


def grants_of(row: Model, field_name: str = "file") -> SharedWith:
    """The row's grants: prefetched, or looked up for this row alone."""
    found = getattr(row, ATTRIBUTE, None)
    if found is None:
        found = shared_with([row], field_name)[row.pk]
    return found


def _groups(model: type[Model], groups_field: str | None, pks: list[Any]) -> dict[Any, set[str]]:
    found: dict[Any, set[str]] = defaultdict(set)
    if groups_field is None:
        return found
    relation: Any = model._meta.get_field(groups_field)
    through = relation.remote_field.through
    source, target = relation.m2m_field_name(), relation.m2m_reverse_field_name()
    rows = through._default_manager.filter(**{f"{source}__in": pks}).values_list(
        f"{source}_id", f"{target}__name"
    )
    for pk, name in rows:
        found[pk].add(name)
    return found


def _active_links(names: list[str]) -> dict[str, int]:
    counts = (
        ShareLink.objects.filter(
            record__name__in=names, revoked__isnull=True, expires__gt=timezone.now()
        )
        .values("record__name")
        .annotate(count=Count("pk"))
        .values_list("record__name", "count")
    )
    return dict(counts)


def _permission_filter(model: type[Model], permission_model: type[Model], pks: list[Any]) -> Any:
    # The read permission the default policy asks for, on these rows, from
    # guardian's generic table or from the model's own direct one.
    codename = f"view_{model._meta.model_name}"
    content_type = ContentType.objects.get_for_model(model)
    rows = permission_model._default_manager.filter(
        permission__codename=codename, permission__content_type=content_type
    )
    if any(f.name == "object_pk" for f in permission_model._meta.get_fields()):
        return (
            rows.filter(content_type=content_type, object_pk__in=[str(pk) for pk in pks]),
            "object_pk",
        )
    return rows.filter(content_object__in=pks), "content_object_id"


# guardian is optional: imported only where apps.is_installed("guardian").
def _guardian_users(model: type[Model], pks: list[Any]) -> list[tuple[Any, str]]:
    from guardian.utils import get_user_obj_perms_model

    rows, column = _permission_filter(model, get_user_obj_perms_model(cast(Any, model)), pks)
    username = f"user__{get_user_model().USERNAME_FIELD}"
    return _by_pk(model, rows.values_list(column, username), pks)


def _guardian_groups(model: type[Model], pks: list[Any]) -> list[tuple[Any, str]]:
    from guardian.utils import get_group_obj_perms_model

    rows, column = _permission_filter(model, get_group_obj_perms_model(cast(Any, model)), pks)
    return _by_pk(model, rows.values_list(column, "group__name"), pks)


def _by_pk(model: type[Model], rows: Any, pks: list[Any]) -> list[tuple[Any, str]]:
    # guardian's generic table keeps the key as text: map it back.
    by_text = {str(pk): pk for pk in pks}
    return [(by_text[str(pk)], name) for pk, name in rows if str(pk) in by_text]
