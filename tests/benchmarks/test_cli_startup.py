"""`harness --help` must answer in well under half a second: it may not
import TensorFlow, numpy or rich. Measured against a bare interpreter start in
the same run, so a slow shared machine moves both numbers together."""

from __future__ import annotations

import subprocess
import sys
import time

ROUNDS = 10


def best_of(argv: list[str]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def test_help_startup(benchmark):
    bare_s = best_of([sys.executable, "-c", "pass"])
    help_argv = [sys.executable, "-m", "harness", "--help"]
    benchmark.pedantic(subprocess.run, args=(help_argv,), kwargs={"check": True, "capture_output": True}, rounds=ROUNDS)
    help_s = benchmark.stats.stats.min
    benchmark.extra_info.update({"bare_python_s": bare_s, "ratio": help_s / bare_s})
    # A bare start is ~20 ms here; TensorFlow alone would add ~4 s (200x).
    assert help_s / bare_s < 8, f"--help took {help_s:.3f} s, {help_s / bare_s:.1f}x a bare interpreter"
    assert help_s < 0.5
