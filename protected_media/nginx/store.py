"""The object store's part of the nginx config (pure): the upstream and the
internal location that proxy a presigned request to the store when the files
live in S3-compatible storage. ``templates/site.conf`` places them; see
docs/deployment.md, "Private files in object storage: the store location".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .rules import internal_prefix_problem, prefixes_overlap, require_writable, store_endpoint

# The default of PROTECTED_MEDIA_S3_INTERNAL_URL.
DEFAULT_STORE_INTERNAL_URL = "/_protected_store/"
# Where nginx finds the certificate authorities that vouch for an https store:
# Debian's bundle (package ca-certificates), as the deployment guide installs.
DEFAULT_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
# The path after the internal prefix, captured by the location: exactly the
# path that was signed, since the gateway escapes it twice and nginx decodes
# the X-Accel-Redirect value once.
STORE_PATH_VARIABLE = "protected_media_store_path"
# The client's Range header, dropped when it asks for more than one range: a
# local file is served with "max_ranges 1", and a store would answer
# "bytes=0-,0-,0-..." with the whole file once per range.
STORE_RANGE_VARIABLE = "protected_media_store_range"
# What the store may know of the client's request: the range and the
# validators, so that 206, 304 and 416 come from the store. Nothing else: the
# client's Cookie, Authorization and X-Amz-* headers never leave nginx.
STORE_REQUEST_HEADERS = (
    ("Range", f"${STORE_RANGE_VARIABLE}"),
    ("If-Range", "$http_if_range"),
    ("If-None-Match", "$http_if_none_match"),
    ("If-Modified-Since", "$http_if_modified_since"),
)
# The store's response headers the client must not see. Stock nginx has no
# wildcard for proxy_hide_header: one line each. nginx already drops the
# store's Server, Date, X-Pad and X-Accel-* by itself. What the client gets
# from the store is its body, Content-Length, Content-Range, ETag,
# Last-Modified and Accept-Ranges.
STORE_HIDDEN_HEADERS = (
    # The gateway decides these; its own copies arrive with the redirect.
    "Content-Type",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Cache-Control",
    "Expires",
    "Set-Cookie",
    "Vary",
    "Location",
    # Added by nginx in this location, or a store's weaker version of them.
    "X-Content-Type-Options",
    "Content-Security-Policy",
    "Referrer-Policy",
    "Cross-Origin-Resource-Policy",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
    # CORS: the store's policy is not the site's.
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
    # S3's own (AWS, and the stores that copy its API): request ids, versions,
    # encryption, storage class, checksums, lifecycle, locks, tags.
    "x-amz-id-2",
    "x-amz-request-id",
    "x-amz-version-id",
    "x-amz-delete-marker",
    "x-amz-expiration",
    "x-amz-restore",
    "x-amz-replication-status",
    "x-amz-storage-class",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-bucket-key-enabled",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key-MD5",
    "x-amz-request-charged",
    "x-amz-mp-parts-count",
    "x-amz-tagging-count",
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
    "x-amz-website-redirect-location",
    "x-amz-missing-meta",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
    "x-amz-checksum-type",
    "x-amz-bucket-region",
    "x-amz-cf-id",
    "x-amz-cf-pop",
    # Other stores and the proxies in front of them.
    "Seaweed-X-Amz-ETag",  # SeaweedFS
    "Seaweed-X-Amz-Owner",  # SeaweedFS: names the S3 account
    "X-Ratelimit-Limit",  # MinIO
    "X-Ratelimit-Remaining",  # MinIO
    "X-RGW-Object-Type",  # Ceph RGW
    "CF-Ray",  # Cloudflare R2
    "Via",
    "X-Cache",
)
# What nginx may not act on in the store's answer: nothing in it redirects,
# slows, caches or sets a cookie.
STORE_IGNORED_HEADERS = ("Set-Cookie", "Cache-Control", "Expires", "Vary")
# The store's answers other than 200, 206, 304, 403, 404 and 416: a redirect
# (another region or endpoint), a request the store cannot take, or a failure.
# Each becomes the site's own 502; without an error_page nginx would pass the
# store's XML body.
STORE_FAILURES = (
    *(301, 302, 303, 307, 308),
    *(400, 401, 405, 409, 411, 412, 413, 414, 429),
    *(500, 501, 502, 503),
)
# Seconds nginx waits for the store: to connect, to take the request, and
# between two reads of the answer.
STORE_TIMEOUTS = (("connect", "5s"), ("send", "10s"), ("read", "30s"))


@dataclass(frozen=True)
class StoreConfig:
    """The object store nginx proxies to (PROTECTED_MEDIA_STORAGE = "s3")."""

    endpoint_url: str
    internal_url: str = DEFAULT_STORE_INTERNAL_URL
    # Certificate authorities for an https endpoint.
    ca_file: str = DEFAULT_CA_FILE


def store_context(store: StoreConfig | None, *, taken: dict[str, str]) -> dict[str, object]:
    """What the site template needs to place the store, after checking every
    value; ``taken`` are the site's other prefixes, by name, which the
    store's internal location must not overlap."""
    if store is None:
        return {"store": None}
    try:
        endpoint = store_endpoint(store.endpoint_url)
    except ValueError as error:
        raise ValueError(f"store endpoint_url {error}") from None
    problem = internal_prefix_problem(store.internal_url)
    if problem is not None:
        raise ValueError(f"store internal_url {problem}")
    require_writable("store ca_file", store.ca_file)
    for name, prefix in taken.items():
        if prefixes_overlap(store.internal_url, prefix):
            raise ValueError(
                f"store internal_url {store.internal_url!r} overlaps {name} {prefix!r}: "
                "nginx would send one's requests to the other's location"
            )
    return {
        "store": store,
        "store_endpoint": endpoint,
        # The location matches the prefix and captures the rest, from its
        # leading "/": the bucket and the key, as signed.
        "store_path_re": (
            re.escape(store.internal_url.rstrip("/")) + f"(?<{STORE_PATH_VARIABLE}>/.*)"
        ),
        "store_path_variable": STORE_PATH_VARIABLE,
        "store_range_variable": STORE_RANGE_VARIABLE,
        "store_request_headers": STORE_REQUEST_HEADERS,
        "store_hidden_headers": STORE_HIDDEN_HEADERS,
        "store_ignored_headers": STORE_IGNORED_HEADERS,
        "store_failures": " ".join(str(status) for status in STORE_FAILURES),
        "store_timeouts": STORE_TIMEOUTS,
    }
