"""Private files in a bucket of an S3-compatible store, through django-storages'
S3 backend (boto3): it writes, deletes and lists; we configure it from our
settings, keep its URLs the gateway's, and presign the reads nginx makes.

Imported only when ``PROTECTED_MEDIA_STORAGE = "s3"`` (the ``s3`` extra).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import botocore.session
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import ImproperlyConfigured
from django.utils.deconstruct import deconstructible
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

from ..conf import conf
from .gateway_url import GatewayURLMixin

logger = logging.getLogger("protected_media")

# The client method presigned for each method nginx may send: SigV4 covers the
# method, so a GET-signed URL is refused for HEAD and the other way round.
PRESIGNED_OPERATIONS = {"GET": "get_object", "HEAD": "head_object"}
# Errors of an unreachable or refusing store (boto3 wraps those of a transfer).
STORE_ERRORS = (BotoCoreError, ClientError, S3UploadFailedError)
# What the store says an object is: never shown (nginx hides it and the
# gateway's own type wins), and never the client's claim.
STORED_CONTENT_TYPE = "application/octet-stream"


class StoreError(OSError):
    """The store did not take an object: the upload is refused, nothing kept."""


def client_config() -> Config:
    # Path-style addressing keeps the host the configured endpoint's (nginx's
    # upstream and the signed Host), never a bucket-named one. A store that
    # does not answer fails an upload in seconds rather than minutes.
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        connect_timeout=5,
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
                raise StoreError(f"the store did not take {name}: {error}") from error
            raise

    def _delete_quietly(self, name: str) -> None:
        try:
            self.delete(name)
        except Exception as error:
            # The store is unreachable: protected_media_orphans finds what is left.
            logger.error("protected_media could not remove %s from the store: %s", name, error)

    def presign(self, name: str, method: str) -> str:
        """A URL of the store that reads ``name`` with ``method`` (GET or
        HEAD) for PROTECTED_MEDIA_S3_URL_LIFETIME seconds. Signing needs no
        network: nginx fetches the URL, the app never does."""
        operation = PRESIGNED_OPERATIONS.get(method)
        if operation is None:
            raise ValueError(f"only GET and HEAD are presigned, not {method!r}")
        client = signing_client(
            endpoint_url=self.endpoint_url,
            region=self.region_name,
            access_key_id=self.access_key,
            secret_access_key=self.secret_key,
        )
        url = client.generate_presigned_url(
            operation,
            Params={"Bucket": self.bucket_name, "Key": self._normalize_name(clean_name(name))},
            ExpiresIn=self.querystring_expire,
            HttpMethod=method,
        )
        return str(url)


@functools.lru_cache(maxsize=4)
def signing_client(
    *, endpoint_url: str | None, region: str, access_key_id: str, secret_access_key: str
) -> Any:
    """One botocore client per process and configuration: a client takes tens
    of milliseconds to make and is safe to share between threads."""
    if not endpoint_url or not access_key_id or not secret_access_key:
        raise ImproperlyConfigured(
            "PROTECTED_MEDIA_S3_ENDPOINT_URL and the S3 credentials must be set."
        )
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=client_config(),
    )
