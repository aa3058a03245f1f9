from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_POST

from protected_media.audit_grants import acting
from protected_media.conf import conf
from protected_media.disconnects import stop_on_disconnect
from protected_media.grants import shared_with
from protected_media.inspection import UploadRefused
from protected_media.inspection.kinds import (
    KINDS,
    MARKUP_TYPES,
    accepted,
    not_accepted,
    refusals,
)
from protected_media.models import ProtectedFile, ShareLink, prefetch_records
from protected_media.shares import create_share, revoke, share_url

from .forms import ProfilePictureForm, ShareForm, UploadForm
from .models import Profile
from .sharing import AUDIENCES, owned_shares, shares_by_file

# A new share link is shown once, on the page the form redirects to. Only its
# hash is stored, so the link travels to that page in a short-lived signed
# cookie in the creator's own browser, deleted as soon as the page shows it.
NEW_SHARE_COOKIE = "demo_new_share"
NEW_SHARE_SALT = "gateway.demo.new_share"
NEW_SHARE_MAX_AGE = 120


async def healthz(request: HttpRequest) -> HttpResponse:
    # Touches no database: load balancers and the run command poll it, and it
    # is Django's own per-request floor in the benchmarks.
    return HttpResponse(b"ok\n", content_type="text/plain")


def home(request: HttpRequest) -> HttpResponse:
    return redirect("files" if request.user.is_authenticated else "login")


@stop_on_disconnect  # a client that hangs up mid-upload gets nothing stored
@login_required
def files(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if form.is_valid():
            item = form.save(commit=False)
            item.owner = request.user
            try:
                item.save()
            except UploadRefused as refusal:
                messages.error(request, refusal.message)
            else:
                messages.success(request, f"Uploaded {item.original_name}.")
                return redirect("files")
        else:
            for error in form.errors.get("file", []):
                messages.error(request, error)
        return redirect("files")
    owned = prefetch_records(list(ProtectedFile.objects.filter(owner=request.user)))
    shares = shares_by_file(request.user, owned)
    # Everyone else who may read each file, whoever granted it (the admin
    # included): the owner sees every grant.
    grants = shared_with(owned)
    for item in owned:
        item.share_form = ShareForm(auto_id=f"share-{item.pk}-%s")
        item.kind = file_kind(item.content_type)
        # "Open in browser" only where the served headers let the browser
        # show the file; anything else is an attachment, so "Download" alone.
        item.opens_inline = item.content_type in conf.inline_types
        item.active_shares = shares.get(item.file.name, [])
        item.shared_with = grants[item.pk]
        for share in item.active_shares:
            share.audience_label = audience_label(share)
    new_share = _new_share(request)
    response = render(
        request,
        "demo/files.html",
        {
            "form": UploadForm(),
            "files": owned,
            "max_size": conf.max_upload_size,
            "accepted": accepted(conf.allowed_types),
            "new_share": new_share,
            "upload": {
                "api_url": reverse("api-files"),
                "max_size": conf.max_upload_size,
                "kinds": json.dumps(upload_kinds(conf.allowed_types)),
            },
        },
    )
    if NEW_SHARE_COOKIE in request.COOKIES:
        response.delete_cookie(NEW_SHARE_COOKIE, path=reverse("files"), samesite="Strict")
    if new_share is not None:
        # The page holds a working link: keep it out of every cache, the
        # browser's back-forward history included.
        patch_cache_control(response, private=True, no_store=True)
    return response


def upload_kinds(allowed_types: tuple[str, ...]) -> dict[str, Any]:
    """What the page's script needs to refuse a file before sending it, in the
    words the server would use: the types allowed, those that are markup
    (never plain text, whatever the browser's guess), and the refusal of each
    kind the table names, or of any other kind."""
    return {
        "allowed": list(allowed_types),
        "markup": list(MARKUP_TYPES),
        "refusals": refusals(allowed_types),
        "otherwise": not_accepted(None, allowed_types),
    }


def file_kind(content_type: str) -> dict[str, Any]:
    """How a card shows a file: a thumbnail for images, else an icon with a
    short label; and its name in the words of the shared table of kinds
    (protected_media.inspection.kinds) that the hint and the refusals use:
    "PDF (.pdf)". A type the table does not know is named as itself."""
    kind = KINDS.get(content_type)
    if kind is None:
        label = content_type.rpartition("/")[2][:4].upper() or "FILE"
        name = content_type or "Unknown type"
    else:
        label = kind.short or kind.extensions[0].lstrip(".").upper()
        name = kind.label[:1].upper() + kind.label[1:]
    return {"label": label, "name": name, "is_image": content_type.startswith("image/")}


def _new_share(request: HttpRequest) -> dict[str, Any] | None:
    """The link just created, if the cookie holds one of the user's active links."""
    raw = request.get_signed_cookie(
        NEW_SHARE_COOKIE, default=None, salt=NEW_SHARE_SALT, max_age=NEW_SHARE_MAX_AGE
    )
    if raw is None:
        return None
    try:
        payload = json.loads(raw)
        share_id, url = UUID(payload["share"]), str(payload["url"])
    except (ValueError, KeyError, TypeError):
        return None
    # Another user signed in on the same browser sees nothing of it.
    share = owned_shares(request.user).filter(pk=share_id).first()
    if share is None:
        return None
    return {"share": share, "url": url, "audience": audience_label(share)}


def audience_label(share: ShareLink) -> str:
    return AUDIENCES.get(share.audience) or str(share.get_audience_display()).capitalize()


@login_required
@require_POST
def delete_file(request: HttpRequest, file_id: UUID) -> HttpResponse:
    item = get_object_or_404(ProtectedFile, pk=file_id, owner=request.user)
    name = item.original_name
    item.delete()
    messages.success(request, f"Deleted {name}.")
    return redirect("files")


@login_required
@require_POST
def share_file(request: HttpRequest, file_id: UUID) -> HttpResponse:
    item = get_object_or_404(ProtectedFile, pk=file_id, owner=request.user)
    record = item.record
    if record is None:
        raise Http404
    form = ShareForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("files")
    try:
        share, token = create_share(
            record,
            created_by=request.user,
            lifetime=form.cleaned_data["lifetime"],
            audience=form.cleaned_data["audience"],
        )
    except ValidationError as refusal:
        for error in refusal.messages:
            messages.error(request, error)
        return redirect("files")
    messages.success(
        request, f"Shared {record.original_name}. Copy the link now: it is shown only once."
    )
    response = redirect("files")
    response.set_signed_cookie(
        NEW_SHARE_COOKIE,
        json.dumps({"share": str(share.pk), "url": request.build_absolute_uri(share_url(token))}),
        salt=NEW_SHARE_SALT,
        max_age=NEW_SHARE_MAX_AGE,
        path=reverse("files"),
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )
    return response


@login_required
@require_POST
def revoke_share(request: HttpRequest, share_id: UUID) -> HttpResponse:
    share = get_object_or_404(owned_shares(request.user), pk=share_id)
    with acting(request.user):
        revoke(share)
    messages.success(request, f"Revoked a share link to {share.record.original_name}.")
    return redirect("files")


@stop_on_disconnect  # a client that hangs up mid-upload gets nothing stored
@login_required
def profile(request: HttpRequest) -> HttpResponse:
    user_profile, _ = Profile.objects.get_or_create(user=request.user)
    if request.method == "POST":
        form = ProfilePictureForm(request.POST, request.FILES, instance=user_profile)
        if form.is_valid():
            form.save()
            messages.success(request, "Profile picture updated.")
        else:
            for error in form.errors.get("profile_picture", []):
                messages.error(request, error)
        return redirect("profile")
    return render(
        request,
        "demo/profile.html",
        {
            "form": ProfilePictureForm(),
            "profile": user_profile,
            "max_size": conf.max_upload_size,
        },
    )
