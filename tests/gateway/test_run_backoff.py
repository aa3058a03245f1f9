"""The run command's restart delays (gateway.stack.Backoff, pure: times given)."""

from __future__ import annotations

from gateway.stack import RESTART_DELAY_MAX, STABLE_AFTER, Backoff


def test_each_quick_death_doubles_the_wait_up_to_the_cap() -> None:
    backoff = Backoff()
    delays = []
    now = 1000.0
    for _ in range(10):
        backoff.started(now)
        now += 1.0  # dies a second after it started
        delays.append(backoff.delay(now))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert RESTART_DELAY_MAX == 30.0


def test_a_child_that_stayed_up_starts_the_series_again() -> None:
    backoff = Backoff()
    backoff.started(0.0)
    assert [backoff.delay(1.0), backoff.delay(2.0), backoff.delay(3.0)] == [0.5, 1.0, 2.0]
    backoff.started(10.0)
    assert backoff.delay(10.0 + STABLE_AFTER) == 0.5
    backoff.started(100.0)
    assert backoff.delay(100.0 + STABLE_AFTER - 1) == 1.0
