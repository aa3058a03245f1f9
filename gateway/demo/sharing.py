"""Share links for the demo's own files: who may manage which link, and the
lifetimes and audiences the demo and the API offer (protected_media.shares
does the signing and the checks on use)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db.models import QuerySet

from protected_media.conf import conf
from protected_media.models import ProtectedFile, ShareLink
from protected_media.shares import active_shares

Audience = ShareLink.Audience
# The demo's choices; the API takes any whole number of seconds up to the maximum.
PRESET_LIFETIMES = (timedelta(hours=1), timedelta(days=1), timedelta(days=7), timedelta(days=30))
# A link for named users needs a way to name them, which the demo does not have.
AUDIENCES = {
    Audience.ANYONE.value: "Anyone with the link",
    Audience.SIGNED_IN.value: "Signed-in users",
}


def lifetimes() -> list[timedelta]:
    """The presets that the maximum allows, or the maximum alone if none does."""
    maximum = conf.share_max_lifetime
    return [lifetime for lifetime in PRESET_LIFETIMES if lifetime <= maximum] or [maximum]


def default_lifetime(choices: list[timedelta]) -> timedelta:
    """The configured default if offered, else the longest choice below it."""
    default = conf.share_lifetime
    shorter = [lifetime for lifetime in choices if lifetime <= default]
    return max(shorter) if shorter else choices[0]


def describe_lifetime(lifetime: timedelta) -> str:
    seconds = int(lifetime.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def owned_shares(user: Any) -> QuerySet[ShareLink]:
    """Active links to files ``user`` owns: the only ones they may see or revoke.

    Ownership is the file's (``ProtectedFile.owner``), matched through the
    record's stored name, so a link to another user's file is never found.
    """
    names = ProtectedFile.objects.filter(owner=user).values("file")
    return active_shares().filter(record__name__in=names).select_related("record")


def shares_by_file(user: Any, files: Iterable[ProtectedFile]) -> dict[str, list[ShareLink]]:
    """Each of ``files``' active links, newest first, by stored name (one query)."""
    names = [item.file.name for item in files]
    grouped: dict[str, list[ShareLink]] = defaultdict(list)
    for share in owned_shares(user).filter(record__name__in=names):
        grouped[share.record.name].append(share)
    return grouped
