"""The audit trail: for every media decision, one log line, one signal
(``file_served`` or ``file_denied``) and a call to each decision counter
(``ops.metrics`` registers one when a site counts decisions).

The log line goes to the ``protected_media.audit`` logger at INFO, as
``key=value`` pairs in the message and the same values as attributes of the
record (``extra``) for structured handlers:

    media decision=denied reason=policy_denied user=7 key=9Hz8q_s6Uo… share=- latency_ms=1.2

It names the share link by its id, never by its token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .decision import Grant, Refusal
from .keys import is_key
from .signals import file_denied, file_served

if TYPE_CHECKING:
    from django.http import HttpRequest

    from .models import ShareLink

logger = logging.getLogger("protected_media.audit")
SERVED = "served"
DENIED = "denied"
# Where the ASGI entry point leaves the moment it took the request, so that
# the latency covers its lookups too.
STARTED_ATTRIBUTE = "_protected_media_started"

# Called in line after every decision with (decision, reason, seconds). A
# counter is not a signal receiver because asend_robust runs any async
# receiver as an asyncio task: counting through the signal cost about 100 µs
# more per decision, a plain call about 20 µs (python -m bench.signal_cost).
DecisionCounter = Callable[[str, str, float], None]
_counters: list[DecisionCounter] = []


def add_counter(counter: DecisionCounter) -> None:
    """Call ``counter`` after every decision from now on (once, however often
    it is added). It must be quick; whatever it raises is logged."""
    if counter not in _counters:
        _counters.append(counter)


def remove_counter(counter: DecisionCounter) -> None:
    if counter in _counters:
        _counters.remove(counter)


def started(request: HttpRequest) -> float:
    """When the decision for ``request`` began (``time.perf_counter``)."""
    value = getattr(request, STARTED_ATTRIBUTE, None)
    if value is None:
        value = time.perf_counter()
        setattr(request, STARTED_ATTRIBUTE, value)
    return float(value)


async def arecord(
    request: HttpRequest,
    outcome: Grant | Refusal,
    *,
    kind: str,
    key: str | None,
    user: Any,
    share: ShareLink | None = None,
) -> None:
    """Send ``file_served`` or ``file_denied`` and write the log line."""
    latency = time.perf_counter() - started(request)
    served = isinstance(outcome, Grant)
    decision = SERVED if served else DENIED
    reason = str(outcome.reason)
    share_id = str(share.pk) if share is not None else None
    write_line(decision, reason, getattr(user, "pk", None), key, share_id, latency)
    signal = file_served if served else file_denied
    results = await signal.asend_robust(
        sender=kind,
        request=request,
        user=user,
        record=outcome.record,
        reason=outcome.reason,
        share=share,
        latency=latency,
    )
    for receiver, result in results:
        if isinstance(result, Exception):
            logger.error("protected_media audit receiver %r raised", receiver, exc_info=result)
    count(decision, reason, latency)


def write_line(
    decision: str,
    reason: str,
    user_id: Any,
    key: str | None,
    share_id: str | None,
    latency: float,
) -> None:
    """The decision's log line."""
    latency_ms = latency * 1000
    # The key as the client sent it is hostile text (CR/LF would forge lines).
    shown_key = key if key is not None and is_key(key) else None
    logger.info(
        "media decision=%s reason=%s user=%s key=%s share=%s latency_ms=%.1f",
        decision,
        reason,
        user_id if user_id is not None else "-",
        shown_key or "-",
        share_id or "-",
        latency_ms,
        extra={
            "decision": decision,
            "reason": reason,
            "user_id": user_id,
            "key": shown_key,
            "share_id": share_id,
            "latency_ms": round(latency_ms, 3),
        },
    )


def count(decision: str, reason: str, latency: float) -> None:
    """Call each decision counter."""
    for counter in _counters:
        try:
            counter(decision, reason, latency)
        except Exception:
            logger.exception("protected_media audit counter %r raised", counter)
