"""`manage.py protected_media_doctor` on a stack whose private files are in a
bucket of the real SeaweedFS: every check passes; then one thing at a time is
broken (the secret, a public bucket, a policy that denies deletes, a store
that does not answer, an object missing from the bucket, nginx passing on the
store's headers) and the finding names it and its fix. The clock's judgement
is tested on its own, without a store."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from email.utils import formatdate
from subprocess import CompletedProcess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.seaweed import SeaweedStore, s3_client
from protected_media.ops.doctor.bucket import Bucket
from protected_media.ops.doctor.client import Site
from protected_media.ops.doctor.runner import gather
from protected_media.ops.doctor.store import (
    STORE_CHECKS,
    judge_clock,
    leaked_store_headers,
    store_results,
)
from tests.store import object_names, use_store

from .conftest import USERS, start_stack
from .harness import Stack, free_port, upload
from .test_doctor import CHECKS, broken_nginx, listen_port, parse_line, run_doctor, substitute

ALL_CHECKS = [*CHECKS, *STORE_CHECKS]
TEXT = b"doctor's notes, kept in a bucket\n" * 20
# A bucket of the session's store for the breakages that need a bucket policy.
BROKEN_BUCKET = "doctor-broken"
NTP = "sync both clocks with NTP (systemd-timesyncd or chrony)"


@pytest.fixture(scope="module")
def s3_stack(tmp_path_factory, seaweed: SeaweedStore) -> Iterator[Stack]:
    running = start_stack(
        tmp_path_factory,
        "doctor-s3",
        **seaweed.gateway_environment(),
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def alice_session(s3_stack: Stack) -> Iterator[str]:
    client = s3_stack.login("alice", USERS["alice"])
    yield client.cookies["sessionid"]
    client.close()


@pytest.fixture(scope="module")
def private_file(s3_stack: Stack) -> dict[str, str]:
    client = s3_stack.login("alice", USERS["alice"])
    response = upload(client, "doctor.txt", TEXT, "text/plain")
    client.close()
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def broken_bucket(seaweed: SeaweedStore) -> Iterator[str]:
    client = s3_client(seaweed)
    client.create_bucket(Bucket=BROKEN_BUCKET)
    yield BROKEN_BUCKET
    listed = client.list_objects_v2(Bucket=BROKEN_BUCKET).get("Contents", [])
    for entry in listed:
        client.delete_object(Bucket=BROKEN_BUCKET, Key=entry["Key"])
    client.delete_bucket(Bucket=BROKEN_BUCKET)


def bucket_policy(effect: str, actions: list[str]) -> str:
    resources = [f"arn:aws:s3:::{BROKEN_BUCKET}", f"arn:aws:s3:::{BROKEN_BUCKET}/*"]
    statement = {"Effect": effect, "Principal": "*", "Action": actions, "Resource": resources}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def report(done) -> dict[str, tuple[str, str]]:
    """{check: (status, reason)}; every line of stdout is one check, in order."""
    results = {}
    for line in done.stdout.splitlines():
        status, name, _, reason = parse_line(line)
        results[name] = (status, reason)
    assert list(results) == ALL_CHECKS, done.stdout
    return results


def failing(results: dict[str, tuple[str, str]]) -> set[str]:
    return {name for name, (status, _) in results.items() if status == "FAIL"}


def with_session(stack: Stack, private_file: dict[str, str], session: str, *args: str, **env):
    # The cookie on standard input, as the docs advise.
    return run_doctor(
        stack,
        *args,
        "--media-url", private_file["url"],
        "--session-cookie", "-",
        stdin=session + "\n",
        **env,
    )  # fmt: skip


def doctor_objects(seaweed: SeaweedStore) -> set[str]:
    return {name for name in object_names(seaweed) if name.startswith(".protected-media-doctor/")}


# -- the good stack ------------------------------------------------------------


@pytest.mark.stack
def test_every_check_passes_and_the_probes_leave_nothing(
    s3_stack, seaweed, private_file, alice_session
) -> None:
    config = s3_stack.data_dir / "nginx" / "nginx.conf"
    done = with_session(
        s3_stack, private_file, alice_session, s3_stack.url, "--nginx-config", str(config)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    results = report(done)
    assert failing(results) == set() and {s for s, _ in results.values()} == {"PASS"}, done.stdout
    endpoint, bucket = seaweed.endpoint_url, seaweed.bucket
    assert results["anonymous store read"][1] == (
        f"an unsigned GET {endpoint}/{bucket}/.protected-media-doctor/<probe> answered 403"
    )
    assert results["anonymous store listing"][1] == (
        f"an unsigned GET {endpoint}/{bucket}?list-type=2&max-keys=1 answered 403"
    )
    assert re.fullmatch(
        rf"PutObject, GetObject \(the same \d+ bytes\) and DeleteObject of a probe object "
        rf"under {bucket}/\.protected-media-doctor/ as {seaweed.access_key_id}; "
        r"then GetObject answered NoSuchKey",
        results["store credentials"][1],
    )
    assert re.fullmatch(
        r"the store's Date is within [12] s of this machine's clock; presigned URLs live 60 s "
        r"\(PROTECTED_MEDIA_S3_URL_LIFETIME\)",
        results["store clock"][1],
    )
    assert results["store round trip"][1] == (
        f"GET {private_file['url']}: 200 with the first {len(TEXT)} bytes of its object in "
        f"bucket {bucket!r}, and none of the store's headers"
    )
    # The private file the public locations were probed with is the one in
    # the bucket: nothing is on the local disk.
    assert "(a real private file)" in results["internal"][1]
    assert not [path for path in s3_stack.private_root.rglob("*") if path.is_file()]
    assert doctor_objects(seaweed) == set()
    assert seaweed.secret_access_key not in done.stdout + done.stderr


def test_gather_needs_no_private_root_with_a_bucket(settings, seaweed, db) -> None:
    use_store(settings, seaweed)
    settings.SENDFILE_ROOT = None
    inputs = gather(timeout=5)
    assert inputs.private_root is None
    assert isinstance(inputs.store, Bucket)
    # A site that does not answer the round trip is a finding too.
    name = "files/doctor-round-trip.txt"
    site_url = f"http://127.0.0.1:{free_port()}"
    s3_client(seaweed).put_object(Bucket=seaweed.bucket, Key=name, Body=TEXT)
    try:
        results = store_results(
            Site(site_url, timeout=5),
            inputs.store,
            target="/media/" + "A" * 22,
            cookie="sessionid=x",
            name=name,
            lifetime=60,
            head_bytes=1024,
        )
    finally:
        s3_client(seaweed).delete_object(Bucket=seaweed.bucket, Key=name)
    assert [result.status for result in results] == ["PASS", "PASS", "PASS", "PASS", "FAIL"]
    assert results[-1].reason == (
        f"no answer from {site_url} ([Errno 111] Connection refused): nothing serves the site "
        "at that address"
    )
    assert results[-1].finding == "D001"


# -- one thing broken at a time ------------------------------------------------


@pytest.mark.stack
def test_a_wrong_secret_names_the_action_and_the_setting(s3_stack, seaweed) -> None:
    wrong = "not-the-secret-" + "x" * 25
    done = run_doctor(s3_stack, s3_stack.url, GATEWAY_S3_SECRET_ACCESS_KEY=wrong)
    assert done.returncode == 1
    results = report(done)
    assert failing(results) == {"store credentials"}
    assert results["store credentials"][1] == (
        "PutObject refused with SignatureDoesNotMatch (403). Fix: "
        "PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY "
        f"is not the secret of access key id {seaweed.access_key_id!r}: set the secret that "
        "belongs to it"
    )
    assert results["anonymous store read"] == (
        "SKIP",
        "no probe object to ask for (PutObject: SignatureDoesNotMatch (403)). "
        "Fix: the fix of store credentials (D805): PROTECTED_MEDIA_S3_* or the "
        "credentials' policy",
    )
    assert results["anonymous store listing"][0] == "PASS"
    for secret in (wrong, seaweed.secret_access_key):
        assert secret not in done.stdout + done.stderr


def doctor_under_policy(
    stack: Stack, store: SeaweedStore, bucket: str, effect: str, actions: list[str]
) -> CompletedProcess[str]:
    """The doctor's run on ``bucket`` while it has a policy of ``effect`` on ``actions``."""
    client = s3_client(store)
    client.put_bucket_policy(Bucket=bucket, Policy=bucket_policy(effect, actions))
    try:
        return run_doctor(stack, stack.url, GATEWAY_S3_BUCKET=bucket)
    finally:
        client.delete_bucket_policy(Bucket=bucket)


@pytest.mark.stack
def test_a_public_bucket_is_named_with_its_fix(s3_stack, seaweed, broken_bucket) -> None:
    allowed = ["s3:GetObject", "s3:ListBucket"]
    done = doctor_under_policy(s3_stack, seaweed, broken_bucket, "Allow", allowed)
    assert done.returncode == 1
    results = report(done)
    assert failing(results) == {"anonymous store read", "anonymous store listing"}
    fix = 'to everyone (Principal "*"), and block public access to the bucket'
    endpoint = seaweed.endpoint_url
    assert results["anonymous store read"][1] == (
        f"an unsigned GET {endpoint}/{broken_bucket}/.protected-media-doctor/<probe> answered "
        "200: the bucket is public. Fix: remove the bucket policy statement or ACL that grants "
        f"s3:GetObject {fix}"
    )
    assert results["anonymous store listing"][1] == (
        f"an unsigned GET {endpoint}/{broken_bucket}?list-type=2&max-keys=1 answered 200: "
        "anyone can list the bucket's objects. Fix: remove the bucket policy statement or ACL that "
        f"grants s3:ListBucket {fix}"
    )
    # The probe of the anonymous read was deleted again.
    assert s3_client(seaweed).list_objects_v2(Bucket=broken_bucket).get("KeyCount") == 0


@pytest.mark.stack
def test_a_policy_that_denies_deletes_names_the_iam_action(
    s3_stack, seaweed, broken_bucket
) -> None:
    done = doctor_under_policy(s3_stack, seaweed, broken_bucket, "Deny", ["s3:DeleteObject"])
    assert done.returncode == 1
    results = report(done)
    assert failing(results) == {"store credentials"}
    assert re.fullmatch(
        r"DeleteObject refused with AccessDenied \(403\)\. Fix: the credentials may not "
        rf"s3:DeleteObject: allow s3:DeleteObject on arn:aws:s3:::{broken_bucket}/\* in their "
        rf"policy, and deny it in no bucket policy; the probe object {broken_bucket}/"
        r"\.protected-media-doctor/[\w-]+ is left in the bucket: delete it",
        results["store credentials"][1],
    )


@pytest.mark.stack
def test_a_store_that_does_not_answer_is_one_finding_per_check(
    s3_stack, private_file, alice_session
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    done = with_session(
        s3_stack, private_file, alice_session, s3_stack.url, GATEWAY_S3_ENDPOINT_URL=endpoint
    )
    assert done.returncode == 1
    assert done.stderr == "CommandError: 5 of 12 checks failed.\n"
    results = report(done)
    assert failing(results) == set(STORE_CHECKS)
    for check in STORE_CHECKS:
        assert results[check][1] == (
            f"the store at {endpoint} did not answer (EndpointConnectionError). Fix: start the "
            "store or open the way to it from this machine, and set "
            "PROTECTED_MEDIA_S3_ENDPOINT_URL to its address"
        )


@pytest.mark.stack
def test_an_object_missing_from_the_bucket_fails_the_round_trip(
    s3_stack, seaweed, alice_session
) -> None:
    client = s3_stack.login("alice", USERS["alice"])
    created = upload(client, "moved.txt", TEXT, "text/plain").json()
    client.close()
    key = created["url"].rsplit("/", 1)[1]
    [name] = [name for name in object_names(seaweed) if key in name]
    s3_client(seaweed).delete_object(Bucket=seaweed.bucket, Key=name)
    done = with_session(s3_stack, created, alice_session, s3_stack.url)
    results = report(done)
    assert failing(results) == {"media headers", "store round trip"}
    assert results["store round trip"][1] == (
        f"the object of {created['url']} is not in bucket {seaweed.bucket!r}. Fix: copy the files "
        "kept before PROTECTED_MEDIA_STORAGE = 's3' into the bucket, under their stored names"
    )


def leaking_store_headers(text: str) -> str:
    for name in ("x-amz-request-id", "Seaweed-X-Amz-ETag", "Seaweed-X-Amz-Owner"):
        text = substitute(text, f"        proxy_hide_header {name};\n", "")
    return substitute(
        text,
        "        proxy_max_temp_file_size 0;\n",
        "        proxy_max_temp_file_size 0;\n        proxy_pass_header Server;\n",
    )


@pytest.mark.stack
def test_store_headers_passed_on_by_nginx_are_named(
    s3_stack, private_file, alice_session, tmp_path
) -> None:
    with broken_nginx(s3_stack, tmp_path / "nginx", leaking_store_headers) as config:
        url = f"http://127.0.0.1:{listen_port(config)}"
        done = with_session(s3_stack, private_file, alice_session, url)
    results = report(done)
    assert failing(results) == {"store round trip"}
    reason = results["store round trip"][1]
    leaked = reason.removeprefix(f"GET {private_file['url']} passes on the store's ")
    leaked = leaked.removesuffix(
        ". Fix: proxy_hide_header for each in the store location; write it with manage.py "
        "protected_media_nginx, then nginx -t && systemctl reload nginx"
    )
    names = leaked.split(", ")
    assert {"x-amz-request-id", "seaweed-x-amz-etag", "seaweed-x-amz-owner"} <= set(names)
    assert any(re.fullmatch(r"server: SeaweedFS .+", name) for name in names), reason


# -- the clock's judgement, without a store ------------------------------------

NOW = 1_800_000_000.0  # a whole second, as a Date header has


def judged(skew: float, *, lifetime: int = 60, round_trip: float = 0.0):
    """The judgement of a store whose clock is ``skew`` seconds ahead,
    answering at once after a request that took ``round_trip`` seconds."""
    date = formatdate(NOW + skew, usegmt=True)
    return judge_clock(date=date, sent=NOW, received=NOW + round_trip, lifetime=lifetime)


@pytest.mark.parametrize(
    ("skew", "lifetime", "round_trip", "status", "reason"),
    [
        (0, 60, 0.0, "PASS", "the store's Date is within 1 s of this machine's clock; "
         "presigned URLs live 60 s (PROTECTED_MEDIA_S3_URL_LIFETIME)"),
        # A slow answer widens what is known, and nothing is claimed beyond it.
        (15, 60, 30.0, "PASS", "the store's Date is within 16 s of this machine's clock; "
         "presigned URLs live 60 s (PROTECTED_MEDIA_S3_URL_LIFETIME)"),
        (5, 60, 0.0, "PASS", "the store's Date is within 6 s of this machine's clock; "
         "presigned URLs live 60 s (PROTECTED_MEDIA_S3_URL_LIFETIME)"),
        (8, 60, 0.0, "WARN", f"the store's clock is at least 8 s ahead of this machine's: "
         f"presigned URLs lose 8 of their 60 s; {NTP}"),
        (-8, 60, 0.0, "WARN", f"the store's clock is at least 7 s behind this machine's: "
         f"the store honours presigned URLs 7 s past their 60 s; {NTP}"),
        (44, 60, 0.0, "WARN", f"the store's clock is at least 44 s ahead of this machine's: "
         f"presigned URLs lose 44 of their 60 s; {NTP}"),
        # A URL is used again while three quarters of its life is left.
        (45, 60, 0.0, "FAIL", "the store's clock is at least 45 s ahead of this machine's: "
         "presigned URLs live 60 s (PROTECTED_MEDIA_S3_URL_LIFETIME) and are used again "
         "while three quarters of that is left, so those used longest have expired when "
         f"nginx presents them and some downloads fail; {NTP}"),
        # Every URL has expired when nginx presents it.
        (60, 60, 0.0, "FAIL", "the store's clock is at least 60 s ahead of this machine's: "
         "presigned URLs live 60 s (PROTECTED_MEDIA_S3_URL_LIFETIME), so each has expired "
         f"when nginx presents it and every download fails; {NTP}"),
        (300, 600, 0.0, "WARN", f"the store's clock is at least 300 s ahead of this "
         f"machine's: presigned URLs lose 300 of their 600 s; {NTP}"),
        # Beyond AWS's 15 minutes, in either direction.
        (-1200, 60, 0.0, "FAIL", "the store's clock is at least 1199 s behind this machine's: "
         "AWS refuses signatures more than 900 s off (RequestTimeTooSkewed), so uploads fail "
         f"there; {NTP}"),
        (1200, 3600, 0.0, "FAIL", "the store's clock is at least 1200 s ahead of this "
         "machine's: AWS refuses signatures more than 900 s off (RequestTimeTooSkewed), so "
         f"uploads fail there; {NTP}"),
        (1200, 60, 0.0, "FAIL", "the store's clock is at least 1200 s ahead of this machine's: "
         "presigned URLs live 60 s (PROTECTED_MEDIA_S3_URL_LIFETIME), so each has expired "
         "when nginx presents it and every download fails; AWS refuses signatures more than "
         f"900 s off (RequestTimeTooSkewed), so uploads fail there; {NTP}"),
    ],
)  # fmt: skip
def test_clock_judgement(skew, lifetime, round_trip, status, reason) -> None:
    result = judged(skew, lifetime=lifetime, round_trip=round_trip)
    # What was seen, then the fix.
    shown = f"{result.reason}; {result.fix}" if result.fix else result.reason
    assert (result.name, result.status, shown) == ("store clock", status, reason)


@pytest.mark.parametrize(
    ("date", "reason"),
    [
        (None, "the store sent no Date header: the clocks cannot be compared"),
        (
            "yesterday",
            "the store's Date header 'yesterday' is not a date: the clocks cannot be compared",
        ),
    ],
)
def test_a_missing_or_unreadable_date_is_skipped(date, reason) -> None:
    result = judge_clock(date=date, sent=NOW, received=NOW, lifetime=60)
    assert (result.status, result.reason) == ("SKIP", reason)
    assert result.fix == "compare date -u here and on the store's host"


@given(
    skew=st.floats(-3000, 3000),
    answered_after=st.floats(0, 1),
    round_trip=st.floats(0, 20),
    lifetime=st.integers(1, 7 * 24 * 3600),
)
def test_the_clock_is_never_judged_further_off_than_it_is(
    skew, answered_after, round_trip, lifetime
) -> None:
    # The store reads its clock at some moment of the round trip and sends
    # the whole second.
    moment = NOW + answered_after * round_trip
    reading = moment + skew
    # The skew the store's clock really has: at this magnitude a float keeps
    # about seven decimal places, so 1.9999999999995 s added may be 2 s.
    skew = reading - moment
    date = formatdate(int(reading), usegmt=True)
    result = judge_clock(date=date, sent=NOW, received=NOW + round_trip, lifetime=lifetime)
    claimed = re.match(r"the store's clock is at least (\d+) s", result.reason)
    if claimed:
        assert int(claimed[1]) <= abs(skew)
    else:
        assert result.status == "PASS"
        # Within the warning's 5 s, give or take the Date's whole second,
        # the report's whole seconds and the round trip.
        assert abs(skew) < 5 + 1 + 1 + round_trip
    if skew >= lifetime + round_trip + 1:
        assert result.status == "FAIL"


def test_only_the_stores_own_headers_count_as_leaked() -> None:
    headers = [
        ("server", "nginx"),
        ("x-amz-request-id", "1"),
        ("seaweed-x-amz-owner", "gateway"),
        ("x-content-type-options", "nosniff"),
        ("x-amz-request-id", "2"),
    ]
    assert leaked_store_headers(headers, store_server="SeaweedFS 4.48") == [
        "x-amz-request-id",
        "seaweed-x-amz-owner",
    ]
    assert leaked_store_headers([("server", "SeaweedFS 4.48")], store_server="SeaweedFS 4.48") == [
        "server: SeaweedFS 4.48"
    ]
    assert leaked_store_headers([("server", "nginx")], store_server=None) == []
