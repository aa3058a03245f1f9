"""Orphans in the bucket, when PROTECTED_MEDIA_STORAGE = "s3": objects
without a StoredFile record, and records without an object.

``Bucket.entries`` lists the bucket for ``orphans.classify`` as ``walk`` does
the disk, one page of keys at a time. The deletions check again, one item at a
time, that the item is still an orphan just before removing it. An object is
missing only when the store answers 404: any other answer or none stops the
run, so an unreachable or refusing store never costs a record.

Imported only when the s3 storage is selected (the s3 extra).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from storages.utils import clean_name

from ..records import StoredFile
from .orphans import DiskEntry, Kind, Record, forget_record

logger = logging.getLogger("protected_media")

# Keys per listing request, S3's own maximum: one page is all the listing
# holds at a time, however large the bucket.
PAGE_SIZE = 1000
# The codes of an object that is not there: a HEAD has no body, so its 404 is
# a bare "404"; a request with a body says NoSuchKey.
MISSING_CODES = frozenset({"404", "NoSuchKey"})
# An unreachable store, a timeout, a refused signature, a missing bucket...
STORE_ERRORS = (BotoCoreError, ClientError)


class BucketError(Exception):
    """The store did not answer as it should: the run stops, naming the
    bucket and the endpoint."""


class Bucket:
    """The selected storage's bucket, reached through the storage's own client
    (its endpoint, credentials, timeouts and retries)."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.name: str = storage.bucket_name
        self.endpoint: str = storage.endpoint_url
        self.client: Any = storage.connection.meta.client

    def __str__(self) -> str:
        return f"{self.name} at {self.endpoint}"

    def entries(self) -> Iterator[DiskEntry]:
        """Every object in the bucket, in key order."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, PaginationConfig={"PageSize": PAGE_SIZE}
        )
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    yield _entry(item)
        except STORE_ERRORS as error:
            raise self._failed(error) from error

    def delete_object(self, entry: DiskEntry, *, now: float, grace: float) -> bool:
        """Delete an orphan object if it still is one: there, old, without a record."""
        if entry.kind is not Kind.FILE:
            return False
        head = self._head(entry.name)
        if head is None or head["LastModified"].timestamp() > now - grace:
            return False
        if StoredFile.objects.filter(name=entry.name).exists():
            return False
        self._delete(entry.name)
        return True

    def delete_record(self, record: Record) -> bool:
        """Delete a record whose object is still missing.

        Its thumbnails' records go with it (CASCADE), and their objects after
        the commit: a thumbnail never outlives its original."""
        if self._head(self._key(record.name)) is not None:
            return False
        return forget_record(record, self._delete_thumbnails)

    def _key(self, name: str) -> str:
        # The key the storage wrote the record's name under.
        return str(self.storage._normalize_name(clean_name(name)))

    def _head(self, key: str) -> dict[str, Any] | None:
        """The object's HEAD answer, or None when the store says it is not there."""
        try:
            return dict(self.client.head_object(Bucket=self.name, Key=key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in MISSING_CODES:
                raise self._failed(error) from error
        except BotoCoreError as error:
            raise self._failed(error) from error
        # A missing bucket answers a HEAD with the same bare 404: the object is
        # missing only if the bucket itself answers.
        try:
            self.client.head_bucket(Bucket=self.name)
        except STORE_ERRORS as error:
            raise self._failed(error) from error
        return None

    def _delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.name, Key=key)
        except STORE_ERRORS as error:
            raise self._failed(error) from error

    def _delete_thumbnails(self, names: list[str]) -> None:
        for name in names:
            try:
                self.client.delete_object(Bucket=self.name, Key=self._key(name))
            except STORE_ERRORS as error:
                # Their records are gone: the next run lists the object as one
                # without a record.
                logger.error("protected_media could not remove %s from the store: %s", name, error)

    def _failed(self, error: Exception) -> BucketError:
        return BucketError(f"The store at {self.endpoint} failed for bucket {self.name}: {error}")


def _entry(item: dict[str, Any]) -> DiskEntry:
    key = item["Key"]
    changed = item["LastModified"].timestamp()
    if key.endswith("/"):
        # A folder marker some tools write: never a name the storage makes,
        # so reported and kept like anything that is not a file.
        return DiskEntry(key, Kind.OTHER, changed)
    return DiskEntry(key, Kind.FILE, changed, item["Size"])
