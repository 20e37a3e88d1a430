"""A run in pytest-benchmark's JSON format (`--format benchmark-json`), so
its own tooling reads it: `pytest-benchmark compare FILE [FILE ...]`.

One benchmark per measured (device, model, variant): ``group`` is
"MODEL on DEVICE", ``name`` "MODEL[DEVICE-VARIANT]"; ``fullname`` leaves the
run out so two runs' files line up in `compare`. Times are seconds, as
pytest-benchmark stores them; the statistics are computed from the raw
samples with pytest-benchmark's own definitions (quartiles by the
Wikipedia "method 2/3", Tukey 1.5 IQR fences), each sample one round of one
iteration. Pairs without samples (failed, skipped) cannot be expressed in
that format; they are listed under the extra top-level key ``edge_harness``,
with the run's "what to ship" answer per device.
"""

from __future__ import annotations

import json
import math
import statistics
from bisect import bisect_left, bisect_right
from typing import Any, Mapping, Sequence

from harness import __version__
from harness.gate.budgets import Budget
from harness.gate.ship import decide_all
from harness.report.history import Key
from harness.results.record import Record

# The pytest-benchmark file format this writes (its `version` field).
FORMAT_VERSION = "5.1.0"


def quartiles(sorted_s: Sequence[float]) -> tuple[float, float]:
    """q1, q3 as pytest-benchmark's Stats computes them."""
    n = len(sorted_s)
    if n == 1:
        return sorted_s[0], sorted_s[0]
    if n % 2:  # method 3
        k, r = n // 4, n % 4
        if r == 1:
            return 0.25 * sorted_s[k - 1] + 0.75 * sorted_s[k], 0.75 * sorted_s[3 * k] + 0.25 * sorted_s[3 * k + 1]
        return 0.75 * sorted_s[k] + 0.25 * sorted_s[k + 1], 0.25 * sorted_s[3 * k + 1] + 0.75 * sorted_s[3 * k + 2]
    return statistics.median(sorted_s[: n // 2]), statistics.median(sorted_s[n // 2 :])  # method 2


def stats_s(samples_ms: Sequence[float]) -> dict[str, Any]:
    """pytest-benchmark's `stats` block for one pair, in seconds."""
    s = sorted(v / 1e3 for v in samples_ms)
    n = len(s)
    mean = math.fsum(s) / n
    stddev = statistics.stdev(s) if n > 1 else 0.0
    q1, q3 = quartiles(s)
    iqr = q3 - q1
    low_fence, high_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    stddev_outliers = sum(1 for v in s if v < mean - stddev or v > mean + stddev)
    iqr_outliers = sum(1 for v in s if v < low_fence or v > high_fence)
    total = math.fsum(s)
    return {
        "min": s[0], "max": s[-1], "mean": mean, "stddev": stddev, "rounds": n, "median": statistics.median(s),
        "iqr": iqr, "q1": q1, "q3": q3, "iqr_outliers": iqr_outliers, "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": s[0] if n == 1 else s[bisect_left(s, low_fence)],
        "hd15iqr": s[0] if n == 1 else s[bisect_right(s, high_fence) - 1],
        "ops": n / total if total else 0.0, "total": total, "iterations": 1,
    }


def _benchmark(record: Record, samples_ms: Sequence[float]) -> dict[str, Any]:
    device, model, variant = record.key
    name = f"{model}[{device}-{variant}]"
    lat, mem, acc = record.latency_ms, record.memory_mb, record.accuracy
    return {
        "group": f"{model} on {device}",
        "name": name,
        "fullname": f"edge-harness::{name}",
        "params": {"device": device, "variant": variant},
        "param": f"{device}-{variant}",
        "extra_info": {
            "run_id": record.run_id,
            "p90_ms": lat and lat.p90, "p99_ms": lat and lat.p99, "p90_ci_ms": lat and lat.p90_ci,
            "peak_rss_mb": mem and mem.peak, "size_bytes": record.model.size_bytes,
            "map": acc and acc.map, "map50": acc and acc.map50,
            "runtime": record.device.runtime and f"{record.device.runtime.name} {record.device.runtime.version}",
            "threads": record.threads,
        },
        "options": {"disable_gc": False, "timer": "perf_counter_ns (around invoke() only, on the device)",
                    "min_rounds": lat.n if lat else 0, "max_time": None, "min_time": None, "warmup": True},
        "stats": stats_s(samples_ms),
    }


def render_benchmark_json(
    run_id: str, created_at: str, records: Sequence[Record], samples_ms: Mapping[Key, Sequence[float]],
    budgets: Sequence[Budget] | None = None,
) -> str:
    measured = [r for r in records if r.status == "ok" and samples_ms.get(r.key)]
    others = [r for r in records if r not in measured]
    first = measured[0].device if measured else None
    document = {
        "machine_info": {
            "node": first.name if first else "", "machine": first.arch if first else "",
            "processor": first.arch if first else "", "system": first.os if first else "",
            "python_implementation": "CPython", "python_version": first.python if first else "",
            "release": "", "cpu": {"count": first.cpu_count if first else None},
        },
        "commit_info": {"id": run_id, "time": created_at, "author_time": created_at, "dirty": False,
                        "project": "edge-harness", "branch": ""},
        "benchmarks": [_benchmark(r, samples_ms[r.key]) for r in measured],
        "datetime": created_at,
        "version": FORMAT_VERSION,
        "edge_harness": {
            "harness_version": __version__, "run_id": run_id,
            "not_measured": [
                {"device": r.device.name, "model": r.model.name, "variant": r.model.variant, "status": r.status,
                 "reason": r.error.message if r.error else None}
                for r in others
            ],
            # What to ship per (device, model): harness/gate/ship.py, the bounds of `budgets` or the recipe's.
            "ship": [d.to_dict() for d in decide_all(records, budgets)],
        },
    }
    return json.dumps(document, indent=1) + "\n"
