"""The sampled profile's shares: each function counted once per sample it is
on, among the samples taken inside a request only."""

from bench.sampled_shares import shares

STACKS = [
    "main (m.py:1);timed (p.py:2);one_request (p.py:3);resolve (r.py:9);resolve (r.py:12) 4",
    "main (m.py:1);timed (p.py:2);one_request (p.py:3);execute (s.py:5) 6",
    "main (m.py:1);warm_up (p.py:7);execute (s.py:5) 90",
    "not a sample line",
]


def test_a_function_is_counted_once_per_sample_under_the_request() -> None:
    total, inclusive = shares(STACKS)
    assert total == 10
    assert inclusive["resolve"] == 4
    assert inclusive["execute"] == 6
    assert inclusive["one_request"] == 10
    assert "warm_up" not in inclusive
