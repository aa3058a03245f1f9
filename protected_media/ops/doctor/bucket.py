"""The bucket as the doctor reaches it (PROTECTED_MEDIA_STORAGE = "s3"):
signed calls through the storage's own boto3 client (its credentials,
endpoint and region), unsigned ones as plain HTTP to the endpoint, every one
bounded by the doctor's timeout. ``store`` holds the checks made with it.
"""

from __future__ import annotations

import http.client
import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured

from ...conf import conf
from ...names import is_safe_stored_name
from ...storage import selected_class
from ...storage.s3_rules import S3_SETTING_RULES
from .checks import PrivateFile
from .client import Response, Site

# The doctor's own objects, named so that anyone listing the bucket knows
# whose they are; each is deleted once asked for.
PROBE_PREFIX = ".protected-media-doctor/"
OPERATIONS = {"PutObject": "put_object", "GetObject": "get_object", "DeleteObject": "delete_object"}


class NoAnswer(Exception):
    """The store did not answer: refused connection, timeout, TLS failure."""


class Refused(Exception):
    """The store answered a signed call with an error."""

    def __init__(self, action: str, code: str, status: int) -> None:
        super().__init__(f"{action}: {code} ({status})")
        self.action, self.code, self.status = action, code, status


class Bucket:
    """PROTECTED_MEDIA_S3_BUCKET as the doctor reaches it. Once the store has
    not answered, later calls fail at once with the same reason."""

    def __init__(self, storage: Any, *, timeout: float, errors: Any, silent_errors: Any) -> None:
        self.name: str = storage.bucket_name
        self.endpoint_url: str = storage.endpoint_url.rstrip("/")
        self.access_key_id: str = storage.access_key
        self.client = storage.connection.meta.client
        self.site = Site(self.endpoint_url, timeout=timeout)
        # The s3 extra's error classes, handed in: this module imports without it.
        self.errors, self.silent_errors = errors, silent_errors
        self.server: str | None = None  # the store's own Server header, once seen
        self.silence: str | None = None

    def path(self, key: str) -> str:
        return f"/{self.name}/{quote(key)}"

    def call(self, action: str, key: str, **params: Any) -> Any:
        """The S3 ``action`` (PutObject, GetObject, DeleteObject) on ``key``."""
        self._fail_if_silent()
        try:
            return getattr(self.client, OPERATIONS[action])(Bucket=self.name, Key=key, **params)
        except self.silent_errors as error:
            self.silence = type(error).__name__
            raise NoAnswer(self.silence) from error
        except self.errors as error:
            answer = getattr(error, "response", None) or {}
            code = str(answer.get("Error", {}).get("Code") or type(error).__name__)
            status = int(answer.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            raise Refused(action, code, status) from error

    def read(self, key: str, size: int) -> bytes:
        """The object's first ``size`` bytes (all of a shorter one)."""
        try:
            answer = self.call("GetObject", key, Range=f"bytes=0-{size - 1}")
        except Refused as error:
            if error.code == "InvalidRange":  # an empty object has no byte 0
                return b""
            raise
        return bytes(answer["Body"].read(size))

    def get_unsigned(self, target: str) -> Response:
        self._fail_if_silent()
        try:
            response = self.site.get(target)
        except (OSError, http.client.HTTPException) as error:
            self.silence = type(error).__name__
            raise NoAnswer(self.silence) from error
        self.server = self.server or next(iter(response.values("server")), None)
        return response

    def _fail_if_silent(self) -> None:
        if self.silence is not None:
            raise NoAnswer(self.silence)


def open_bucket(*, timeout: float) -> Bucket | str:
    """The selected bucket, or why the doctor cannot reach it."""
    values = {
        "PROTECTED_MEDIA_S3_ENDPOINT_URL": conf.s3_endpoint_url,
        "PROTECTED_MEDIA_S3_BUCKET": conf.s3_bucket,
        "PROTECTED_MEDIA_S3_ACCESS_KEY_ID": conf.s3_access_key_id,
        "PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY": conf.s3_secret_access_key,
        "PROTECTED_MEDIA_S3_REGION": conf.s3_region,
    }
    invalid = [name for name, value in values.items() if not S3_SETTING_RULES[name].valid(value)]
    if invalid:
        return (
            f"{', '.join(invalid)} missing or invalid: see the system checks (protected_media.E022)"
        )
    try:
        selected_class()  # says which package is missing, if one is
    except ImproperlyConfigured as error:
        return str(error)
    # Importable now: the s3 extra is installed.
    from botocore.config import Config
    from botocore.exceptions import ConnectionError, HTTPClientError

    from ...storage.s3 import STORE_ERRORS, ProtectedS3Storage, client_config

    # The storage's own configuration, with one attempt per call and the
    # doctor's timeout: a store that does not answer costs one timeout.
    config = client_config().merge(
        Config(connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1})
    )
    return Bucket(
        ProtectedS3Storage(client_config=config),
        timeout=timeout,
        errors=STORE_ERRORS,
        silent_errors=(ConnectionError, HTTPClientError),
    )


def find_stored_file(
    bucket: Bucket, records: Iterable[tuple[str, str]], *, head_bytes: int
) -> PrivateFile | None:
    """The newest recorded file whose object is in the bucket, with its first
    bytes as the store holds them."""
    for key, name in records:
        if not is_safe_stored_name(name):
            continue
        try:
            return PrivateFile(key=key, name=name, head=bucket.read(name, head_bytes))
        except Refused as error:
            if error.code == "NoSuchKey":
                continue
            return None
        except NoAnswer:
            return None
    return None


def probe_key() -> str:
    return f"{PROBE_PREFIX}{secrets.token_urlsafe(16)}"


def delete_quietly(bucket: Bucket, key: str) -> bool:
    try:
        bucket.call("DeleteObject", key)
    except (Refused, NoAnswer):
        return False
    return True
