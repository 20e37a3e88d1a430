"""The regression test on real measurements: an A/A comparison (the same
model measured twice, interleaved) is `same`; a model that is slower on every
CPU is `slower`, with its p-value and effect size, and the other way round
`faster`.

It lives with the benchmarks because it is a timing test: `make test` runs
them in one process after the parallel part, where a neighbour worker's
bursts cannot shift one arm of the A/A pair (under the parallel suite on a
loaded host it read `faster`, ratio 0.967).

The slower model is int16x8 against fp32: no runtime accelerates int16x8, it
runs on reference kernels at about 10-25x fp32's time whatever the CPU. (fp32
against dynamic-int8 is no such pair: which is faster depends on the CPU's
int8 instructions and the runtime's delegates.)"""

from __future__ import annotations

import json
import subprocess
import sys

from harness import paths
from harness.measure.stats import compare_samples

# ci_rel_tol 0 never stops early: each call runs max_seconds (~450 fp32
# samples a second here, so ~2700 per arm over the rounds).
ROUND = {"warmup_runs": 5, "warmup_seconds": 0.1, "min_runs": 100, "min_seconds": 0.3, "max_seconds": 1.0, "ci_rel_tol": 0.0}
ROUNDS = 6


def measure(model: str) -> list[float]:
    request = {"protocol": 1, "command": "benchmark", "model": model, "threads": 1, "adapter": "none", **ROUND}
    proc = subprocess.run(
        [sys.executable, "-I", str(paths.agent_path())], input=json.dumps(request).encode(), capture_output=True, timeout=120
    )
    reply = json.loads(proc.stdout)
    assert reply["ok"], reply
    return [v / 1e6 for v in reply["samples_ns"]]


def test_a_over_a_is_same_and_a_slower_model_is_slower(demo_artifacts):
    fp32 = str(demo_artifacts["fp32"].path)
    reference_kernels = str(demo_artifacts["int16x8"].path)
    a1: list[float] = []
    a2: list[float] = []
    b: list[float] = []
    for _ in range(ROUNDS):  # interleaved rounds: A A' B, so drift hits all three alike
        a1 += measure(fp32)
        a2 += measure(fp32)
        b += measure(reference_kernels)

    same = compare_samples(a1, a2)
    assert same.verdict == "same", same  # the repr carries p-value, effect and ratio
    assert 0.97 < same.ratio < 1.03

    slower = compare_samples(a1, b)  # candidate int16x8 against an fp32 baseline
    assert slower.verdict == "slower", slower
    assert slower.ratio > 1.05
    assert slower.p_value < 1e-6 and slower.effect > 0.5

    faster = compare_samples(b, a1)  # the same pair the other way round
    assert faster.verdict == "faster", faster
    assert faster.ratio < 1 / 1.05
    assert faster.p_value < 1e-6 and faster.effect < -0.5
