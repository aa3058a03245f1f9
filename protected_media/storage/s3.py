"""Private files in a bucket of an S3-compatible store, through django-storages'
S3 backend (boto3): it writes, deletes and lists; we configure it from our
settings, keep its URLs the gateway's, and presign the reads nginx makes.

Imported only when ``PROTECTED_MEDIA_STORAGE = "s3"`` (the ``s3`` extra).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    SSLError,
)
from botocore.exceptions import ConnectionError as StoreConnectionError
from django.core.exceptions import ImproperlyConfigured
from django.utils.deconstruct import deconstructible
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

from ..conf import conf
from .errors import StoreError, StoreUnavailable
from .gateway_url import GatewayURLMixin
from .presign import Presigner

logger = logging.getLogger("protected_media")

# Errors of an unreachable or refusing store (boto3 wraps those of a transfer).
STORE_ERRORS = (BotoCoreError, ClientError, S3UploadFailedError)
# What an S3 store answers when it is busy or failing rather than refusing:
# the request may succeed if sent again later.
BUSY_ERROR_CODES = frozenset({"SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError"})
# Waiting for the store's answer longer than this fails the upload rather
# than holding a worker for minutes: with the client's three attempts, a
# silent store is a 503 in about half a minute, well inside nginx's 60 s
# wait for the app.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 10
# What the store says an object is: never shown (nginx hides it and the
# gateway's own type wins), and never the client's claim.
STORED_CONTENT_TYPE = "application/octet-stream"


def client_config() -> Config:
    # Path-style addressing keeps the host the configured endpoint's (nginx's
    # upstream and the signed Host), never a bucket-named one. A store that
    # does not answer fails an upload in seconds rather than minutes.
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"mode": "standard", "max_attempts": 3},
    )


@deconstructible(path="protected_media.storage.s3.ProtectedS3Storage")
class ProtectedS3Storage(GatewayURLMixin, S3Storage):  # type: ignore[misc]  # untyped base
    """Objects named by their storage-relative name in PROTECTED_MEDIA_S3_BUCKET.

    Configured from our settings when made (``protected_storage`` makes it on
    first use and again after a settings change), never from django-storages'
    ``AWS_*`` settings or the environment: a site's ``AWS_DEFAULT_ACL =
    "public-read"`` for its public media must not reach private files.
    """

    def get_default_settings(self) -> dict[str, Any]:
        return {
            **super().get_default_settings(),
            "access_key": conf.s3_access_key_id,
            "secret_key": conf.s3_secret_access_key,
            "security_token": None,
            "session_profile": None,
            "bucket_name": conf.s3_bucket,
            "endpoint_url": conf.s3_endpoint_url,
            "region_name": conf.s3_region,
            "client_config": client_config(),
            "signature_version": "s3v4",
            "addressing_style": "path",
            "use_ssl": True,  # the endpoint's scheme decides
            # Every name carries a fresh 128-bit key: no name is ever taken,
            # so no HEAD per upload to find out.
            "file_overwrite": True,
            "object_parameters": {"ContentType": STORED_CONTENT_TYPE},
            "default_acl": None,
            "location": "",
            "gzip": False,
            "querystring_auth": True,
            "querystring_expire": conf.s3_url_lifetime,
            "custom_domain": None,
            "cloudfront_key_id": None,
            "cloudfront_key": None,
            "proxies": None,
            "transfer_config": None,
            "use_threads": True,
            "verify": None,
        }

    def _save(self, name: str, content: Any) -> str:
        try:
            return str(super()._save(name, content))
        except BaseException as error:
            # A PUT can fail after the store kept the object (its answer was
            # lost), and an interrupted one must not leave a name holding
            # anything either.
            self._delete_quietly(name)
            if isinstance(error, STORE_ERRORS):
                failure = StoreUnavailable if is_transient(error) else StoreError
                raise failure(f"the store did not take {name}: {error}") from error
            raise

    def _delete_quietly(self, name: str) -> None:
        try:
            self.delete(name)
        except Exception as error:
            # The store is unreachable: protected_media_orphans finds what is left.
            logger.error("protected_media could not remove %s from the store: %s", name, error)

    def presign(self, name: str, method: str) -> str:
        """A URL of the store that reads ``name`` with ``method`` (GET or
        HEAD) for most of PROTECTED_MEDIA_S3_URL_LIFETIME seconds. Signing
        needs no network: nginx fetches the URL, the app never does."""
        return presigner(
            endpoint_url=self.endpoint_url,
            bucket=self.bucket_name,
            region=self.region_name,
            access_key_id=self.access_key,
            secret_access_key=self.secret_key,
            lifetime=self.querystring_expire,
        ).url(self._normalize_name(clean_name(name)), method)


def is_transient(error: BaseException) -> bool:
    """Whether the store was out of reach, too slow or busy (worth a retry
    later) rather than refusing: boto3 wraps a transfer's error in its own,
    so the whole chain is read."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, SSLError):
            return False  # a certificate an operator must fix
        if isinstance(seen, (HTTPClientError, StoreConnectionError)):
            return True  # unreachable, timed out, connection dropped
        if isinstance(seen, ClientError):
            answer = seen.response
            status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return status >= 500 or answer.get("Error", {}).get("Code") in BUSY_ERROR_CODES
        seen = seen.__cause__ or seen.__context__
    return False


@functools.lru_cache(maxsize=4)
def presigner(
    *,
    endpoint_url: str | None,
    bucket: str,
    region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
    lifetime: int,
) -> Presigner:
    """One presigner (and its reuse cache) per process and configuration:
    the storage is made again after a settings change, the presigner only
    when the store or the credentials change."""
    if not endpoint_url or not access_key_id or not secret_access_key:
        raise ImproperlyConfigured(
            "PROTECTED_MEDIA_S3_ENDPOINT_URL and the S3 credentials must be set."
        )
    return Presigner(
        endpoint_url=endpoint_url,
        bucket=bucket,
        region=region,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        lifetime=lifetime,
    )
