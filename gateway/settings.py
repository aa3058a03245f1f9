"""Settings for the deployable gateway, read from the environment.

With nothing set, everything lives under one data folder (GATEWAY_DATA_DIR,
default ``var/`` in the checkout): the SQLite database, the private files and
the collected static files.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


DATA_DIR = Path(os.environ.get("GATEWAY_DATA_DIR") or BASE_DIR / "var").resolve()
DEBUG = _env_bool("GATEWAY_DEBUG", False)

SECRET_KEY = os.environ.get("GATEWAY_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "GATEWAY_SECRET_KEY is required when GATEWAY_DEBUG is off "
            "(the run command creates one in the data folder)."
        )
    SECRET_KEY = "insecure-development-key-only-for-GATEWAY_DEBUG"  # noqa: S105

ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("GATEWAY_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
    if host.strip()
]
CSRF_TRUSTED_ORIGINS = [
    origin.strip()
    for origin in os.environ.get("GATEWAY_CSRF_TRUSTED_ORIGINS", "").split(",")
    if origin.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "protected_media",
    "gateway.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A Content-Security-Policy on every page and Cache-Control: private,
    # no-store on every answer that set none (SECURITY.md, the pages' rule).
    "gateway.middleware.SiteHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so the answer gets every header the others add: an upload nginx
    # refused for its size, in the site's words (a page, or JSON) not nginx's.
    "protected_media.too_large.refusal_middleware",
]

ROOT_URLCONF = "gateway.urls"
ASGI_APPLICATION = "gateway.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "db.sqlite3",
        # WAL: readers never wait for a writer, so the media check's reads on
        # the event loop (protected_media.fastpath.sqlite_reads) are not held
        # up by an upload's commit; the mode is kept in the file.
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL;",
        },
        # CONN_MAX_AGE stays 0: under ASGI, Django runs each request's queries
        # in a thread that ends with it, and a kept connection would be left
        # to the garbage collector. The media entry point's threads live as
        # long as the process and keep theirs
        # (PROTECTED_MEDIA_FAST_PATH_CONN_MAX_AGE).
        "CONN_HEALTH_CHECKS": True,
    }
}
# PostgreSQL (psycopg 3) instead, e.g. postgres://gateway@/gateway?host=/run/postgresql
DATABASE_URL = os.environ.get("GATEWAY_DATABASE_URL", "").strip()
if DATABASE_URL:
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "GATEWAY_DATABASE_URL must be a postgres:// URL (leave it empty for SQLite)."
        )
    # Django's psycopg pool, not persistent connections. Under ASGI, Django's
    # handler runs each request's queries in a thread that ends with the
    # request: with CONN_MAX_AGE > 0 request_finished keeps that thread's
    # connection, left open until the garbage collector finds it, while with
    # a pool the request hands it back. Per process: min_size covers the
    # entry point's threads (PROTECTED_MEDIA_FAST_PATH_THREADS, 4), max_size
    # bounds what Django's concurrent requests hold; workers x (max_size + the
    # 4 the entry point reads through on the event loop) must stay under the
    # server's max_connections. A request waits at most
    # `timeout` seconds for a connection: while the database refuses
    # connections, each media request waits that long before its 503. The
    # measurements behind the pool, max_size and timeout are in
    # docs/performance.md ("Database connections").
    # Django refuses CONN_MAX_AGE > 0 with a pool.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 4,
        # A request that still finds none gets a 503 with Retry-After
        # (handler500), not a 500.
        "max_size": 24,
        "timeout": 10,
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/files/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Static files: collected into the data folder and served by nginx, with
# hashed names so nginx can let browsers cache them for a year.
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}
# Nothing is public under MEDIA_ROOT: every upload is a protected file.
MEDIA_ROOT = DATA_DIR / "public-media"
MEDIA_URL = "/public-media/"

# Private media: protected_media uses django-sendfile2's settings for the
# private root and nginx's internal prefix.
SENDFILE_ROOT = str(DATA_DIR / "private")
SENDFILE_URL = "/_protected/"
SENDFILE_BACKEND = os.environ.get("GATEWAY_SENDFILE_BACKEND", "django_sendfile.backends.nginx")
PROTECTED_MEDIA_URL = "/media/"
# Where the private files live: "local", the folder above, or "s3", a bucket
# of an S3-compatible store (the s3 extra). nginx sends the bytes either way.
# With s3 and no endpoint, the run command starts a SeaweedFS of its own in
# the data folder and sets the GATEWAY_S3_* variables for its processes.
PROTECTED_MEDIA_STORAGE = os.environ.get("GATEWAY_STORAGE", "").strip().lower() or "local"
if PROTECTED_MEDIA_STORAGE not in ("local", "s3"):
    raise ImproperlyConfigured(
        "GATEWAY_STORAGE must be local or s3 (empty: local), "
        f"not {os.environ.get('GATEWAY_STORAGE')!r}."
    )
if PROTECTED_MEDIA_STORAGE == "s3":
    # Left empty, the system checks name what is missing.
    PROTECTED_MEDIA_S3_ENDPOINT_URL = os.environ.get("GATEWAY_S3_ENDPOINT_URL", "").strip()
    PROTECTED_MEDIA_S3_BUCKET = os.environ.get("GATEWAY_S3_BUCKET", "").strip()
    PROTECTED_MEDIA_S3_ACCESS_KEY_ID = os.environ.get("GATEWAY_S3_ACCESS_KEY_ID", "").strip()
    PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY = os.environ.get(
        "GATEWAY_S3_SECRET_ACCESS_KEY", ""
    ).strip()
    if os.environ.get("GATEWAY_S3_REGION", "").strip():
        PROTECTED_MEDIA_S3_REGION = os.environ["GATEWAY_S3_REGION"].strip()
# Prometheus metrics (protected_media.ops.metrics, with prometheus-client from
# the gateway extra), mounted in gateway/urls.py: setting the URL also has the
# app count decisions and uploads. The rendered nginx config lets only
# loopback reach it.
PROTECTED_MEDIA_METRICS_URL = "/metrics"
# Media requests answered by protected_media.asgi's entry point (gateway/asgi.py)
# rather than Django's full handler: same view, same answers, several times
# the throughput (docs/performance.md).
PROTECTED_MEDIA_FAST_PATH = _env_bool("GATEWAY_FAST_MEDIA", True)
# The entry point reads on the event loop (SQLite: 5 ms busy timeout;
# PostgreSQL: a pool of 4 async connections per process); off, every read
# goes to its threads, as the benchmark's gateway-threads case does.
if not _env_bool("GATEWAY_FAST_MEDIA_LOOP_READS", True):
    PROTECTED_MEDIA_FAST_PATH_SQLITE_BUSY_MS = None
    PROTECTED_MEDIA_FAST_PATH_POSTGRES_CONNECTIONS = None
PROTECTED_MEDIA_MAX_UPLOAD_SIZE = int(
    os.environ.get("GATEWAY_MAX_UPLOAD_SIZE", str(10 * 1024 * 1024))
)
# What inspecting one image may cost (docs/uploads.md, "What an upload can cost").
if os.environ.get("GATEWAY_MAX_PROCESSED_PIXELS"):
    PROTECTED_MEDIA_MAX_PROCESSED_PIXELS = int(os.environ["GATEWAY_MAX_PROCESSED_PIXELS"])


def _limit(value: str) -> str | None:
    # "off" (or empty) removes a rate or connection limit.
    return None if value.strip().lower() in ("", "off") else value.strip()


def _limit_int(value: str) -> int | None:
    limit = _limit(value)
    return None if limit is None else int(limit)


# nginx's limits per client address (re-render its config after a change):
# media requests, and writes (uploads, deletions, sign-ins) elsewhere.
PROTECTED_MEDIA_MEDIA_RATE = _limit(os.environ.get("GATEWAY_MEDIA_RATE", "30r/s"))
PROTECTED_MEDIA_MEDIA_BURST = int(os.environ.get("GATEWAY_MEDIA_BURST", "200"))
PROTECTED_MEDIA_MEDIA_CONNECTIONS = _limit_int(os.environ.get("GATEWAY_MEDIA_CONNECTIONS", "64"))
PROTECTED_MEDIA_UPLOAD_RATE = _limit(os.environ.get("GATEWAY_UPLOAD_RATE", "2r/s"))
PROTECTED_MEDIA_UPLOAD_BURST = int(os.environ.get("GATEWAY_UPLOAD_BURST", "10"))
PROTECTED_MEDIA_UPLOAD_CONNECTIONS = _limit_int(os.environ.get("GATEWAY_UPLOAD_CONNECTIONS", "4"))

# Private files readable by the app's group (nginx's, in deploy/) and nobody else.
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
# Django's own caps, so a request nginx let through still cannot exhaust us.
DATA_UPLOAD_MAX_NUMBER_FILES = 20
DATA_UPLOAD_MAX_NUMBER_FIELDS = 100
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _env_bool("GATEWAY_HTTPS", False)
# Behind TLS, browsers are told to come back over https only. Django adds the
# header to its own pages; one answer is enough for a browser to remember it,
# so the static and private locations need not repeat it.
SECURE_HSTS_SECONDS = 365 * 24 * 3600 if SESSION_COOKIE_SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SESSION_COOKIE_SECURE
SILENCED_SYSTEM_CHECKS = [
    # SECURE_SSL_REDIRECT stays off: nginx answers plain http with a redirect
    # to https (docs/deployment.md, TLS) and passes only TLS requests on, while
    # health checks on uvicorn's socket are plain http and must not get a 301.
    "security.W008",
    # No HSTS "preload": once a domain is on the browsers' preload list, every
    # subdomain is https-only for months, and anyone may submit a domain that
    # sends the directive. Submitting is the operator's decision.
    "security.W021",
]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "gateway.demo.api.csrf_failure"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("GATEWAY_LOG_LEVEL", "WARNING")},
    "loggers": {
        # One line per media decision (protected_media.audit), whatever the
        # general level: INFO keeps them, WARNING silences them.
        "protected_media.audit": {"level": os.environ.get("GATEWAY_AUDIT_LOG_LEVEL", "INFO")},
    },
}
