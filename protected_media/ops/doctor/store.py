"""The doctor's checks of the bucket, when PROTECTED_MEDIA_STORAGE = "s3":
anonymous reads and listing refused, the credentials able to put, get and
delete, the store's clock close to ours, and a private file served through
nginx with the bucket's bytes and none of the store's headers. Each names
what is wrong and how to fix it; none shows the secret key.
"""

from __future__ import annotations

import http.client
import math
import secrets
import time
from collections.abc import Callable, Iterable
from email.utils import parsedate_to_datetime

from ...storage.accel import PRESIGNED_REUSE_FRACTION
from .bucket import PROBE_PREFIX, Bucket, NoAnswer, Refused, delete_quietly, probe_key
from .checks import Result
from .client import Site
from .findings import SYNC_CLOCKS, finding

ANONYMOUS_READ = "anonymous store read"
ANONYMOUS_LISTING = "anonymous store listing"
CREDENTIALS = "store credentials"
CLOCK = "store clock"
ROUND_TRIP = "store round trip"
STORE_CHECKS = (ANONYMOUS_READ, ANONYMOUS_LISTING, CREDENTIALS, CLOCK, ROUND_TRIP)
# AWS refuses any signature more than 15 minutes off its clock
# (RequestTimeTooSkewed), whatever the URL's lifetime.
AWS_MAX_SKEW = 15 * 60
# Beyond this, the clocks are not kept in sync, even if nothing fails yet.
WARN_SKEW = 5
# Response headers only a store sends: none may reach a client.
STORE_HEADER_PREFIXES = ("x-amz-", "seaweed-", "x-minio-", "x-rgw-")
# What to do about each refusal of a signed call, by the store's error code.
FIXES = {
    "InvalidAccessKeyId": "the store knows no access key id {key_id!r}: set "
    "PROTECTED_MEDIA_S3_ACCESS_KEY_ID to the key of credentials it knows",
    "SignatureDoesNotMatch": "PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY is not the secret of "
    "access key id {key_id!r}: set the secret that belongs to it",
    "AccessDenied": "the credentials may not {iam}: allow {iam} on arn:aws:s3:::{bucket}/* "
    "in their policy, and deny it in no bucket policy",
    "NoSuchBucket": "there is no bucket {bucket!r} at {endpoint}: create it, or set "
    "PROTECTED_MEDIA_S3_BUCKET to its name",
    "RequestTimeTooSkewed": f"the clocks are too far apart: {SYNC_CLOCKS}",
    "PermanentRedirect": "the bucket is in another region: set PROTECTED_MEDIA_S3_REGION "
    "and PROTECTED_MEDIA_S3_ENDPOINT_URL to its region's",
    "AuthorizationHeaderMalformed": "the bucket is in another region: set "
    "PROTECTED_MEDIA_S3_REGION to its region",
}
UNKNOWN_REFUSAL = (
    "the store's log says why: look {code} up in its documentation, and check "
    "PROTECTED_MEDIA_S3_ENDPOINT_URL, PROTECTED_MEDIA_S3_BUCKET and the credentials' policy"
)


def store_results(
    site: Site,
    bucket: Bucket | str,
    *,
    target: str | None,
    cookie: str | None,
    name: str | None,
    lifetime: int,
    head_bytes: int,
) -> list[Result]:
    if isinstance(bucket, str):
        return [finding("D801", check=check, why=bucket) for check in STORE_CHECKS]
    checks: dict[str, Callable[[], Result]] = {
        ANONYMOUS_READ: lambda: check_anonymous_read(bucket),
        ANONYMOUS_LISTING: lambda: check_anonymous_listing(bucket),
        CREDENTIALS: lambda: check_credentials(bucket),
        CLOCK: lambda: check_clock(bucket, lifetime=lifetime),
        ROUND_TRIP: lambda: check_round_trip(
            site, bucket, target=target, cookie=cookie, name=name, head_bytes=head_bytes
        ),
    }
    results = []
    for check, run in checks.items():
        try:
            results.append(run())
        except NoAnswer as error:
            # One line per check, each saying so, as for an unreachable site.
            results.append(silent(bucket, error, check=check))
        except (OSError, http.client.HTTPException) as error:  # the site's, not the store's
            error_text = error or type(error).__name__
            results.append(finding("D001", check=check, site=site.base_url, error=error_text))
    return results


def check_anonymous_read(bucket: Bucket) -> Result:
    key = probe_key()
    try:
        bucket.call("PutObject", key, Body=b"protected_media_doctor: anonymous read probe\n")
    except Refused as error:
        return finding("D802", error=error)
    try:
        status = bucket.get_unsigned(bucket.path(key)).status
    finally:
        delete_quietly(bucket, key)
    shown = f"{bucket.endpoint_url}{bucket.path(PROBE_PREFIX)}<probe>"
    return judge_anonymous(ANONYMOUS_READ, shown, status, "s3:GetObject", "the bucket is public")


def check_anonymous_listing(bucket: Bucket) -> Result:
    # One key at most: a public bucket answers with its names.
    target = f"/{bucket.name}?list-type=2&max-keys=1"
    status = bucket.get_unsigned(target).status
    public = "anyone can list the bucket's objects"
    return judge_anonymous(
        ANONYMOUS_LISTING, bucket.endpoint_url + target, status, "s3:ListBucket", public
    )


def judge_anonymous(name: str, shown: str, status: int, grant: str, public: str) -> Result:
    asked = f"an unsigned GET {shown} answered {status}"
    if 200 <= status < 300:
        return finding("D803", check=name, asked=asked, public=public, grant=grant)
    if 400 <= status < 500:
        return Result(name, "PASS", asked)
    return finding("D804", check=name, asked=asked)


def check_credentials(bucket: Bucket) -> Result:
    name = CREDENTIALS
    key = probe_key()
    data = b"protected_media_doctor: credentials probe " + secrets.token_bytes(16)
    step = "PutObject"
    try:
        bucket.call("PutObject", key, Body=data)
        step = "GetObject"
        got = bytes(bucket.call("GetObject", key)["Body"].read(len(data) + 1))
        if got != data:
            delete_quietly(bucket, key)
            return finding("D806")
        step = "DeleteObject"
        bucket.call("DeleteObject", key)
    except Refused as error:
        left = ""
        if step != "PutObject" and not delete_quietly(bucket, key):
            left = f"; the probe object {bucket.name}/{key} is left in the bucket: delete it"
        return refused(bucket, error, check=name, left=left)
    try:
        bucket.call("GetObject", key)
    except Refused as error:
        # Gone. Credentials that may not list the bucket get a 403 for a
        # missing key, not a 404.
        if error.status in (403, 404):
            return Result(
                name,
                "PASS",
                f"PutObject, GetObject (the same {len(data)} bytes) and DeleteObject of a probe "
                f"object under {bucket.name}/{PROBE_PREFIX} as {bucket.access_key_id}; "
                f"then GetObject answered {error.code}",
            )
        return refused(bucket, error, check=name, step="after DeleteObject, ")
    return finding("D807", bucket=bucket.name, key=key)


def check_clock(bucket: Bucket, *, lifetime: int, now: Callable[[], float] = time.time) -> Result:
    sent = now()
    response = bucket.get_unsigned(bucket.path(PROBE_PREFIX + "clock"))
    received = now()
    date = next(iter(response.values("date")), None)
    return judge_clock(date=date, sent=sent, received=received, lifetime=lifetime)


def judge_clock(*, date: str | None, sent: float, received: float, lifetime: int) -> Result:
    """The store's clock against ours, from its ``Date`` header on an answer
    asked at ``sent`` and read at ``received`` (seconds since the epoch)."""
    name = CLOCK
    if date is None:
        return finding("D808", seen="the store sent no Date header")
    try:
        stamp = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return finding("D808", seen=f"the store's Date header {date!r} is not a date")
    # Date has whole seconds: the store read a time in [stamp, stamp + 1)
    # somewhere between sent and received. Judge only what is certain.
    low, high = stamp - received, stamp + 1 - sent
    ahead, behind = max(low, 0.0), max(-high, 0.0)
    off = math.floor(max(ahead, behind))
    way = "ahead of" if ahead > 0 else "behind"
    shown = f"the store's clock is at least {off} s {way} this machine's"
    lives = f"presigned URLs live {lifetime} s (PROTECTED_MEDIA_S3_URL_LIFETIME)"
    problems = []
    if ahead >= lifetime:
        problems.append(
            f"{lives}, so each has expired when nginx presents it and every download fails"
        )
    elif ahead >= lifetime * (1 - PRESIGNED_REUSE_FRACTION):
        problems.append(
            f"{lives} and are used again while three quarters of that is left, so those "
            "used longest have expired when nginx presents them and some downloads fail"
        )
    if off > AWS_MAX_SKEW:
        problems.append(
            f"AWS refuses signatures more than {AWS_MAX_SKEW} s off (RequestTimeTooSkewed), "
            "so uploads fail there"
        )
    if problems:
        return finding("D809", shown=shown, problems="; ".join(problems))
    if off > WARN_SKEW:
        effect = (
            f"presigned URLs lose {off} of their {lifetime} s"
            if ahead > 0
            else f"the store honours presigned URLs {off} s past their {lifetime} s"
        )
        return finding("D810", shown=shown, effect=effect)
    bound = math.ceil(max(abs(low), abs(high)))
    return Result(
        name, "PASS", f"the store's Date is within {bound} s of this machine's clock; {lives}"
    )


def check_round_trip(
    site: Site,
    bucket: Bucket,
    *,
    target: str | None,
    cookie: str | None,
    name: str | None,
    head_bytes: int,
) -> Result:
    check = ROUND_TRIP
    if target is None or cookie is None:
        return finding("D811")
    if name is None:
        return finding("D812", target=target)
    try:
        head = bucket.read(name, head_bytes)
    except Refused as error:
        if error.code == "NoSuchKey":
            return finding("D813", target=target, bucket=bucket.name)
        return refused(bucket, error, check=check)
    response = site.get(target, {"Cookie": cookie})
    if response.status != 200:
        return finding("D502", check=check, target=target, status=response.status)
    if not response.body.startswith(head):
        return finding("D814", target=target, bucket=bucket.name)
    if bucket.server is None:
        bucket.get_unsigned(bucket.path(PROBE_PREFIX + "server"))
    leaked = leaked_store_headers(response.headers, store_server=bucket.server)
    if leaked:
        return finding("D815", target=target, leaked=", ".join(leaked))
    return Result(
        check,
        "PASS",
        f"GET {target}: 200 with the first {len(head)} bytes of its object in bucket "
        f"{bucket.name!r}, and none of the store's headers",
    )


# -- small pure helpers ------------------------------------------------------


def leaked_store_headers(
    headers: Iterable[tuple[str, str]], *, store_server: str | None
) -> list[str]:
    found = [name for name, _ in headers if name.lower().startswith(STORE_HEADER_PREFIXES)]
    found += [
        f"{name}: {value}"
        for name, value in headers
        if name.lower() == "server" and store_server and value == store_server
    ]
    return list(dict.fromkeys(found))


def refused(
    bucket: Bucket, error: Refused, *, check: str, step: str = "", left: str = ""
) -> Result:
    fix = FIXES.get(error.code, UNKNOWN_REFUSAL).format(
        iam=f"s3:{error.action}",
        key_id=bucket.access_key_id,
        bucket=bucket.name,
        endpoint=bucket.endpoint_url,
        code=error.code,
    )
    return finding(
        "D805",
        check=check,
        step=step,
        action=error.action,
        code=error.code,
        status=error.status,
        fix=fix + left,
    )


def silent(bucket: Bucket, error: NoAnswer, *, check: str) -> Result:
    return finding("D816", check=check, endpoint=bucket.endpoint_url, error=error)
