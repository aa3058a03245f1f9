"""What presigning a store URL costs per media request. A probe, not a test.

    python -m bench.presign_cost [--rounds N] [--calls N]

Times, in CPU seconds of this one process (no network: signing needs none),
the ways to get the presigned GET URL that nginx fetches an object with, in
rounds that alternate between them so that drift in the machine's load falls
on all alike:

- ``botocore client``: boto3's ``generate_presigned_url`` on a client made
  with the storage's own configuration (what a storage without a presigner
  of its own does on every request);
- ``Presigner.sign``: botocore's ``S3SigV4QueryAuth`` called directly, a
  fresh signature each time (``protected_media.storage.presign``);
- ``Presigner.url, reused``: the same object asked for again while its URL
  has most of its lifetime left (the cache hit);
- ``storage.presign, reused`` and ``storage.presign, new key``: the whole
  ``ProtectedS3Storage.presign`` the view calls, for an object asked for
  before and for one never seen.

Every setup but the two reused ones signs keys it has not seen before. Prints
each one's median microseconds of CPU per URL and its ratio to the botocore
client's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

import boto3  # noqa: E402
from django.test import override_settings  # noqa: E402

from protected_media.storage.presign import Presigner  # noqa: E402
from protected_media.storage.s3 import ProtectedS3Storage, client_config  # noqa: E402

# Signing needs no network: nothing listens at this address.
STORE = {
    "endpoint_url": "http://127.0.0.1:9",
    "bucket": "protected-media",
    "region": "us-east-1",
    "access_key_id": "GWBENCHPRESIGNCOST01",
    "secret_access_key": "bench-only-secret-of-forty-characters-00",
}
LIFETIME = 60
# A name as the fields store it: a folder, a 128-bit key, the original name.
KEY = "files/2YxvD2qgT1mFvU3dBbXWpA/quarterly-report.pdf"
SETUPS = (
    "botocore client",
    "Presigner.sign",
    "Presigner.url, reused",
    "storage.presign, reused",
    "storage.presign, new key",
)
REUSED = ("Presigner.url, reused", "storage.presign, reused")


def cpu_per_call(function: Callable[[str], object], keys: list[str]) -> float:
    """CPU seconds per call of ``function`` over ``keys``."""
    begin = time.process_time()
    for key in keys:
        function(key)
    return (time.process_time() - begin) / len(keys)


def measure(rounds: int, calls: int) -> dict[str, list[float]]:
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=STORE["endpoint_url"],
        region_name=STORE["region"],
        aws_access_key_id=STORE["access_key_id"],
        aws_secret_access_key=STORE["secret_access_key"],
        config=client_config(),
    )
    presigner = Presigner(**STORE, lifetime=LIFETIME)
    storage = ProtectedS3Storage()
    setups: dict[str, Callable[[str], object]] = {
        "botocore client": lambda key: client.generate_presigned_url(
            "get_object", Params={"Bucket": STORE["bucket"], "Key": key}, ExpiresIn=LIFETIME
        ),
        "Presigner.sign": lambda key: presigner.sign(key, "GET"),
        "Presigner.url, reused": lambda key: presigner.url(key, "GET"),
        "storage.presign, reused": lambda key: storage.presign(key, "GET"),
        "storage.presign, new key": lambda key: storage.presign(key, "GET"),
    }
    same = [KEY] * calls
    # The reused setups find their URL made before the round began.
    presigner.url(KEY, "GET")
    storage.presign(KEY, "GET")
    results: dict[str, list[float]] = {setup: [] for setup in SETUPS}
    for round_number in range(rounds):
        for number, setup in enumerate(SETUPS):
            # The others sign a key not seen before, as a site serving many
            # files does: urllib caches the split of a URL it has seen, so
            # one key signed again and again would flatter them.
            keys = (
                same
                if setup in REUSED
                else [f"files/{round_number}-{number}-{index}/report.pdf" for index in range(calls)]
            )
            results[setup].append(cpu_per_call(setups[setup], keys))
    return results


def table(timings: dict[str, list[float]]) -> str:
    base = statistics.median(timings["botocore client"])
    lines = [f"{'setup':<26} {'µs CPU per URL':>14} {'÷ botocore':>10}"]
    for setup in SETUPS:
        median = statistics.median(timings[setup])
        lines.append(f"{setup:<26} {median * 1e6:14.1f} {median / base:10.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2000)
    arguments = parser.parse_args()
    with override_settings(
        PROTECTED_MEDIA_STORAGE="s3",
        PROTECTED_MEDIA_S3_ENDPOINT_URL=STORE["endpoint_url"],
        PROTECTED_MEDIA_S3_BUCKET=STORE["bucket"],
        PROTECTED_MEDIA_S3_REGION=STORE["region"],
        PROTECTED_MEDIA_S3_ACCESS_KEY_ID=STORE["access_key_id"],
        PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY=STORE["secret_access_key"],
        PROTECTED_MEDIA_S3_URL_LIFETIME=LIFETIME,
    ):
        timings = measure(arguments.rounds, arguments.calls)
    print(table(timings))
