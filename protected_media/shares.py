"""Share links (security rule 10): a signed token that lets others read one
version of one file until it expires or its owner revokes it.

The token is a ``django.core.signing`` object under its own salt, naming the
link's row, the expiry and who may use it, and nothing about the file: its
payload is plain base64 JSON, and a recipient must not keep the file's
permanent media key once the link is revoked. The row binds the link to the
file's record (its version: replacing the content makes a new record and
deletes the old one with its links). A changed byte, another purpose's
signature or a past expiry is refused from the token alone, before any
database lookup. The row then decides what a signature cannot: revocation,
named users, and that the token is the one this row was made with (only its
SHA-256 is stored, so the database alone cannot rebuild a working link).

A link never grants more than its creator has: the policy must still let the
creator read the file when the link is used.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from . import audit_grants
from .conf import conf
from .decision import Grant, Reason, Refusal, anonymous_refusal, apply_policy, find, grant
from .nginx.render import MASKED_PATH, SHARE_PREFIX
from .records import ShareLink, StoredFile

if TYPE_CHECKING:
    from django.db.models import QuerySet

SALT = "protected_media.share"
# Share URLs live below PROTECTED_MEDIA_URL, where nginx sends every request
# to the check; a media key never holds a slash, so the two cannot meet. The
# nginx renderer keeps the prefix and the mask its access log writes in place
# of a token: one source for both, the views' log lines included.
URL_PREFIX = SHARE_PREFIX
MASKED_TOKEN = MASKED_PATH
SHARE = "share"
# base64url, the signer's ":" separators; generous, but bounded.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_\-:]{1,400}")
Audience = ShareLink.Audience


@dataclass(frozen=True)
class Claim:
    """What a token says, once its signature has been checked."""

    share_id: uuid.UUID
    expires: datetime
    audience: str


def create_share(
    record: StoredFile,
    *,
    created_by: Any,
    lifetime: timedelta | None = None,
    audience: str = Audience.ANYONE,
    users: Iterable[Any] = (),
) -> tuple[ShareLink, str]:
    """A new link to ``record`` and its token (shown once: only its hash is kept).

    Raises ``ValidationError`` for a lifetime out of (0, the maximum] or an
    audience of named users without any. Deciding that ``created_by`` may
    share the file is the caller's job; the link checks the creator again on
    every use.
    """
    lifetime = conf.share_lifetime if lifetime is None else lifetime
    maximum = conf.share_max_lifetime
    if not timedelta(0) < lifetime <= maximum:
        raise ValidationError(
            f"A share link lives between one second and {_describe(maximum)}.",
            code="lifetime",
        )
    if audience not in Audience.values:
        raise ValidationError(f"Unknown audience {audience!r}.", code="audience")
    users = list(users)
    if audience == Audience.USERS and not users:
        raise ValidationError("Name at least one user to share with.", code="users")
    # Whole seconds, so the row and the token hold the same expiry.
    expires = (timezone.now() + lifetime).replace(microsecond=0)
    share = ShareLink(record=record, created_by=created_by, expires=expires, audience=audience)
    token = _sign(share)
    share.token_hash = token_hash(token)
    with transaction.atomic():
        share.save()
        if audience == Audience.USERS:
            share.users.set(users)
    return share, token


def share_url(token: str) -> str:
    return f"{conf.url}{URL_PREFIX}{token}"


def revoke(share: ShareLink) -> bool:
    """Revoke ``share`` now; False if it was already revoked."""
    revoked_at = timezone.now()
    updated = ShareLink.objects.filter(pk=share.pk, revoked__isnull=True).update(revoked=revoked_at)
    if updated:
        share.revoked = revoked_at
        audit_grants.share_revoked(share)
    return bool(updated)


def active_shares() -> QuerySet[ShareLink]:
    """Links that neither expired nor were revoked."""
    return ShareLink.objects.filter(revoked__isnull=True, expires__gt=timezone.now())


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_claim(token: str, *, now: datetime | None = None) -> Claim | Reason:
    """The token's claim if its signature holds and it has not expired (pure)."""
    if _TOKEN_RE.fullmatch(token) is None:
        return Reason.SHARE_INVALID
    try:
        payload = signing.loads(token, salt=SALT)
        claim = Claim(
            share_id=uuid.UUID(hex=payload["s"]),
            expires=datetime.fromtimestamp(int(payload["e"]), tz=UTC),
            audience=payload["a"],
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return Reason.SHARE_INVALID
    if claim.audience not in Audience.values:
        return Reason.SHARE_INVALID
    if claim.expires <= (now or timezone.now()):
        return Reason.SHARE_EXPIRED
    return claim


@dataclass(frozen=True)
class ShareDecision:
    outcome: Grant | Refusal
    share: ShareLink | None = None


async def adecide_share(*, token: str, user: Any) -> ShareDecision:
    claim = read_claim(token)
    if isinstance(claim, Reason):
        return ShareDecision(Refusal(claim))
    if claim.audience != Audience.ANYONE and not user.is_authenticated:
        # From the signed claim alone, before any lookup, like rule 2's
        # anonymous answer.
        return ShareDecision(anonymous_refusal())
    share = await ShareLink.objects.select_related("created_by").filter(pk=claim.share_id).afirst()
    if share is None or not constant_time_compare(share.token_hash, token_hash(token)):
        return ShareDecision(Refusal(Reason.SHARE_UNKNOWN))
    if share.revoked is not None:
        return ShareDecision(Refusal(Reason.SHARE_REVOKED), share)
    if share.expires <= timezone.now():
        return ShareDecision(Refusal(Reason.SHARE_EXPIRED), share)
    if not await _in_audience(share, user):
        return ShareDecision(Refusal(Reason.SHARE_AUDIENCE), share)
    found = await sync_to_async(find)(share.record_id)
    if found.record is None:
        return ShareDecision(Refusal(Reason.NO_RECORD), share)
    if found.holder is None:
        return ShareDecision(Refusal(Reason.NO_HOLDER, record=found.record), share)
    try:
        creator_may_read = await apply_policy(
            share.created_by, found.holder, found.record.judged_record
        )
    except DatabaseError:
        raise
    except Exception:
        return ShareDecision(Refusal(Reason.POLICY_ERROR, record=found.record), share)
    if creator_may_read is None:
        return ShareDecision(Refusal(Reason.POLICY_DENIED, record=found.record), share)
    return ShareDecision(grant(found.record, found.holder, reason=SHARE), share)


async def _in_audience(share: ShareLink, user: Any) -> bool:
    if share.audience == Audience.ANYONE:
        return True
    if not (user.is_authenticated and user.is_active):
        return False
    if share.audience == Audience.SIGNED_IN:
        return True
    return await share.users.filter(pk=user.pk).aexists()


def _sign(share: ShareLink) -> str:
    # The link alone: never the record's key, nor anything else of the file.
    payload = {
        "s": share.pk.hex,
        "e": int(share.expires.timestamp()),
        "a": share.audience,
    }
    return signing.dumps(payload, salt=SALT)


def _describe(duration: timedelta) -> str:
    days, seconds = duration.days, duration.seconds
    if days and not seconds:
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{int(duration.total_seconds())} seconds"
