"""Settings for the test suite; tests change them only through override_settings.

TEST_DATABASE_URL (e.g. ``postgres://postgres@127.0.0.1:5432/postgres``) runs the
suite on PostgreSQL; unset, on SQLite.
"""

import os
import tempfile
from pathlib import Path

import dj_database_url

_SCRATCH = Path(tempfile.mkdtemp(prefix="protected-media-tests-"))

SECRET_KEY = "tests-only-secret-key-with-enough-length-to-be-valid-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # A real object-permission backend for the policy tests (tests/test_policies.py);
    # the gateway's own settings do not install it.
    "guardian",
    "protected_media",
    "gateway.demo",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "protected_media.too_large.refusal_middleware",
]
ROOT_URLCONF = "tests.urls"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# No guardian "AnonymousUser" row: anonymous requests are refused before any
# policy runs, and the row would be created again after every flush.
ANONYMOUS_USER_NAME = None
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
# A file, not ":memory:": Django never closes an in-memory SQLite connection
# (closing would drop the database), so the connections of threads that end
# (Django's per-request ones, the ASGI entry point's pool) would be left for
# the garbage collector, which Python 3.13 reports as unclosed.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _SCRATCH / "db.sqlite3",
        "TEST": {"NAME": str(_SCRATCH / "test-db.sqlite3")},
    }
}
if os.environ.get("TEST_DATABASE_URL"):
    # Django creates test_<name> next to the named database and drops it at the
    # end. CONN_MAX_AGE stays 0, as for SQLite; the real-stack tests run the
    # gateway's own settings (tests/stack/harness.py).
    DATABASES = {"default": dict(dj_database_url.parse(os.environ["TEST_DATABASE_URL"]))}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/accounts/login/"
STATIC_URL = "/static/"
STATIC_ROOT = _SCRATCH / "static"
MEDIA_ROOT = _SCRATCH / "public-media"
SENDFILE_ROOT = str(_SCRATCH / "private")
SENDFILE_URL = "/_protected/"
SENDFILE_BACKEND = "django_sendfile.backends.nginx"
PROTECTED_MEDIA_URL = "/media/"
