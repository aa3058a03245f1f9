"""Assertions for the gateway's response contract, for a site's own tests
(``assertions``). Import it once Django is set up, as test modules are."""

from .assertions import (
    aassert_refused,
    aassert_served,
    assert_refused,
    assert_served,
    redirect_target,
)

__all__ = [
    "aassert_refused",
    "aassert_served",
    "assert_refused",
    "assert_served",
    "redirect_target",
]
