"""The admin: protected files with their metadata, share links, records.

Only ``admin.autodiscover()`` imports this module, so a project without
``django.contrib.admin`` never does. A file's metadata lives on its
``StoredFile`` record, joined by the stored name (there is no foreign key):
a page's records are loaded in one go and sorting and searching use
subqueries, so a page costs the same number of queries whatever its
length. Every preview link is the file's gateway URL and so obeys the access
policy, for admins too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminFileWidget
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .audit_grants import acting
from .conf import conf
from .fields import ProtectedFileField, prefetch_records
from .keys import is_key
from .models import ProtectedFile
from .records import ShareLink, StoredFile
from .shares import revoke

if TYPE_CHECKING:
    from django.db.models.fields.files import FieldFile
    from django.utils.safestring import SafeString

    ProtectedFileAdminBase = admin.ModelAdmin[ProtectedFile]
    ShareLinkAdminBase = admin.ModelAdmin[ShareLink]
    StoredFileAdminBase = admin.ModelAdmin[StoredFile]
else:
    # ModelAdmin is not subscriptable at run time.
    ProtectedFileAdminBase = ShareLinkAdminBase = StoredFileAdminBase = admin.ModelAdmin

PREVIEW_HELP = _(
    "Opens the file through the gateway, which applies the access policy to you as to "
    "anyone: unless you own the file, are in one of its groups, hold a permission on it, "
    "or PROTECTED_MEDIA_ALLOW_STAFF is on, you get the gateway's 404, even as a superuser."
)
# The record's fields the list sorts by, as subqueries on the stored name
# (unique and indexed; there is no foreign key to join on).
ORDER_BY = {
    "_pm_original_name": "original_name",
    "_pm_size": "size",
    "_pm_content_type": "content_type",
}
EMPTY = "—"


def _preview(url: str | None, *, title: str = "") -> SafeString | str:
    if not url:
        return EMPTY
    return format_html(
        '<a href="{}" target="_blank" rel="noopener noreferrer" title="{}">{}</a>',
        url,
        title,
        _("Preview"),
    )


def _gateway_url(file: FieldFile) -> str | None:
    try:
        return file.url if file.name else None
    except ValueError:  # a name the gateway does not serve
        return None


def _search_terms(search_term: str) -> list[str]:
    # The admin's own splitting: words, or "quoted phrases".
    terms = []
    for bit in smart_split(search_term):
        if bit[:1] in ('"', "'") and bit[-1:] == bit[:1]:
            bit = unescape_string_literal(bit)
        if bit:
            terms.append(bit)
    return terms


def _records_named(term: str) -> QuerySet[StoredFile, Any]:
    matches = Q(original_name__icontains=term)
    if is_key(term):  # a key pasted from a /media/<key> URL
        matches |= Q(key=term)
    return StoredFile.objects.filter(matches).values("name")


class GatewayFileWidget(AdminFileWidget):
    """The admin's file input, naming the current file by its original name
    and linking to its gateway URL, never showing where it is stored."""

    def format_value(self, value: Any) -> Any:
        if not self.is_initial(value):
            return None
        record = getattr(value, "record", None)
        return _CurrentFile(
            url=_gateway_url(value) or "", label=record.original_name if record else EMPTY
        )


class _CurrentFile:
    def __init__(self, *, url: str, label: str) -> None:
        self.url = url
        self.label = label

    def __str__(self) -> str:
        return self.label


class ContentTypeFilter(admin.SimpleListFilter):
    title = _("type")
    parameter_name = "content_type"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        # The types of this model's files only: not other fields' records,
        # nor records made beside them (thumbnails).
        names = model_admin.model._default_manager.values("file")
        types = (
            StoredFile.objects.filter(name__in=names)
            .order_by("content_type")
            .values_list("content_type", flat=True)
            .distinct()
        )
        return [(content_type, content_type) for content_type in types]

    def queryset(self, request: Any, queryset: QuerySet[Any, Any]) -> QuerySet[Any, Any]:
        if self.value() is None:
            return queryset
        return queryset.filter(
            file__in=StoredFile.objects.filter(content_type=self.value()).values("name")
        )


class ActingAdminMixin:
    """Names the signed-in admin as the author of every grant and revocation
    the admin's views make (``audit_grants``): groups saved with the form,
    links revoked by an action."""

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        with acting(request.user):
            return super().changeform_view(request, *args, **kwargs)  # type: ignore[misc]

    def changelist_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        with acting(request.user):
            return super().changelist_view(request, *args, **kwargs)  # type: ignore[misc]

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        with acting(request.user):
            return super().delete_view(request, *args, **kwargs)  # type: ignore[misc]


class ProtectedFileAdminForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        help_texts: ClassVar = {"preview": PREVIEW_HELP}


@admin.register(ProtectedFile)
class ProtectedFileAdmin(ActingAdminMixin, ProtectedFileAdminBase):
    form = ProtectedFileAdminForm
    list_display = ("original_name", "owner", "size", "content_type", "created", "preview")
    list_display_links = ("original_name",)
    list_select_related = ("owner",)
    list_filter = (ContentTypeFilter, "created")
    search_fields = ("owner__username", "owner__email")
    search_help_text = _("Original file name, owner's username or email, or the file's key.")
    ordering = ("-created",)
    raw_id_fields = ("owner",)
    filter_horizontal = ("groups",)
    formfield_overrides: ClassVar = {ProtectedFileField: {"widget": GatewayFileWidget}}
    readonly_fields = (
        "preview",
        "original_name",
        "size",
        "content_type",
        "key",
        "stored_name",
        "created",
    )
    fieldsets = (
        (None, {"fields": ("owner", "file", "preview", "groups")}),
        (
            _("Stored file"),
            {"fields": ("original_name", "size", "content_type", "key", "stored_name", "created")},
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProtectedFile]:
        # alias(), not annotate(): the subqueries run only when a column of
        # the record is sorted on; the displayed values come from the records
        # loaded for the page at once (get_changelist_instance).
        records = StoredFile.objects.filter(name=OuterRef("file"))
        return (
            super()
            .get_queryset(request)
            .alias(
                **{alias: Subquery(records.values(field)[:1]) for alias, field in ORDER_BY.items()}
            )
        )

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        # One query for the page's records, whatever its length (the row's
        # __str__, the action checkbox's label, reads its record too).
        prefetch_records(list(changelist.result_list))
        return changelist

    def get_fieldsets(self, request: HttpRequest, obj: ProtectedFile | None = None) -> Any:
        if obj is None:  # a new upload: the metadata comes from its inspection
            return ((None, {"fields": ("owner", "file", "groups")}),)
        return super().get_fieldsets(request, obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ProtectedFile], search_term: str
    ) -> tuple[QuerySet[ProtectedFile], bool]:
        # Every word must match the owner or the original name; the names are
        # matched in one uncorrelated subquery on the records.
        for term in _search_terms(search_term):
            queryset = queryset.filter(
                Q(owner__username__icontains=term)
                | Q(owner__email__icontains=term)
                | Q(file__in=_records_named(term))
            )
        return queryset, False

    @admin.display(description=_("original name"), ordering="_pm_original_name")
    def original_name(self, obj: ProtectedFile) -> str:
        return obj.original_name or EMPTY

    @admin.display(description=_("size"), ordering="_pm_size")
    def size(self, obj: ProtectedFile) -> str:
        return filesizeformat(obj.size) if obj.record else EMPTY

    @admin.display(description=_("type"), ordering="_pm_content_type")
    def content_type(self, obj: ProtectedFile) -> str:
        return obj.content_type or EMPTY

    @admin.display(description=_("key"))
    def key(self, obj: ProtectedFile) -> str:
        return obj.record.key if obj.record else EMPTY

    @admin.display(description=_("stored name"))
    def stored_name(self, obj: ProtectedFile) -> str:
        return obj.file.name or EMPTY

    @admin.display(description=_("preview"))
    def preview(self, obj: ProtectedFile) -> SafeString | str:
        return _preview(_gateway_url(obj.file), title=str(PREVIEW_HELP))


class ShareStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, Any]]:
        return [("active", _("active")), ("expired", _("expired")), ("revoked", _("revoked"))]

    def queryset(self, request: Any, queryset: QuerySet[Any, Any]) -> QuerySet[Any, Any]:
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(revoked__isnull=True, expires__gt=now)
        if self.value() == "expired":
            return queryset.filter(revoked__isnull=True, expires__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked__isnull=False)
        return queryset


@admin.register(ShareLink)
class ShareLinkAdmin(ActingAdminMixin, ShareLinkAdminBase):
    """Links are made by owners through the site, where the token can be
    shown once; here they are read and revoked, never changed (the token
    signs the expiry and the audience)."""

    list_display = ("file", "created_by", "audience", "created", "expires", "revoked", "status")
    list_select_related = ("record", "created_by")
    list_filter = (ShareStatusFilter, "audience", "created", "expires")
    search_fields = ("record__original_name", "created_by__username", "created_by__email")
    actions = ("revoke_links",)
    fields = ("record", "created_by", "audience", "users", "created", "expires", "revoked")

    @admin.display(description=_("file"), ordering="record__original_name")
    def file(self, obj: ShareLink) -> str:
        return obj.record.original_name

    @admin.display(description=_("status"))
    def status(self, obj: ShareLink) -> str:
        if obj.revoked is not None:
            return str(_("revoked"))
        if obj.expires <= timezone.now():
            return str(_("expired"))
        return str(_("active"))

    @admin.action(description=_("Revoke the selected share links"), permissions=["revoke"])
    def revoke_links(self, request: HttpRequest, queryset: QuerySet[ShareLink]) -> None:
        revoked = sum(revoke(share) for share in queryset.filter(revoked__isnull=True))
        self.message_user(
            request,
            ngettext("Revoked %d share link.", "Revoked %d share links.", revoked) % revoked,
            messages.SUCCESS,
        )

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return super().has_change_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ShareLink | None = None) -> bool:
        return False


@admin.register(StoredFile)
class StoredFileAdmin(StoredFileAdminBase):
    """The records of every protected field's files, read only: the fields
    that hold them write them."""

    list_display = ("original_name", "source", "human_size", "content_type", "created", "preview")
    list_filter = ("content_type", "source", "created")
    search_fields = ("original_name", "=key")
    fields = ("key", "name", "source", "original_name", "human_size", "content_type", "created")

    @admin.display(description=_("size"), ordering="size")
    def human_size(self, obj: StoredFile) -> str:
        return filesizeformat(obj.size)

    @admin.display(description=_("preview"))
    def preview(self, obj: StoredFile) -> SafeString | str:
        return _preview(f"{conf.url}{obj.key}", title=str(PREVIEW_HELP))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: StoredFile | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: StoredFile | None = None) -> bool:
        return False
