"""Prometheus metrics: decisions by outcome and reason, decision latency,
uploads stored and refused by reason.

The decisions are counted by a counter the audit trail calls after each one
(``audit.add_counter``: cheaper than a signal receiver on the hot path), the
uploads by receivers of the upload signals (``protected_media.signals``). The
app connects them when ``PROTECTED_MEDIA_METRICS_URL`` is set; this module
needs prometheus-client, the ``metrics`` extra.

The view answers in Prometheus' text format. Under several worker processes
set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before they start
(prometheus-client's multiprocess mode): each process writes its own files
there and the view adds them up. Expose the view only where the rendered
nginx config says (``PROTECTED_MEDIA_METRICS_URL``: loopback only).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        Counter,
        Histogram,
        generate_latest,
        multiprocess,
    )
except ModuleNotFoundError as missing:  # an optional dependency
    raise ModuleNotFoundError(
        "protected_media.ops.metrics needs prometheus-client: "
        'pip install "django-protected-media-gateway[metrics]"',
        name=missing.name,
    ) from missing

from .. import audit
from ..responses import not_found
from ..signals import upload_refused, upload_stored

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

DECISIONS = Counter(
    "protected_media_decisions",
    "Media decisions by outcome (served, denied) and reason.",
    ["decision", "reason"],
)
DECISION_SECONDS = Histogram(
    "protected_media_decision_seconds",
    "Time from a media request to its decision, handoff included.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
UPLOADS = Counter("protected_media_uploads", "Uploads stored.")
UPLOAD_REFUSALS = Counter(
    "protected_media_upload_refusals",
    "Uploads refused, by reason (type, size, pixels, storage...).",
    ["reason"],
)


# Refusals that differ only by whether the key names a file (or one the user
# may not read): one label value, or a reader of the counters could ask for a
# key and see which one grew, and so learn that it exists (rule 2). The
# audit log keeps the exact reason for operators.
EXISTENCE_REASONS = frozenset({"no_record", "no_holder", "policy_denied", "policy_error"})
NOT_FOUND_REASON = "not_found"


def record_decision(decision: str, reason: str, seconds: float) -> None:
    if reason in EXISTENCE_REASONS:
        reason = NOT_FOUND_REASON
    DECISIONS.labels(decision=decision, reason=reason).inc()
    DECISION_SECONDS.observe(seconds)


def record_upload() -> None:
    UPLOADS.inc()


def record_upload_refusal(reason: str) -> None:
    UPLOAD_REFUSALS.labels(reason=reason).inc()


def count_decision(decision: str, reason: str, seconds: float) -> None:
    record_decision(decision, reason, seconds)


# The upload receivers are plain functions: send_robust calls them from the
# upload's own thread. Whatever they raise is logged, and the upload stands.
def count_upload(**kwargs: Any) -> None:
    record_upload()


def count_upload_refusal(*, reason: str, **kwargs: Any) -> None:
    record_upload_refusal(reason)


RECEIVERS = (
    (upload_stored, count_upload),
    (upload_refused, count_upload_refusal),
)


def _uid(receiver: Any) -> str:
    return f"{__name__}.{receiver.__name__}"


def connect() -> None:
    """Count every decision and upload from now on (connecting again changes
    nothing: each counter and receiver is connected once)."""
    audit.add_counter(count_decision)
    for signal, receiver in RECEIVERS:
        signal.connect(receiver, dispatch_uid=_uid(receiver))


def disconnect() -> None:
    audit.remove_counter(count_decision)
    for signal, receiver in RECEIVERS:
        signal.disconnect(dispatch_uid=_uid(receiver))


def from_loopback(remote_addr: str | None) -> bool:
    """Whether the server's own client address (REMOTE_ADDR: the socket's
    peer, or what a proxy uvicorn trusts put there) is a loopback one. Never
    the request's X-Forwarded-For, which any client writes."""
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


# No session: a scraper signs in to nothing. The nginx location keeps it to
# loopback, and so does the view, for a site served without that location
# (the streaming fallback, uvicorn on a port).
@login_not_required
@require_safe
def view(request: HttpRequest) -> HttpResponse:
    """The metrics of every process of this server, in the text format."""
    if not from_loopback(request.META.get("REMOTE_ADDR")):
        return not_found()
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    response = HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
