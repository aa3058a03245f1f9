from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from protected_media.conf import conf
from protected_media.inspection import UploadRefused
from protected_media.models import ProtectedFile, prefetch_records

from .forms import ProfilePictureForm, UploadForm
from .models import Profile


async def healthz(request: HttpRequest) -> HttpResponse:
    # Touches no database: load balancers and the run command poll it, and it
    # is Django's own per-request floor in the benchmarks.
    return HttpResponse(b"ok\n", content_type="text/plain")


def home(request: HttpRequest) -> HttpResponse:
    return redirect("files" if request.user.is_authenticated else "login")


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
    return render(
        request,
        "demo/files.html",
        {
            "form": UploadForm(),
            "files": owned,
            "max_size": conf.max_upload_size,
            "allowed_types": conf.allowed_types,
        },
    )


@login_required
@require_POST
def delete_file(request: HttpRequest, file_id: UUID) -> HttpResponse:
    item = get_object_or_404(ProtectedFile, pk=file_id, owner=request.user)
    name = item.original_name
    item.delete()
    messages.success(request, f"Deleted {name}.")
    return redirect("files")


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
        request, "demo/profile.html", {"form": ProfilePictureForm(), "profile": user_profile}
    )
