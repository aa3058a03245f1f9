"""Prometheus metrics: decisions by outcome and reason, decision latency,
uploads stored and refused by reason.

The view answers in Prometheus' text format. Under several worker processes
set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before they start
(prometheus-client's multiprocess mode): each process writes its own files
there and the view adds them up. Expose the view only where the rendered
nginx config says (``PROTECTED_MEDIA_METRICS_URL``: loopback only).
"""

from __future__ import annotations

import os

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

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


def record_decision(decision: str, reason: str, seconds: float) -> None:
    DECISIONS.labels(decision=decision, reason=reason).inc()
    DECISION_SECONDS.observe(seconds)


def record_upload() -> None:
    UPLOADS.inc()


def record_upload_refusal(reason: str) -> None:
    UPLOAD_REFUSALS.labels(reason=reason).inc()


# No session: a scraper signs in to nothing; the nginx location keeps it to
# loopback.
@login_not_required
@require_safe
def view(request: HttpRequest) -> HttpResponse:
    """The metrics of every process of this server, in the text format."""
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    response = HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
