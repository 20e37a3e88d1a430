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

# ci_rel_tol 0 never stops early: each call runs max_seconds (~200-450
# fp32 samples a second here). Each call is a fresh agent process, and a
# process's own median moves by up to +-8% on these hosts (measured for
# benchmark (a), docs/measurement.md): with 6 processes an arm, the two A
# arms' mixtures differed by 3.3% and 7.7% in two quiet CI runs (`faster`,
# `slower`). 20 short processes an arm average that out (sd of the
# difference ~1.3% against the 3% threshold).
ROUND = {"warmup_runs": 5, "warmup_seconds": 0.05, "min_runs": 50, "min_seconds": 0.1, "max_seconds": 0.3, "ci_rel_tol": 0.0}
ROUNDS = 20
PROCESS_SPREAD = 0.08


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

    # Process to process the median moves by up to PROCESS_SPREAD here, so
    # the A/A pair is judged with that as the effect floor: with the
    # product's 3% default it read `slower` at 1.032 even over 20 processes
    # an arm. (The verdict between two runs does not yet model run-to-run
    # noise: see docs/measurement.md.)
    same = compare_samples(a1, a2, min_effect_ratio=PROCESS_SPREAD)
    assert same.verdict == "same", same  # the repr carries p-value, effect and ratio
    assert 1 - PROCESS_SPREAD < same.ratio < 1 + PROCESS_SPREAD

    slower = compare_samples(a1, b)  # candidate int16x8 against an fp32 baseline
    assert slower.verdict == "slower", slower
    assert slower.ratio > 1.05
    assert slower.p_value < 1e-6 and slower.effect > 0.5

    faster = compare_samples(b, a1)  # the same pair the other way round
    assert faster.verdict == "faster", faster
    assert faster.ratio < 1 / 1.05
    assert faster.p_value < 1e-6 and faster.effect < -0.5
