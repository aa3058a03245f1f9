"""The object-storage cases of the benchmark (``bench.bench``).

The benchmark starts a SeaweedFS of its own (``gateway.seaweed``, S3
signatures checked as a provider checks them) and a stack with
GATEWAY_STORAGE=s3 on its bucket, uploads the same files through the API,
and times:

- s3-gateway: ``/media/<key>`` as the owner: nginx -> uvicorn -> the check
  -> X-Accel-Redirect to the internal store location -> nginx fetches the
  object from SeaweedFS over its keepalive upstream and sends it on;
- s3-direct:  a presigned GET of the same object straight at SeaweedFS's S3
  port, nothing in front: what the store alone serves.

Their ratios, side by side with the local-disk gateway case of the same run,
are what the object storage costs: s3-gateway / s3-direct is what nginx and
the check add to the store, s3-gateway / gateway what the store costs next to
a file on this machine's disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import httpx

from gateway.seaweed import SeaweedStore, s3_client
from protected_media.conf import DEFAULT_S3_INTERNAL_URL
from protected_media.storage.presign import Presigner
from tests.stack.harness import RawResponse

STORE_GATEWAY = "s3-gateway"
STORE_DIRECT = "s3-direct"
STORE_CASES = (STORE_GATEWAY, STORE_DIRECT)
# The direct URLs are signed once, before the first case: valid for longer
# than any run (each case at its longest window).
DIRECT_URL_LIFETIME = 24 * 3600
# The file large enough to show what the proxying costs, and the one for the
# high-concurrency run whose app memory must stay flat.
LARGE = "64MiB"

KIB = 1024


class StoreCaseError(Exception):
    """A store case cannot be measured: its objects or its answers are wrong."""


def direct_urls(store: SeaweedStore, files: Mapping[str, bytes]) -> dict[str, str]:
    """A presigned GET URL of each uploaded file's object, by size name.

    The objects are found by their size in the benchmark's own bucket (one
    upload per size), not through the gateway, so the direct case owes
    nothing to the code it is compared with; the signature is the project's
    presigner's, as nginx's would be."""
    client = s3_client(store, timeout=30)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    by_size: dict[int, list[str]] = {}
    for page in pages:
        for entry in page.get("Contents", ()):
            by_size.setdefault(entry["Size"], []).append(entry["Key"])
    signer = Presigner(
        endpoint_url=store.endpoint_url,
        bucket=store.bucket,
        region=store.region,
        access_key_id=store.access_key_id,
        secret_access_key=store.secret_access_key,
        lifetime=DIRECT_URL_LIFETIME,
    )
    urls = {}
    for size, data in files.items():
        keys = by_size.get(len(data), [])
        if len(keys) != 1:
            raise StoreCaseError(f"{len(keys)} objects of {len(data)} bytes in the bucket, not 1")
        urls[size] = signer.sign(keys[0], "GET")
    return urls


def check_direct(url: str, body: bytes) -> None:
    """The presigned URL answers 200 with exactly the file's bytes."""
    with httpx.Client(timeout=120) as client:
        response = client.get(url)
    if response.status_code != 200:
        raise StoreCaseError(f"{STORE_DIRECT}: the store answered {response.status_code}")
    if response.content != body:
        raise StoreCaseError(f"{STORE_DIRECT}: {len(response.content)} bytes, not the file's")


def check_store_handoff(answer: RawResponse) -> None:
    """uvicorn's own answer on the s3 stack hands the request to nginx's
    internal store location, with a signed query and no body."""
    target = answer.headers.get("x-accel-redirect", "")
    if not target.startswith(DEFAULT_S3_INTERNAL_URL) or "X-Amz-Signature=" not in target:
        raise StoreCaseError(f"{STORE_GATEWAY}: uvicorn redirected to {target!r}, not the store")
    if answer.body:
        raise StoreCaseError(f"{STORE_GATEWAY}: uvicorn sent a body with the redirect")


class Figures(Protocol):
    """What the ratios read of one case's result."""

    requests_per_s: float
    bytes_per_s: float
    rss_baseline_kib: int
    rss_peak_kib: int
    rss_after_kib: int

    @property
    def cpu_per_gib(self) -> dict[str, float]: ...


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def store_ratios(
    gateway: Figures | None, store_gateway: Figures | None, direct: Figures | None
) -> dict[str, float | None]:
    """The object-storage ratios of one size and concurrency (None where a
    case was not measured)."""
    row: dict[str, float | None] = {
        "s3_gateway_over_direct_rps": None,
        "s3_gateway_over_direct_mibps": None,
        "s3_gateway_over_gateway_rps": None,
        "s3_gateway_over_gateway_mibps": None,
        "s3_rss_before_mib": None,
        "s3_rss_peak_mib": None,
        "s3_rss_after_mib": None,
        "s3_gateway_cpu_per_gib": None,
        "s3_direct_cpu_per_gib": None,
        "s3_cpu_bound": None,
    }
    if store_gateway is None:
        return row
    for key, other in (("direct", direct), ("gateway", gateway)):
        if other is not None:
            row[f"s3_gateway_over_{key}_rps"] = _ratio(
                store_gateway.requests_per_s, other.requests_per_s
            )
            row[f"s3_gateway_over_{key}_mibps"] = _ratio(
                store_gateway.bytes_per_s, other.bytes_per_s
            )
    row["s3_rss_before_mib"] = store_gateway.rss_baseline_kib / KIB
    row["s3_rss_peak_mib"] = store_gateway.rss_peak_kib / KIB
    row["s3_rss_after_mib"] = store_gateway.rss_after_kib / KIB
    # What each path spends in CPU per GiB delivered, all processes on the
    # machine counted (nginx, app, store, wrk). With every core busy, the
    # gateway can deliver at most direct's cost / its own cost of direct's
    # rate: the bound a ratio above is read against.
    gateway_cost = sum(store_gateway.cpu_per_gib.values()) or None
    row["s3_gateway_cpu_per_gib"] = gateway_cost
    if direct is not None:
        direct_cost = sum(direct.cpu_per_gib.values()) or None
        row["s3_direct_cpu_per_gib"] = direct_cost
        row["s3_cpu_bound"] = _ratio(direct_cost, gateway_cost)
    return row


# The printed table's columns: (ratio key, header, digits).
STORE_RATIO_COLUMNS = (
    ("s3_gateway_over_direct_rps", "s3-gateway/s3-direct req/s", 3),
    ("s3_gateway_over_direct_mibps", "s3-gateway/s3-direct MiB/s", 3),
    ("s3_gateway_over_gateway_rps", "s3-gateway/gateway req/s", 3),
    ("s3_gateway_over_gateway_mibps", "s3-gateway/gateway MiB/s", 3),
    ("s3_gateway_cpu_per_gib", "s3-gateway CPU s/GiB", 2),
    ("s3_direct_cpu_per_gib", "s3-direct CPU s/GiB", 2),
    ("s3_cpu_bound", "CPU bound on s3-gateway/s3-direct", 2),
)
