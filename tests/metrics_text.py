"""Prometheus' text format read by prometheus_client's own parser, for the
metrics tests in-process and through the real stack."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample_key(name: str, labels: dict[str, str]) -> str:
    """A sample's name as the exposition writes it: ``name{label="value",...}``."""
    if not labels:
        return name
    escaped = (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        for value in labels.values()
    )
    pairs = ",".join(f'{label}="{value}"' for label, value in zip(labels, escaped, strict=True))
    return f"{name}{{{pairs}}}"


def samples(text: str) -> dict[str, float]:
    """Every sample of ``text``, keyed by ``sample_key``."""
    return {
        sample_key(sample.name, sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
