"""perf's samples of a worker: each sample counted once, under the innermost
Python function on its stack, with whether the kernel ran below it."""

from bench.perf_shares import NO_PYTHON, group_of, report, samples

# As `perf script` prints samples of --call-graph dwarf, innermost frame first
# (shortened from a real recording of the gateway's worker).
LIBPYTHON = "(/usr/lib/libpython3.13.so.1.0)"
KERNEL = "([kernel.kallsyms])"


def python_frame(function: str, file: str) -> str:
    return f"\t    7f4ba26d4d65 py::{function}:{file}+0x5 (/tmp/perf-687.map)"


SCRIPT = "\n".join(
    [
        "python   687  1934.364249:    2500000 cpu-clock:",
        "\t          f2d10 sqlite3_value_text+0x0 (/usr/lib/libsqlite3.so.0.8.6)",
        f"\t          92a51 _PyEval_EvalFrameDefault+0x7171 {LIBPYTHON}",
        python_frame(
            "SqliteReads.aread_stored.<locals>.run", "/srv/protected_media/fastpath/sqlite_reads.py"
        ),
        "",
        "python   687  1934.361746:    2500000 cpu-clock:",
        f"\tffffffff8a2b1c3d _raw_spin_unlock_irqrestore+0x1d {KERNEL}",
        f"\tffffffff8a0d2e10 __wake_up_sync_key+0x40 {KERNEL}",
        "\t           3c1f0 __pyx_f_6uvloop_4loop_8UVStream_write+0x1a0 (/v/uvloop/loop.so)",
        f"\t           92b61 _PyEval_EvalFrameDefault+0x7281 {LIBPYTHON}",
        python_frame(
            "RequestResponseCycle.send", "/v/site-packages/uvicorn/protocols/http/httptools_impl.py"
        ),
        python_frame("send_answer", "/srv/protected_media/fastpath/lean.py"),
        "",
        "python   687  1934.366750:    2500000 cpu-clock:",
        f"\tffffffff8a2b1c3d _raw_spin_unlock_irqrestore+0x1d {KERNEL}",
        "",
        "python   687  1934.369250:    2500000 cpu-clock:",
        python_frame("LazyObject.__getattribute__", "/v/site-packages/django/utils/functional.py"),
    ]
)


def test_each_sample_belongs_to_its_innermost_python_function() -> None:
    taken = list(samples(SCRIPT.splitlines()))
    assert [(sample.function, sample.in_kernel) for sample in taken] == [
        ("SqliteReads.aread_stored.<locals>.run", False),
        ("RequestResponseCycle.send", True),  # not send_answer, its caller
        (None, True),
        ("LazyObject.__getattribute__", False),
    ]
    assert [group_of(sample) for sample in taken] == [
        "the database: statements, rows, the pool",
        "uvicorn's protocol and its proxy-headers middleware",
        NO_PYTHON,
        "Django's helpers",
    ]


def test_the_report_gives_each_group_its_share_and_the_kernels() -> None:
    printed = report(list(samples(SCRIPT.splitlines())), top=2)
    assert "4 samples" in printed
    assert " 25.0%          25.0%  uvicorn's protocol" in printed
    assert " 25.0%           0.0%  the database: statements, rows, the pool" in printed
    assert "RequestResponseCycle.send  (uvicorn/protocols/http/httptools_impl.py) kernel" in printed
