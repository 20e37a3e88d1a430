"""The harness's own benchmarks: does it add anything to what it measures?

Every figure is a ratio of two things measured in the same run, interleaved
round by round, because absolute times on these shared machines move by
±15% between runs (measured on the project's hosts).

(a) harness-reported p50 vs a bare ``interpreter.invoke()`` loop, same model,
    same inputs, same kind of process;
(b) harness vs the reference script shipped in ai-edge-litert
    (``ai_edge_litert.tools.benchmark_litert_model``);
(c) constant overhead per (device, variant) pair on a lab SSH device with the
    model already in its cache;
(d) two lab devices pinned to different cores, in parallel, vs one alone.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness import paths
from harness.model.adapters import AdapterSpec
from harness.agent.client import AgentClient
from harness.fleet.inventory import load_inventory
from harness.measure.pair import PairContext, run_round
from harness.measure.stats import quantile_ci
from harness.fleet.profiles import MeasurementPlan
from harness.results.record import DeviceInfo
from harness.transport import open_transport
from tests.benchmarks.conftest import RATIOS

# One process of each kind per round. A process's own median moves by
# about +-8% from one process to the next on these shared hosts (measured:
# 3.79-5.10 ms for the same loop, ten processes in a row, pinned or not), so
# (a) takes many short rounds rather than a few long ones.
ROUNDS = 4
A_ROUNDS = 20
A_RUNS_PER_ROUND = 100
# Latency only: no detections are read back.
NO_ADAPTER = AdapterSpec("none")
RUNS_PER_ROUND = 300

# The bare loop: what anyone would write to time a TFLite model, fed the
# agent's own inputs: its ring of 16 random tensors (same seed, same order),
# one set before each invoke, so both do the same work and any difference
# is the harness's. (Fresh data each invoke costs 2-5% on the demo detector
# against re-invoking one input; that is the input, not the harness.)
AGENT_RING = 16
BARE_LOOP = r"""
import json, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
model, runs, ring_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
it = Interpreter(model_path=model, num_threads=1)
it.allocate_tensors()
d = it.get_input_details()[0]
rng = np.random.default_rng(1234)
ring = [rng.standard_normal(tuple(d["shape"])).astype(d["dtype"]) for _ in range(ring_size)]
for i in range(10):
    it.set_tensor(d["index"], ring[i % ring_size])
    it.invoke()
samples = []
for i in range(runs):
    it.set_tensor(d["index"], ring[i % ring_size])
    t0 = time.perf_counter_ns()
    it.invoke()
    samples.append(time.perf_counter_ns() - t0)
print(json.dumps(samples))
"""


def agent_samples_ms(model: Path, runs: int, *, input_ring: int = AGENT_RING) -> list[float]:
    request = {
        "protocol": 1, "command": "benchmark", "model": str(model), "threads": 1, "adapter": "none",
        "warmup_runs": 10, "warmup_seconds": 0.0, "min_runs": runs, "max_runs": runs, "min_seconds": 0.0,
        "max_seconds": 60.0, "ci_rel_tol": 0.0, "input_ring": input_ring,
    }
    out = subprocess.run(
        [sys.executable, "-I", str(paths.agent_path())], input=json.dumps(request).encode(),
        capture_output=True, check=True, timeout=120,
    ).stdout
    return [v / 1e6 for v in json.loads(out)["samples_ns"]]


def bare_samples_ms(model: Path, runs: int) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-I", "-c", BARE_LOOP, str(model), str(runs), str(AGENT_RING)], capture_output=True, check=True,
        timeout=120
    ).stdout
    return [v / 1e6 for v in json.loads(out.splitlines()[-1])]


def reference_median_ms(model: Path, runs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        subprocess.run(
            [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", "--model", str(model),
             "--num_runs", str(runs), "--warmup_runs", "10", "--num_threads", "1", "--result_json", str(result)],
            capture_output=True, check=True, timeout=180,
        )
        return float(json.loads(result.read_text())["latency"]["median_ms"])


def alternate(steps: list, round_index: int) -> list:
    """A-B in even rounds, B-A in odd ones: a machine that slows down or
    speeds up during the test weighs on both sides alike."""
    return steps if round_index % 2 == 0 else steps[::-1]


def assert_within_band(round_ratios: list[float], low: float, high: float, what: str) -> None:
    """Fails when the rounds show the harness outside [low, high]: the 95%
    distribution-free interval of the median round ratio misses the band.
    On a quiet host the interval is tight and the check strict; on a host
    whose neighbours move single rounds by +-30% (seen: 0.69-1.29) it says
    only what those rounds can show, instead of failing on the noise."""
    interval = quantile_ci(sorted(round_ratios), 0.5)
    assert interval is not None, f"too few rounds: {len(round_ratios)}"
    lower, upper = interval
    rounds = [round(r, 3) for r in round_ratios]
    assert upper >= low and lower <= high, (
        f"harness p50 is {statistics.median(round_ratios):.3f}x {what}, 95% interval {lower:.3f}-{upper:.3f} "
        f"outside {low}-{high} (rounds: {rounds})"
    )


@pytest.fixture(scope="module")
def fp32_model(demo_artifacts) -> Path:
    return demo_artifacts["fp32"].path


def test_a_harness_vs_bare_invoke_loop(benchmark, fp32_model):
    round_ratios: list[float] = []

    def one_round() -> None:
        medians: dict[str, float] = {}
        measure = [lambda: medians.__setitem__("harness", statistics.median(agent_samples_ms(fp32_model, A_RUNS_PER_ROUND))),
                   lambda: medians.__setitem__("bare", statistics.median(bare_samples_ms(fp32_model, A_RUNS_PER_ROUND)))]
        for step in alternate(measure, len(round_ratios)):
            step()
        round_ratios.append(medians["harness"] / medians["bare"])

    benchmark.pedantic(one_round, rounds=A_ROUNDS, iterations=1)
    # The median of per-round ratios: the two processes of a round run back
    # to back, and a burst of load from a neighbour moves a few rounds, not
    # the median (a pooled median moved with it: 1.044 once in CI).
    ratio = statistics.median(round_ratios)
    RATIOS["(a) harness p50 / bare invoke() p50"] = ratio
    benchmark.extra_info["ratio"] = ratio
    benchmark.extra_info["round_ratios"] = [round(r, 4) for r in round_ratios]
    assert_within_band(round_ratios, 0.95, 1.05, "a bare invoke() loop")


def test_b_harness_vs_reference_benchmark_script(benchmark, fp32_model):
    harness_p50: list[float] = []
    reference_p50: list[float] = []

    def one_round() -> None:
        # The reference script fills its input once and invokes it again and
        # again; the agent is asked to do the same (input_ring=1).
        measure = [lambda: harness_p50.append(statistics.median(agent_samples_ms(fp32_model, RUNS_PER_ROUND, input_ring=1))),
                   lambda: reference_p50.append(reference_median_ms(fp32_model, RUNS_PER_ROUND))]
        for step in alternate(measure, len(harness_p50)):
            step()

    # One median per round from each tool: more rounds than (a), whose
    # median is over every sample, for the same steadiness (CI saw 1.02-1.06 at 4).
    benchmark.pedantic(one_round, rounds=2 * ROUNDS, iterations=1)
    ratio = statistics.median(harness_p50) / statistics.median(reference_p50)
    RATIOS["(b) harness p50 / benchmark_litert_model median"] = ratio
    benchmark.extra_info["ratio"] = ratio
    assert_within_band([h / r for h, r in zip(harness_p50, reference_p50)], 0.95, 1.05, "the reference script's median")


# No per-operator profile pass: (c) and (d) are about the harness's own
# overhead and parallelism, and the profiled pass is a measurement of its own.
TINY_PLAN = MeasurementPlan(warmup_runs=1, warmup_seconds=0.0, min_runs=1, min_seconds=0.0, max_seconds=5.0, rounds=1,
                            op_profile_runs=0)


def pair_context(name: str, tmp: Path) -> PairContext:
    return PairContext("bench", tmp, DeviceInfo(name, "x86-cpu"), threads=1, plan=TINY_PLAN, cpus=None, runtime=None)


@pytest.fixture
def lab_inventory(ssh_lab, tmp_path):
    lab = ssh_lab(2)
    known_hosts = lab.known_hosts(tmp_path / "known_hosts")
    extra = {"lab-a": {"cpus": [0], "threads": 1}, "lab-b": {"cpus": [1], "threads": 1}}
    return lab, load_inventory(lab.inventory(tmp_path / "inventory.yaml", known_hosts=known_hosts, extra=extra))


def test_c_constant_overhead_per_pair_on_a_lab_device(benchmark, lab_inventory, demo_artifacts, tmp_path):
    """Wall time of one pair minus the time the agent spent in the timed
    loop and warm-up: process start, imports, load, cache checks, SSH."""
    _, inventory = lab_inventory
    device = inventory.select(["lab-a"], local=None)[0]
    transport = open_transport(device)
    client = AgentClient(transport)
    artifact = demo_artifacts["fp32"]
    ctx = pair_context("lab-a", tmp_path)
    run_round(ctx, client, artifact, None, NO_ADAPTER, round_index=0)  # deploy: model now cached
    overheads_s: list[float] = []

    floors_s: list[float] = []

    def one_pair() -> None:
        start = time.perf_counter()
        reply = run_round(ctx, client, artifact, None, NO_ADAPTER, round_index=0)
        overheads_s.append(time.perf_counter() - start - reply["warmup"]["seconds"] - reply["loop_seconds"])
        # The floor no agent can go under, measured in the same round: one
        # command over the same connection starting the device's Python with
        # numpy and the runtime imported. Absolute seconds differ between
        # machines of this kind (0.24 s on an AVX-512 host, 0.67 s on a loaded
        # AVX2 host, where the old bound of 0.5 s failed), the ratio much less.
        start = time.perf_counter()
        transport.run([device.python, "-c", "import numpy, ai_edge_litert.interpreter"], timeout_s=60)
        floors_s.append(time.perf_counter() - start)

    try:
        benchmark.pedantic(one_pair, rounds=5, iterations=1)
    finally:
        transport.close()
    overhead_s, floor_s = statistics.median(overheads_s), statistics.median(floors_s)
    RATIOS["(c) overhead per pair on a lab device, s"] = overhead_s
    RATIOS["(c) that overhead / starting python with numpy and the runtime"] = overhead_s / floor_s
    benchmark.extra_info.update(overhead_s=overhead_s, floor_s=floor_s)
    # One pair is the agent's own interpreter start (the floor) plus the cache
    # checks, the model load and the reply: measured 1.97x the floor on a loaded
    # host. Twice that overhead (a second interpreter start, a re-upload, Nagle
    # back on every command) crosses 3.
    assert overhead_s / floor_s < 3.0, f"overhead {overhead_s:.3f} s vs floor {floor_s:.3f} s"


def test_d_two_pinned_devices_in_parallel_vs_one(benchmark, lab_inventory, demo_artifacts, tmp_path):
    import threading

    _, inventory = lab_inventory
    devices = inventory.select(["lab-a", "lab-b"], local=None)
    plan = MeasurementPlan(warmup_runs=5, warmup_seconds=0.0, min_runs=400, min_seconds=0.0, max_seconds=30.0, ci_rel_tol=1.0, rounds=1,
                           op_profile_runs=0)  # stop at min_runs
    clients = {d.name: AgentClient(open_transport(d)) for d in devices}
    artifact = demo_artifacts["fp32"]

    def measure(device_name: str) -> None:
        cpus = next(d.cpus for d in devices if d.name == device_name)
        ctx = PairContext("bench", tmp_path, DeviceInfo(device_name, "x86-cpu"), threads=1, plan=plan, cpus=cpus, runtime=None)
        run_round(ctx, clients[device_name], artifact, None, NO_ADAPTER, round_index=1)

    for name in clients:  # deploy first: transfer time is not what (d) is about
        measure(name)
    alone_s: list[float] = []
    together_s: list[float] = []

    def one_round() -> None:
        start = time.perf_counter()
        measure("lab-a")
        alone_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        threads = [threading.Thread(target=measure, args=(name,)) for name in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        together_s.append(time.perf_counter() - start)

    try:
        benchmark.pedantic(one_round, rounds=3, iterations=1)
    finally:
        for client in clients.values():
            client.transport.close()
    ratio = statistics.median(together_s) / statistics.median(alone_s)
    RATIOS["(d) two pinned devices in parallel / one alone"] = ratio
    benchmark.extra_info["ratio"] = ratio
    assert ratio < 1.3
