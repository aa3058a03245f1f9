"""Benchmark, soak and probe tools: run by hand (`make bench`, `make soak`,
`make crafted-uploads`, `make timing-probe`), never collected by the test
suite and never packaged."""
