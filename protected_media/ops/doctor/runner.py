"""The doctor's run: ``gather`` reads the settings, the database and the disk
once, and ``run`` calls the checks with what each needs."""

from __future__ import annotations

import http.client
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from django.conf import settings
from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from django.core.checks import ERROR
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages
from django.shortcuts import resolve_url

from ...conf import S3_STORAGE, conf
from ...models import StoredFile
from ...names import is_safe_stored_name
from ...nginx.render import STATIC_CACHE_DEFAULT, STATIC_CACHE_HASHED
from .bucket import Bucket, find_stored_file, open_bucket
from .checks import (
    PrivateFile,
    PublicTarget,
    Result,
    StaticStorage,
    check_internal,
    check_private_paths,
    check_refusal,
    check_served_headers,
    check_static,
    check_system,
)
from .client import Site
from .findings import finding
from .nginx_config import check_nginx_config
from .store import store_results

# Enough of a private file to recognise it in a response.
HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Inputs:
    static_url: str
    static_root: Path
    static_storage: StaticStorage
    private_root: Path | None  # unused, and may be unset, where the files are in a bucket
    internal_url: str
    media_url: str
    public_media_url: str | None
    anonymous: str
    login_path: str
    cache_control: str
    probe: PrivateFile | None
    # With PROTECTED_MEDIA_STORAGE = "s3": the bucket, or why it cannot be reached.
    store: Bucket | str | None = None


def gather(*, timeout: float = 10.0) -> Inputs:
    in_bucket = conf.storage == S3_STORAGE
    # With the files in a bucket, the doctor reads no private root.
    required = {
        "SENDFILE_ROOT": conf.root is not None or in_bucket,
        "SENDFILE_URL": conf.internal_url is not None,
        "STATIC_ROOT": bool(settings.STATIC_ROOT),
    }
    if missing := [name for name, present in required.items() if not present]:
        raise ImproperlyConfigured(
            f"{', '.join(missing)} not set: the doctor needs them to know what to ask for. "
            "Set them in the site's settings (manage.py check --deploy names each)."
        )
    assert conf.internal_url is not None  # for mypy: checked just above
    store = open_bucket(timeout=timeout) if in_bucket else None
    probe = None
    if isinstance(store, Bucket):
        # Its first bytes as the bucket holds them: what nginx must serve.
        records = StoredFile.objects.order_by("-created").values_list("key", "name")[:20]
        probe = find_stored_file(store, records, head_bytes=HEAD_BYTES)
    elif conf.root is not None and not in_bucket:
        probe = find_private_file(conf.root.resolve())
    public_media = str(getattr(settings, "MEDIA_URL", "") or "")
    return Inputs(
        static_url=str(settings.STATIC_URL),
        static_root=Path(settings.STATIC_ROOT).resolve(),
        static_storage=static_storage(),
        private_root=conf.root.resolve() if conf.root else None,
        internal_url=conf.internal_url,
        media_url=conf.url,
        public_media_url=public_media if public_media.startswith("/") else None,
        anonymous=conf.anonymous,
        login_path=urlsplit(resolve_url(settings.LOGIN_URL)).path,
        cache_control=conf.cache_control,
        probe=probe,
        store=store,
    )


def static_storage() -> StaticStorage:
    """STORAGES["staticfiles"] from the settings: the storage decides whether
    collectstatic writes a manifest, and where."""
    backend = str(settings.STORAGES["staticfiles"]["BACKEND"])
    storage = storages["staticfiles"]
    if not isinstance(storage, ManifestStaticFilesStorage):
        return StaticStorage(backend=backend, manifest=None)
    try:
        manifest = Path((storage.manifest_storage or storage).path(storage.manifest_name))
    except NotImplementedError:  # a manifest kept off the disk: nginx serves the disk
        manifest = Path(settings.STATIC_ROOT) / storage.manifest_name
    return StaticStorage(backend=backend, manifest=manifest.resolve())


def find_private_file(root: Path, *, candidates: int = 20) -> PrivateFile | None:
    """The newest recorded file that is a regular file on disk."""
    records = StoredFile.objects.order_by("-created").values_list("key", "name")[:candidates]
    for key, name in records:
        if not is_safe_stored_name(name):
            continue
        try:
            if not stat.S_ISREG(os.lstat(root / name).st_mode):
                continue
            with (root / name).open("rb") as handle:
                return PrivateFile(key=key, name=name, head=handle.read(HEAD_BYTES))
        except OSError:
            continue
    return None


def public_targets(inputs: Inputs) -> list[PublicTarget]:
    """Where a careless nginx location would serve a private file without the check."""
    probe = inputs.probe
    if probe is None:
        return []
    name = quote(probe.name)
    prefixes = [inputs.media_url, inputs.static_url, "/"]
    if inputs.public_media_url:
        prefixes.append(inputs.public_media_url)
    targets = [PublicTarget(prefix + name, prefix) for prefix in dict.fromkeys(prefixes)]
    if inputs.private_root is None:
        return targets
    # A location without its trailing slash ("location /static", alias with
    # one) reads the folder above its alias: "/static../private/<name>".
    for prefix, alias in (
        (inputs.static_url, inputs.static_root),
        (inputs.internal_url, inputs.private_root),
    ):
        path = inputs.private_root / probe.name
        if path.is_relative_to(alias.parent):
            relative = quote(path.relative_to(alias.parent).as_posix())
            location = prefix.rstrip("/")
            targets.append(PublicTarget(f"{location}../{relative}", location))
    return targets


def run(
    site: Site,
    inputs: Inputs,
    *,
    nginx_config: Path | None,
    media_target: str | None,
    cookie: str | None,
    fail_level: int = ERROR,
) -> list[Result]:
    probe = inputs.probe
    results = [
        _guarded(
            "static",
            check_static,
            site,
            static_url=inputs.static_url,
            static_root=inputs.static_root,
            storage=inputs.static_storage,
            hashed_cache=STATIC_CACHE_HASHED,
            default_cache=STATIC_CACHE_DEFAULT,
        ),
        _guarded("internal", check_internal, site, internal_url=inputs.internal_url, probe=probe),
        _guarded(
            "private files",
            check_private_paths,
            site,
            targets=public_targets(inputs),
            internal_url=inputs.internal_url,
            probe=probe,
        ),
        _guarded(
            "anonymous media",
            check_refusal,
            site,
            media_url=inputs.media_url,
            anonymous=inputs.anonymous,
            login_path=inputs.login_path,
            probe=probe,
        ),
        _guarded(
            "media headers",
            check_served_headers,
            site,
            target=media_target,
            cookie=cookie,
            cache_control=inputs.cache_control,
            media_url=inputs.media_url,
            internal_url=inputs.internal_url,
        ),
        check_nginx_config(nginx_config),
        check_system(fail_level=fail_level),
    ]
    if inputs.store is not None:
        results += store_results(
            site,
            inputs.store,
            target=media_target,
            cookie=cookie,
            name=stored_name(media_target),
            lifetime=conf.s3_url_lifetime,
            head_bytes=HEAD_BYTES,
        )
    return results


def stored_name(media_target: str | None) -> str | None:
    """The stored name of the file at PROTECTED_MEDIA_URL<key>, if one is."""
    path = urlsplit(media_target or "").path
    if not path.startswith(conf.url):
        return None
    records = StoredFile.objects.filter(key=unquote(path.removeprefix(conf.url)))
    return records.values_list("name", flat=True).first()


def _guarded(
    name: str, check: Callable[..., Result], site: Site, *args: Any, **kwargs: Any
) -> Result:
    try:
        return check(site, *args, **kwargs)
    except (OSError, http.client.HTTPException) as error:
        # An unreachable site fails every HTTP check, each saying so.
        return finding("D001", check=name, site=site.base_url, error=error or type(error).__name__)
