"""System checks: one test per id, each provoked by one settings override.

The first test proves the test settings alone are clean, so every id the
others see comes from their override and nothing else.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.checks import CheckMessage, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.http import HttpResponse
from django.test.utils import isolate_apps
from django.urls import include, path

from protected_media.fields import ProtectedFileField, ProtectedImageField
from protected_media.nginx.from_settings import render_from_settings

BASE_DIR = Path(__file__).resolve().parent.parent
PREFIX = "protected_media."


def healthz(request):
    return HttpResponse("ok")


# This module doubles as a URLconf (ROOT_URLCONF=__name__): the gateway is
# mounted, but not at PROTECTED_MEDIA_URL ("/media/"), which is what E008 is for.
urlpatterns = [
    path("healthz", healthz),
    path("files/", include("protected_media.urls")),
]


def messages(*, tags: list[str] | None = None) -> list[CheckMessage]:
    return [m for m in run_checks(tags=tags) if (m.id or "").startswith(PREFIX)]


def security_ids() -> set[str]:
    return {m.id for m in messages(tags=["security"])}


# -- the baseline ---------------------------------------------------------------------


def test_test_settings_produce_no_protected_media_message() -> None:
    # Every tag, model checks included (the real fields have owner_field set).
    assert messages() == []


def test_checks_are_registered_under_the_security_tag(settings) -> None:
    settings.SENDFILE_ROOT = None
    assert "protected_media.E001" in security_ids()
    # ...and not only under some other tag.
    assert messages(tags=["models"]) == []


# -- E001: no private root ------------------------------------------------------------


@pytest.mark.parametrize("value", [None, ""])
def test_e001_private_root_not_set(settings, value) -> None:
    settings.SENDFILE_ROOT = value
    found = messages(tags=["security"])
    assert {m.id for m in found} == {"protected_media.E001"}
    assert all(m.is_serious() for m in found)


def test_e001_private_root_missing_from_settings(settings) -> None:
    del settings.SENDFILE_ROOT
    assert security_ids() == {"protected_media.E001"}


# -- E002: a root nginx cannot take as an alias ---------------------------------------


@pytest.mark.parametrize(
    "make_root",
    [
        pytest.param(lambda tmp: "private", id="relative"),
        pytest.param(lambda tmp: "var/private", id="relative-nested"),
        pytest.param(lambda tmp: "./private", id="dot-relative"),
        pytest.param(lambda tmp: str(tmp / "my files"), id="space"),
        pytest.param(lambda tmp: str(tmp / "tab\there"), id="tab"),
        pytest.param(lambda tmp: str(tmp / "it's"), id="single-quote"),
        pytest.param(lambda tmp: str(tmp / 'say"hi'), id="double-quote"),
        pytest.param(lambda tmp: str(tmp / "a;autoindex on"), id="semicolon"),
        pytest.param(lambda tmp: str(tmp / "$document_root"), id="nginx-variable"),
        pytest.param(lambda tmp: str(tmp / "a{b}"), id="braces"),
        pytest.param(lambda tmp: str(tmp / "line\nbreak"), id="newline"),
    ],
)
def test_e002_root_not_writable_into_nginx(settings, tmp_path, make_root) -> None:
    settings.SENDFILE_ROOT = make_root(tmp_path)
    assert security_ids() == {"protected_media.E002"}


# -- E003: private root overlapping a public one --------------------------------------


def _root_inside_static(settings, tmp_path: Path) -> None:
    settings.SENDFILE_ROOT = str(Path(settings.STATIC_ROOT) / "private")


def _static_inside_root(settings, tmp_path: Path) -> None:
    settings.STATIC_ROOT = Path(settings.SENDFILE_ROOT) / "static"


def _root_is_static(settings, tmp_path: Path) -> None:
    settings.STATIC_ROOT = str(settings.SENDFILE_ROOT) + "/"


def _root_is_media(settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = settings.SENDFILE_ROOT


def _root_inside_media(settings, tmp_path: Path) -> None:
    settings.SENDFILE_ROOT = str(Path(settings.MEDIA_ROOT) / "private")


def _media_inside_root(settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(Path(settings.SENDFILE_ROOT) / "public")


def _media_is_root_through_symlink(settings, tmp_path: Path) -> None:
    Path(settings.SENDFILE_ROOT).mkdir(parents=True)
    link = tmp_path / "media-link"
    link.symlink_to(settings.SENDFILE_ROOT, target_is_directory=True)
    settings.MEDIA_ROOT = str(link)


def _root_is_media_with_dotdot(settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "elsewhere" / ".." / "private")


@pytest.mark.parametrize(
    ("misconfigure", "setting"),
    [
        (_root_inside_static, "STATIC_ROOT"),
        (_static_inside_root, "STATIC_ROOT"),
        (_root_is_static, "STATIC_ROOT"),
        (_root_is_media, "MEDIA_ROOT"),
        (_root_inside_media, "MEDIA_ROOT"),
        (_media_inside_root, "MEDIA_ROOT"),
        (_media_is_root_through_symlink, "MEDIA_ROOT"),
        (_root_is_media_with_dotdot, "MEDIA_ROOT"),
    ],
)
def test_e003_private_root_overlaps_a_public_root(
    settings, tmp_path, misconfigure, setting
) -> None:
    misconfigure(settings, tmp_path)
    found = messages(tags=["security"])
    assert [m.id for m in found] == ["protected_media.E003"]
    assert setting in found[0].msg


def test_e003_not_raised_for_a_sibling_sharing_a_name_prefix(settings, tmp_path) -> None:
    # "/x/static-private" is not inside "/x/static": a path test, not a string one.
    settings.STATIC_ROOT = tmp_path / "static"
    settings.MEDIA_ROOT = tmp_path / "priv"
    settings.SENDFILE_ROOT = str(tmp_path / "static-private")
    assert security_ids() == set()
    # The control: the same folders, truly nested, are refused.
    settings.SENDFILE_ROOT = str(tmp_path / "static" / "private")
    assert security_ids() == {"protected_media.E003"}


# -- E004: PROTECTED_MEDIA_URL --------------------------------------------------------

# The gateway stays mounted at "/media/", so E008 may come along; "/" also
# contains SENDFILE_URL, so E006 may too.
ALONG = {"protected_media.E008"}


@pytest.mark.parametrize(
    ("value", "along"),
    [
        ("media/", ALONG),  # no leading slash
        ("/media", ALONG),  # no trailing slash: "/media../x" style escapes in nginx
        ("/", {*ALONG, "protected_media.E006"}),  # the whole site through the gateway
        ("/me dia/", ALONG),  # a space breaks the nginx location
        ("/media;/", ALONG),  # nginx syntax
        ("//", ALONG),  # an empty segment
    ],
)
def test_e004_media_url_without_slashes_at_both_ends(settings, value, along) -> None:
    settings.PROTECTED_MEDIA_URL = value
    ids = security_ids()
    assert "protected_media.E004" in ids
    assert ids - {"protected_media.E004"} <= along


# -- E005: SENDFILE_URL ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "/_protected",  # no trailing slash: "/_protected../" escapes the alias
        "_protected/",  # no leading slash
        "/",  # every URL would be internal
        None,  # not set: no internal prefix at all
        "",
        "/_pro tected/",  # a space breaks the nginx location
        "/_protected/;",  # nginx syntax
    ],
)
def test_e005_internal_url_without_slashes_at_both_ends(settings, value) -> None:
    settings.SENDFILE_URL = value
    assert security_ids() == {"protected_media.E005"}


def test_e005_internal_url_missing_from_settings(settings) -> None:
    del settings.SENDFILE_URL
    assert security_ids() == {"protected_media.E005"}


# -- E006: SENDFILE_URL shares a location with a public prefix ------------------------


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"SENDFILE_URL": "/static/"}, "STATIC_URL"),
        ({"SENDFILE_URL": "/static/private/"}, "STATIC_URL"),
        ({"STATIC_URL": "/_protected/static/"}, "STATIC_URL"),
        ({"SENDFILE_URL": "/media/"}, "PROTECTED_MEDIA_URL"),
        ({"SENDFILE_URL": "/media/_protected/"}, "PROTECTED_MEDIA_URL"),
    ],
)
def test_e006_internal_url_overlaps_a_public_prefix(settings, overrides, setting) -> None:
    for name, value in overrides.items():
        setattr(settings, name, value)
    found = messages(tags=["security"])
    assert [m.id for m in found] == ["protected_media.E006"]
    assert setting in found[0].msg


def test_e006_not_raised_for_a_prefix_sharing_only_characters(settings) -> None:
    # "/media-private/" does not start with "/media/": separate nginx locations.
    settings.SENDFILE_URL = "/media-private/"
    assert security_ids() == set()


# -- E007 / E008: the URLconf ---------------------------------------------------------


def test_e007_gateway_not_in_the_urlconf(settings, monkeypatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "urlpatterns", [path("healthz", healthz)])
    settings.ROOT_URLCONF = __name__
    assert security_ids() == {"protected_media.E007"}


def test_e007_gateway_view_mounted_without_its_namespace(settings, monkeypatch) -> None:
    from protected_media import views

    monkeypatch.setattr(
        sys.modules[__name__], "urlpatterns", [path("media/<path:key>", views.serve)]
    )
    settings.ROOT_URLCONF = __name__
    assert security_ids() == {"protected_media.E007"}


def test_e008_gateway_mounted_away_from_media_url(settings) -> None:
    settings.ROOT_URLCONF = __name__
    found = messages(tags=["security"])
    assert [m.id for m in found] == ["protected_media.E008"]
    assert "/files" in found[0].msg


def test_e008_not_raised_when_media_url_follows_the_mount(settings) -> None:
    settings.ROOT_URLCONF = __name__
    settings.PROTECTED_MEDIA_URL = "/files/"
    assert security_ids() == set()


# -- E009: PROTECTED_MEDIA_ANONYMOUS --------------------------------------------------


@pytest.mark.parametrize("value", ["redirect", "Login", "", None, "403"])
def test_e009_anonymous_answer_invalid(settings, value) -> None:
    settings.PROTECTED_MEDIA_ANONYMOUS = value
    assert security_ids() == {"protected_media.E009"}


@pytest.mark.parametrize("value", ["login", "not_found"])
def test_e009_not_raised_for_valid_answers(settings, value) -> None:
    settings.PROTECTED_MEDIA_ANONYMOUS = value
    assert security_ids() == set()


# -- E010: owner_field ----------------------------------------------------------------


def _owner_check(field_class, owner_field: str, **extra_fields: models.Field) -> list[str]:
    with isolate_apps("tests.testapp"):
        attrs = {
            "__module__": __name__,
            "Meta": type("Meta", (), {"app_label": "testapp"}),
            "public": models.BooleanField(default=False),
            "upload": field_class(upload_to="notes/", owner_field=owner_field),
            **extra_fields,
        }
        model = type("Note", (models.Model,), attrs)
        return [m.id for m in model._meta.get_field("upload").check()]


@pytest.mark.parametrize("field_class", [ProtectedFileField, ProtectedImageField])
@pytest.mark.parametrize(
    ("owner_field", "extra_fields"),
    [
        ("public", dict),  # a BooleanField: not a relation at all
        ("missing", dict),  # no such field
        (
            "readers",  # a relation, but to many users: there is no single owner
            lambda: {"readers": models.ManyToManyField(get_user_model(), related_name="+")},
        ),
    ],
)
def test_e010_owner_field_not_a_single_relation(field_class, owner_field, extra_fields) -> None:
    assert _owner_check(field_class, owner_field, **extra_fields()) == ["protected_media.E010"]


@pytest.mark.parametrize(
    "relation",
    [
        lambda: models.ForeignKey(get_user_model(), on_delete=models.CASCADE, related_name="+"),
        lambda: models.OneToOneField(get_user_model(), on_delete=models.CASCADE, related_name="+"),
    ],
)
def test_e010_not_raised_for_a_relation_to_the_user(relation) -> None:
    assert "protected_media.E010" not in _owner_check(ProtectedFileField, "owner", owner=relation())


def test_e010_owner_field_pointing_at_another_model() -> None:
    # The default policy compares the owner column with user.pk: a ForeignKey to
    # Group would hand group 3's files to user 3. The message promises the user model.
    owner = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    assert "protected_media.E010" in _owner_check(ProtectedFileField, "owner", owner=owner)


# -- E011: PROTECTED_MEDIA_POLICY -----------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "tests.testapp.policies.not_async",  # a plain function: `await` would fail per request
        "tests.testapp.policies.missing",  # the module exists, the name does not
        "tests.testapp.no_such_module.policy",  # the module does not exist
        "policy",  # not a dotted path
        "tests.testapp.policies",  # a module, not a callable
        "protected_media.policy.get_policy",  # the sync getter, not a policy
    ],
)
def test_e011_policy_not_an_importable_async_function(settings, value) -> None:
    settings.PROTECTED_MEDIA_POLICY = value
    assert security_ids() == {"protected_media.E011"}


@pytest.mark.parametrize(
    "value", ["tests.testapp.policies.public_reports", "protected_media.policy.default_policy"]
)
def test_e011_not_raised_for_an_async_policy(settings, value) -> None:
    settings.PROTECTED_MEDIA_POLICY = value
    assert security_ids() == set()


# -- E012 / W001: the backend ---------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "django_sendfile.backends.simple",  # reads the whole file into memory under ASGI
        "django_sendfile.backends.development",
        "django_sendfile.backends.xsendfile",  # Apache's header: nginx would ignore it
        "django_sendfile.backends.nginx ",  # a typo is not the nginx backend
        "protected_media.backends.nginx",
    ],
)
@pytest.mark.parametrize("debug", [False, True])
def test_e012_unsupported_backend(settings, value, debug) -> None:
    settings.DEBUG = debug
    settings.SENDFILE_BACKEND = value
    found = messages(tags=["security"])
    assert [m.id for m in found] == ["protected_media.E012"]
    assert found[0].is_serious()


def test_w001_streaming_fallback_with_debug_off(settings) -> None:
    settings.DEBUG = False
    settings.SENDFILE_BACKEND = "protected_media.backends.streaming"
    found = messages(tags=["security"])
    assert [m.id for m in found] == ["protected_media.W001"]
    # A warning: `manage.py check` still passes, the operator is told.
    assert not found[0].is_serious()


def test_w001_not_raised_for_streaming_with_debug_on(settings) -> None:
    settings.DEBUG = True
    settings.SENDFILE_BACKEND = "protected_media.backends.streaming"
    assert security_ids() == set()


@pytest.mark.parametrize("value", [None, ""])
def test_unset_backend_means_nginx(settings, value) -> None:
    settings.SENDFILE_BACKEND = value
    assert security_ids() == set()


# -- E014: a rate or connection limit nginx cannot take -------------------------------

LIMIT_SETTINGS = [
    "PROTECTED_MEDIA_MEDIA_RATE",
    "PROTECTED_MEDIA_MEDIA_BURST",
    "PROTECTED_MEDIA_MEDIA_CONNECTIONS",
    "PROTECTED_MEDIA_UPLOAD_RATE",
    "PROTECTED_MEDIA_UPLOAD_BURST",
    "PROTECTED_MEDIA_UPLOAD_CONNECTIONS",
]
# Each row: the setting's kind, a value nginx cannot take, and why.
BAD_LIMITS = [
    ("RATE", "30r/s; include /etc/shadow", "';' ends the directive"),
    ("RATE", "30 r/s", "two words"),
    ("RATE", "30r/h", "per second or per minute only"),
    ("RATE", "0r/s", "nginx refuses a zero rate"),
    ("RATE", "30", "no unit"),
    ("RATE", "", "empty"),
    ("RATE", 30, "a number, not a rate"),
    ("BURST", 0, "nginx refuses burst=0"),
    ("BURST", -5, "negative"),
    ("BURST", "200", "a string"),
    ("BURST", None, "None turns off rates and connections, not bursts"),
    ("BURST", True, "a bool"),
    ("CONNECTIONS", 0, "nginx refuses zero connections"),
    ("CONNECTIONS", -1, "negative"),
    ("CONNECTIONS", "64", "a string"),
    ("CONNECTIONS", 2.0, "a float"),
]


@pytest.mark.parametrize("zone", ["MEDIA", "UPLOAD"])
@pytest.mark.parametrize(
    ("kind", "value"), [row[:2] for row in BAD_LIMITS], ids=[row[2] for row in BAD_LIMITS]
)
def test_e014_limit_nginx_cannot_take(settings, zone, kind, value) -> None:
    name = f"PROTECTED_MEDIA_{zone}_{kind}"
    setattr(settings, name, value)
    [error] = [m for m in messages(tags=["security"]) if m.id == "protected_media.E014"]
    assert error.msg.startswith(f"{name} {value!r} ")
    assert error.hint


def test_e014_names_each_bad_setting(settings) -> None:
    for name in LIMIT_SETTINGS:
        setattr(settings, name, -1)
    named = [m.msg.split()[0] for m in messages() if m.id == "protected_media.E014"]
    assert named == LIMIT_SETTINGS


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("RATE", "1r/s"),
        ("RATE", "600r/m"),
        ("RATE", None),  # no rate limit
        ("BURST", 1),
        ("BURST", 100_000),
        ("CONNECTIONS", 1),
        ("CONNECTIONS", None),  # no connection limit
    ],
)
@pytest.mark.parametrize("zone", ["MEDIA", "UPLOAD"])
def test_e014_not_raised_for_limits_nginx_takes(settings, zone, kind, value) -> None:
    setattr(settings, f"PROTECTED_MEDIA_{zone}_{kind}", value)
    assert security_ids() == set()


def test_e014_not_raised_for_the_defaults(settings) -> None:
    for name in LIMIT_SETTINGS:
        if hasattr(settings, name):
            delattr(settings, name)
    assert security_ids() == set()


# -- the real gateway project ---------------------------------------------------------


def _manage_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and name != "DJANGO_SETTINGS_MODULE"
    }
    clean.update({"GATEWAY_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "check"],
        cwd=BASE_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_gateway_project_passes_its_checks(tmp_path) -> None:
    result = _manage_check(tmp_path, GATEWAY_DEBUG="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_gateway_project_reads_its_limits_from_the_environment(tmp_path) -> None:
    # "off" turns a limit off; a rate nginx cannot take is refused by E014.
    result = _manage_check(
        tmp_path,
        GATEWAY_DEBUG="1",
        GATEWAY_MEDIA_RATE="off",
        GATEWAY_MEDIA_CONNECTIONS="off",
        GATEWAY_UPLOAD_RATE="10r/m",
        GATEWAY_UPLOAD_BURST="1",
        GATEWAY_UPLOAD_CONNECTIONS="1",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    result = _manage_check(tmp_path, GATEWAY_DEBUG="1", GATEWAY_UPLOAD_RATE="10 per minute")
    assert result.returncode != 0
    assert "protected_media.E014" in result.stderr
    assert "PROTECTED_MEDIA_UPLOAD_RATE '10 per minute'" in result.stderr


def test_gateway_project_warns_about_the_fallback_in_production(tmp_path) -> None:
    result = _manage_check(
        tmp_path,
        GATEWAY_DEBUG="0",
        GATEWAY_SECRET_KEY="x" * 60,
        GATEWAY_SENDFILE_BACKEND="protected_media.backends.streaming",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "protected_media.W001" in output
    assert "protected_media.E" not in output


# -- E027: public media or static files under the gateway's prefix --------------------


def _mount_gateway_at(monkeypatch, settings, prefix: str) -> None:
    monkeypatch.setattr(
        sys.modules[__name__], "urlpatterns", [path(prefix, include("protected_media.urls"))]
    )
    settings.ROOT_URLCONF = __name__
    settings.PROTECTED_MEDIA_URL = f"/{prefix}"


@pytest.mark.parametrize(
    "media_url",
    [
        "/media/",  # a site's usual MEDIA_URL, the gateway's default prefix
        "/media",  # the same location, without its trailing slash
        "media/",  # Django adds the leading slash
        "/media/public/",  # inside the gateway's prefix
    ],
)
def test_e027_media_url_overlaps_the_gateway(settings, media_url) -> None:
    settings.MEDIA_URL = media_url
    found = messages(tags=["security"])
    assert [m.id for m in found] == ["protected_media.E027"]
    assert f"MEDIA_URL '{media_url if media_url != 'media/' else '/media/'}'" in found[0].msg
    assert "PROTECTED_MEDIA_URL '/media/'" in found[0].msg
    assert '"/public-media/"' in found[0].hint
    assert found[0].is_serious()


def test_e027_gateway_inside_media_url(settings, monkeypatch) -> None:
    _mount_gateway_at(monkeypatch, settings, "uploads/private/")
    settings.MEDIA_URL = "/uploads/"
    found = messages(tags=["security"])
    assert [m.id for m in found] == ["protected_media.E027"]
    assert "MEDIA_URL '/uploads/' and PROTECTED_MEDIA_URL '/uploads/private/'" in found[0].msg


def test_e027_static_url_overlaps_the_gateway(settings) -> None:
    settings.STATIC_URL = "/media/static/"
    found = messages(tags=["security"])
    assert [m.id for m in found] == ["protected_media.E027"]
    assert "STATIC_URL '/media/static/' and PROTECTED_MEDIA_URL '/media/'" in found[0].msg


@pytest.mark.parametrize(
    "media_url",
    [
        "",  # Django's default: no public media
        "/public-media/",  # the fix the hint gives
        "/media-files/",  # shares characters, not a location
        "https://cdn.example.com/media/",  # another host
        "//cdn.example.com/media/",
    ],
)
def test_e027_not_raised_for_a_media_url_of_its_own(settings, media_url) -> None:
    settings.MEDIA_URL = media_url
    assert security_ids() == set()


# -- W002: the nginx backend under runserver ------------------------------------------

NGINX_BACKEND = "django_sendfile.backends.nginx"
STREAMING_BACKEND = "protected_media.backends.streaming"


def test_w002_nginx_backend_under_runserver(settings, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["manage.py", "runserver", "--noreload"])
    settings.DEBUG = True
    found = messages()
    assert [m.id for m in found] == ["protected_media.W002"]
    assert NGINX_BACKEND in found[0].msg
    assert "empty body" in found[0].msg
    assert f"SENDFILE_BACKEND = {STREAMING_BACKEND!r}" in found[0].hint
    # A warning: runserver still starts.
    assert not found[0].is_serious()


@pytest.mark.parametrize(
    ("argv", "debug", "backend"),
    [
        (["manage.py", "runserver"], True, STREAMING_BACKEND),  # the fix
        (["manage.py", "runserver"], False, NGINX_BACKEND),  # DEBUG off: nginx is in front
        (["manage.py", "check"], True, NGINX_BACKEND),  # not the development server
        (["uvicorn", "gateway.asgi:application"], True, NGINX_BACKEND),  # behind nginx
        (["manage.py", "runserver_plus"], True, NGINX_BACKEND),  # another command
    ],
)
def test_w002_not_raised(settings, monkeypatch, argv, debug, backend) -> None:
    monkeypatch.setattr(sys, "argv", argv)
    settings.DEBUG = debug
    settings.SENDFILE_BACKEND = backend
    assert "protected_media.W002" not in {m.id for m in messages()}


# -- W004: nginx hands a too-large upload to a site without the middleware ------------

REFUSAL_MIDDLEWARE = "protected_media.too_large.refusal_middleware"


def test_w004_nginx_backend_without_the_refusal_middleware(settings) -> None:
    settings.MIDDLEWARE = [path for path in settings.MIDDLEWARE if path != REFUSAL_MIDDLEWARE]
    found = messages()
    assert [m.id for m in found] == ["protected_media.W004"]
    assert "status 413" in found[0].msg
    assert REFUSAL_MIDDLEWARE in found[0].hint
    assert not found[0].is_serious()


def test_w004_not_raised_without_nginx(settings) -> None:
    settings.MIDDLEWARE = [path for path in settings.MIDDLEWARE if path != REFUSAL_MIDDLEWARE]
    settings.SENDFILE_BACKEND = STREAMING_BACKEND
    settings.DEBUG = True  # W001 otherwise
    assert "protected_media.W004" not in {m.id for m in messages()}


# -- E031: PROTECTED_MEDIA_CACHE_CONTROL ------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "public, max-age=3600",  # a CDN would keep one user's file for the next
        "max-age=60",  # nothing keeps it out of a shared cache
        "private, s-maxage=60",
        "no-store, PUBLIC",
        "no-cache",
        "",
        "private\r\nX-Injected: 1",  # every answer would be a 500
        "private, no-store, \u00e9",
        None,
        60,
    ],
)
def test_e031_cache_control_that_a_shared_cache_may_keep(settings, value) -> None:
    settings.PROTECTED_MEDIA_CACHE_CONTROL = value
    [message] = messages(tags=["security"])
    assert message.id == "protected_media.E031"
    assert repr(value) in message.msg


@pytest.mark.parametrize(
    "value", ["private, no-store", "private, max-age=60", "no-store", "Private,Max-Age=60"]
)
def test_e031_not_raised_for_private_answers(settings, value) -> None:
    settings.PROTECTED_MEDIA_CACHE_CONTROL = value
    assert security_ids() == set()


# -- E030: what protected_media_nginx needs from the settings -------------------------


def render() -> str:
    return render_from_settings(
        listen="127.0.0.1:8000", upstream="unix:/tmp/u.sock", server_name="_"
    )


def nginx_errors() -> list[CheckMessage]:
    return [m for m in messages(tags=["security"]) if m.id == "protected_media.E030"]


# Each row: the overrides, and the setting E030 names. Nothing else checks these.
RENDERER_NEEDS = [
    pytest.param({"STATIC_ROOT": None}, "STATIC_ROOT", id="no STATIC_ROOT"),
    pytest.param({"STATIC_ROOT": ""}, "STATIC_ROOT", id="empty STATIC_ROOT"),
    pytest.param({"STATIC_ROOT": "/srv/my static"}, "STATIC_ROOT", id="STATIC_ROOT with a space"),
    pytest.param({"STATIC_URL": None}, "STATIC_URL", id="no STATIC_URL"),
    pytest.param({"STATIC_URL": "/static;/"}, "STATIC_URL", id="STATIC_URL with nginx syntax"),
    pytest.param(
        {"PROTECTED_MEDIA_MAX_UPLOAD_SIZE": "10 MB"},
        "PROTECTED_MEDIA_MAX_UPLOAD_SIZE",
        id="upload size not a number",
    ),
    pytest.param(
        {"PROTECTED_MEDIA_MAX_UPLOAD_SIZE": None},
        "PROTECTED_MEDIA_MAX_UPLOAD_SIZE",
        id="upload size None",
    ),
]


@pytest.mark.parametrize(("overrides", "setting"), RENDERER_NEEDS)
def test_e030_setting_the_nginx_renderer_refuses(settings, overrides, setting) -> None:
    for name, value in overrides.items():
        setattr(settings, name, value)
    found = messages(tags=["security"])
    assert [m.id for m in found] == ["protected_media.E030"]
    assert setting in found[0].msg
    assert found[0].is_serious()
    # The renderer refuses with the very words of the check.
    with pytest.raises(ImproperlyConfigured) as refused:
        render()
    assert found[0].msg.split(": ", 1)[1] in str(refused.value)


def test_e030_reports_each_problem_at_once(settings) -> None:
    # The reported bug: STATIC_ROOT missing, and `check` passed.
    settings.STATIC_ROOT = None
    settings.PROTECTED_MEDIA_MAX_UPLOAD_SIZE = "ten megabytes"
    found = nginx_errors()
    assert len(found) == 2
    assert "STATIC_ROOT must be set." in found[0].msg
    assert "PROTECTED_MEDIA_MAX_UPLOAD_SIZE 'ten megabytes'" in found[1].msg
    with pytest.raises(ImproperlyConfigured, match=r"STATIC_ROOT must be set\..*MAX_UPLOAD_SIZE"):
        render()


def test_e030_not_raised_without_nginx(settings) -> None:
    # The streaming fallback renders no nginx config.
    settings.DEBUG = True
    settings.SENDFILE_BACKEND = STREAMING_BACKEND
    settings.STATIC_ROOT = None
    assert security_ids() == set()


def _store(settings) -> None:
    settings.PROTECTED_MEDIA_STORAGE = "s3"
    settings.PROTECTED_MEDIA_S3_ENDPOINT_URL = "https://s3.eu-west-1.amazonaws.com"
    settings.PROTECTED_MEDIA_S3_BUCKET = "site-private"
    settings.PROTECTED_MEDIA_S3_ACCESS_KEY_ID = "AKIDEXAMPLE"
    settings.PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def _own_prefixes(settings) -> None:
    settings.STATIC_URL = "/assets/"
    settings.MEDIA_URL = "/public-media/"
    settings.PROTECTED_MEDIA_MAX_UPLOAD_SIZE = "1048576"  # read with int()
    settings.PROTECTED_MEDIA_METRICS_URL = None


def _no_limits(settings) -> None:
    for zone in ("MEDIA", "UPLOAD"):
        setattr(settings, f"PROTECTED_MEDIA_{zone}_RATE", None)
        setattr(settings, f"PROTECTED_MEDIA_{zone}_CONNECTIONS", None)


@pytest.mark.parametrize(
    "configure",
    [lambda settings: None, _own_prefixes, _no_limits, _store],
    ids=["test settings", "own prefixes", "no limits", "object store"],
)
def test_settings_the_checks_accept_render(settings, configure) -> None:
    configure(settings)
    assert security_ids() == set()
    server = render()
    assert f"location ^~ {settings.STATIC_URL} {{" in server
    assert f"alias {Path(settings.STATIC_ROOT).resolve()}/;" in server
    assert f"alias {Path(settings.SENDFILE_ROOT).resolve()}/;" in server


def _root_through_a_symlink_to_a_space(settings, tmp_path: Path) -> None:
    target = tmp_path / "my files"
    target.mkdir()
    (tmp_path / "files").symlink_to(target, target_is_directory=True)
    settings.SENDFILE_ROOT = str(tmp_path / "files")


# Each row: what the renderer also refuses, and the check that already says so.
RENDERER_REFUSALS_CHECKED_ELSEWHERE = [
    ({"SENDFILE_ROOT": None}, "protected_media.E001"),
    (_root_through_a_symlink_to_a_space, "protected_media.E002"),
    ({"SENDFILE_URL": None}, "protected_media.E005"),
    ({"SENDFILE_URL": ""}, "protected_media.E005"),
    ({"PROTECTED_MEDIA_URL": "/me dia/"}, "protected_media.E004"),
    ({"PROTECTED_MEDIA_MEDIA_BURST": 0}, "protected_media.E014"),
    ({"PROTECTED_MEDIA_UPLOAD_RATE": "2 r/s"}, "protected_media.E014"),
    ({"PROTECTED_MEDIA_METRICS_URL": "/metrics;"}, "protected_media.E016"),
    ({"PROTECTED_MEDIA_S3_ENDPOINT_URL": None}, "protected_media.E022"),
    ({"PROTECTED_MEDIA_S3_ENDPOINT_URL": "https://s3.example.com/bucket"}, "protected_media.E022"),
    ({"PROTECTED_MEDIA_S3_INTERNAL_URL": "/_protected/store/"}, "protected_media.E022"),
]


@pytest.mark.parametrize(("misconfigure", "check_id"), RENDERER_REFUSALS_CHECKED_ELSEWHERE)
def test_every_refusal_of_the_renderer_fails_the_check_once(
    settings, tmp_path, misconfigure, check_id
) -> None:
    _store(settings)  # so that the store's settings are read
    if callable(misconfigure):
        misconfigure(settings, tmp_path)
    else:
        for name, value in misconfigure.items():
            setattr(settings, name, value)
    with pytest.raises((ImproperlyConfigured, ValueError)):
        render()
    found = {m.id for m in messages(tags=["security"]) if m.is_serious()}
    assert check_id in found
    # Said once, by the check that owns the setting.
    assert "protected_media.E030" not in found


def _runserver(tmp_path: Path, *args: str, **env: str) -> str:
    # A port already taken: runserver runs its checks, then cannot bind and exits.
    (tmp_path / "data").mkdir(exist_ok=True)
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and name not in ("DJANGO_SETTINGS_MODULE", "RUN_MAIN")
    }
    clean.update({"GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_DEBUG": "1", **env})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # A session of its own: the autoreloader's child goes too if it hangs.
        server = subprocess.Popen(
            [sys.executable, str(BASE_DIR / "manage.py"), "runserver", *args, f"127.0.0.1:{port}"],
            cwd=BASE_DIR,
            env=clean,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = server.communicate(timeout=120)
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    assert "That port is already in use" in output, output
    return output


# With the autoreloader, the checks run in its child process.
@pytest.mark.parametrize("args", [["--noreload"], []], ids=["noreload", "autoreload"])
def test_w002_in_runserver_own_checks(tmp_path, args) -> None:
    output = _runserver(tmp_path, *args)
    assert "(protected_media.W002) SENDFILE_BACKEND is 'django_sendfile.backends.nginx'" in output
    output = _runserver(tmp_path, *args, GATEWAY_SENDFILE_BACKEND=STREAMING_BACKEND)
    assert "protected_media.W" not in output
    assert "System check identified no issues" in output
