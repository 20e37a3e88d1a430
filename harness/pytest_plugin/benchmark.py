"""Device samples into pytest-benchmark's `benchmark` fixture.

pytest-benchmark's statistics come from timing a callable on the host; here
the timing was done on the device (`perf_counter_ns` around `invoke()`), and
timing the SSH round trip instead would measure the network. So the samples
are handed to the fixture the way its own timed loop hands them over: one
`Metadata` made by the fixture (``_make_stats``, which also registers it with
the session for the table, --benchmark-json, --benchmark-autosave and
--benchmark-compare[-fail]) and one ``update(seconds)`` per sample, with
iterations=1. ``_mode`` is set as `benchmark(...)` sets it, so a second use in
the same test fails as pytest-benchmark's own would, and the fixture does not
warn that it went unused. Those two names are private API, stable since
pytest-benchmark 3.x; checked here so a change fails loudly, not silently.
"""

from __future__ import annotations

from typing import Any, Sequence

from harness.results.record import Record

MODE = "edge-harness device samples"


def report_samples(benchmark: Any, record: Record, samples_ns: Sequence[int]) -> bool:
    """Report one measurement through `benchmark`; False when it is disabled
    (--benchmark-disable) and nothing was recorded."""
    if getattr(benchmark, "disabled", False):
        return False
    if not hasattr(benchmark, "_make_stats") or not hasattr(benchmark, "_mode"):
        raise RuntimeError(
            "this pytest-benchmark has no BenchmarkFixture._make_stats/_mode; "
            "edge-harness feeds device samples through them (tested with pytest-benchmark 4 and 5)"
        )
    if benchmark._mode:
        raise RuntimeError(
            f"the benchmark fixture already holds a measurement ({benchmark._mode}); "
            "pytest-benchmark keeps one per test: measure the other pair in its own test"
        )
    if not samples_ns:
        raise ValueError(f"{record.key}: no latency samples to report")
    benchmark._mode = MODE
    benchmark.extra_info.update(extra_info(record))
    stats = benchmark._make_stats(1)
    # Options describe how the numbers were taken; the host timer had no part.
    stats.options = {
        "timer": "device: time.perf_counter_ns around invoke()",
        "rounds": record.latency_ms.rounds if record.latency_ms else None,
        "threads": record.threads,
    }
    for sample_ns in samples_ns:
        stats.update(sample_ns / 1e9)
    return True


def extra_info(record: Record) -> dict[str, Any]:
    runtime = record.device.runtime
    return {
        "device": record.device.name,
        "device_profile": record.device.profile,
        "runtime": f"{runtime.name} {runtime.version}" if runtime else None,
        "model": record.model.name,
        "variant": record.model.variant,
        "model_sha256": record.model.sha256,
        "harness_run_id": record.run_id,
        "samples_from": "device",
    }
