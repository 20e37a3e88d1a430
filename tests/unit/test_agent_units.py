"""The agent's pure pieces, imported from devices/agent.py as a module (the
agent cannot import the harness, so the copies it keeps are tied to the
harness's here): the protocol version, the early-stop rule, the plan it
requires, request parsing."""

from __future__ import annotations

import importlib.util
import math
import os
import random
import sys

import pytest

from harness import paths
from harness.agent.client import PROTOCOL_VERSION
from harness.fleet.profiles import MeasurementPlan
from harness.measure.stats import interval_is_tight, quantile_ci_ranks


def test_importing_the_agent_leaves_stdout_alone():
    """The stdout guard runs in main(), not at import."""
    before = (sys.stdout, os.fstat(1).st_ino, os.fstat(1).st_dev)
    spec = importlib.util.spec_from_file_location("edge_harness_agent_again", paths.agent_path())
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert (sys.stdout, os.fstat(1).st_ino, os.fstat(1).st_dev) == before


def test_agent_and_client_speak_the_same_protocol_version(agent):
    assert agent.PROTOCOL_VERSION == PROTOCOL_VERSION


# --- the early stop: the agent's copy against the host's interval ----------


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_agent_ranks_are_the_hosts(agent, q):
    sizes = [*range(1, 300), 500, 1000, 2048, 5000, 20000, 100000]
    assert [agent.order_statistic_ranks(n, q) for n in sizes] == [quantile_ci_ranks(n, q) for n in sizes]


def _samples_ns(n: int, spread: float, seed: int, *, tail: float = 0.0) -> list[int]:
    """n invoke times around 2 ms: `spread` is the relative noise, `tail` the
    share of slow outliers (3x), the shape a busy device gives."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        value = 2_000_000 * (1 + rng.uniform(-spread, spread))
        out.append(int(value * (3 if rng.random() < tail else 1)))
    return sorted(out)


SAMPLE_SETS = [
    (n, spread, tail, seed)
    for n in (32, 35, 36, 37, 63, 64, 65, 96, 128, 320, 1024, 4096)
    for spread, tail in ((0.0, 0.0), (0.002, 0.0), (0.02, 0.0), (0.05, 0.02), (0.3, 0.1))
    for seed in (1, 2)
]


def test_agent_and_host_stop_on_the_same_samples(agent):
    decisions = []
    for n, spread, tail, seed in SAMPLE_SETS:
        ns = _samples_ns(n, spread, seed, tail=tail)
        for rel_tol in (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.2, 1.0):
            host = interval_is_tight(ns, 0.9, rel_tol)
            assert agent.p90_interval_tight(ns, rel_tol) == host, (n, spread, tail, seed, rel_tol)
            decisions.append((n, host))
    # Not vacuous: both answers occur, and around the 64-sample minimum.
    assert {d for _, d in decisions} == {True, False}
    assert {d for n, d in decisions if 60 <= n <= 70} == {True, False}
    assert not any(d for n, d in decisions if n < 36)  # no upper bound on the p90 yet


def test_agent_and_host_agree_on_the_edge_of_the_tolerance(agent):
    """rel_tol set to the samples' own half-width ratio, and one float step
    either side: the two rules compute it with the same arithmetic."""
    for n, spread, tail, seed in SAMPLE_SETS:
        ns = _samples_ns(n, spread, seed, tail=tail)
        lower, upper = quantile_ci_ranks(n, 0.9)
        if lower is None or upper is None:
            continue
        p90 = agent.type7_quantile(ns, 0.9)
        edge = (ns[upper - 1] - ns[lower - 1]) / 2.0 / p90
        for rel_tol in (edge, math.nextafter(edge, 0.0), math.nextafter(edge, 1.0)):
            assert agent.p90_interval_tight(ns, rel_tol) == interval_is_tight(ns, 0.9, rel_tol), (n, spread, rel_tol)


def test_the_loop_stops_for_the_first_reason_that_holds(agent):
    plan = {"max_seconds": 10.0, "min_runs": 64, "min_seconds": 1.0, "ci_rel_tol": 0.01, "max_runs": 1000}
    tight = _samples_ns(128, 0.0, 1)
    assert agent.stop_reason_after(tight, 10.0, plan) == "max-seconds"
    assert agent.stop_reason_after(tight, 1.0, plan) == "ci-tight"
    assert agent.stop_reason_after(tight, 0.5, plan) is None  # min_seconds not reached
    assert agent.stop_reason_after(tight[:127], 1.0, plan) is None  # looked at every 32 samples only
    assert agent.stop_reason_after(tight, 1.0, dict(plan, min_runs=200)) is None
    loose = _samples_ns(1000, 0.3, 1, tail=0.1)
    assert agent.stop_reason_after(loose[:992], 1.0, plan) is None  # interval still wide
    assert agent.stop_reason_after(loose, 1.0, plan) == "max-runs"


# --- the plan: the host's, whole, or refused ------------------------------


def test_the_host_sends_every_field_the_agent_requires(agent, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"")
    assert set(MeasurementPlan().round_request()) == {name for name, _ in agent.PLAN_FIELDS}
    for plan in (MeasurementPlan(), MeasurementPlan(rounds=3, min_runs=100, min_seconds=2.0), MeasurementPlan(rounds=1)):
        parsed = agent.parse_benchmark({"model": str(model), **plan.round_request()})
        assert {k: parsed[k] for k in plan.round_request()} == plan.round_request()
        assert parsed["max_runs"] == agent.MAX_RUNS and parsed["input_ring"] == agent.TIMED_INPUT_RING


def test_the_default_plan_splits_across_rounds_as_before():
    assert MeasurementPlan().round_request() == {
        "warmup_runs": 10, "warmup_seconds": 0.5, "min_runs": 50, "min_seconds": 1.0, "max_seconds": 10.0, "ci_rel_tol": 0.01,
    }


@pytest.fixture
def whole_request(tmp_path) -> dict:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"")
    return {"model": str(model), **MeasurementPlan().round_request()}


def test_a_missing_plan_field_is_a_bad_request_naming_it(agent, whole_request):
    for name, _ in agent.PLAN_FIELDS:
        request = {k: v for k, v in whole_request.items() if k != name}
        with pytest.raises(agent.AgentFailure) as caught:
            agent.parse_benchmark(request)
        assert caught.value.kind == "bad-request" and name in caught.value.message


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("min_runs", 2.5, "min_runs must be a non-negative int"),
        ("min_runs", True, "min_runs must be"),
        ("warmup_seconds", "0.5", "warmup_seconds must be a non-negative float"),
        ("max_seconds", -1, "max_seconds must be"),
        ("ci_rel_tol", float("nan"), "ci_rel_tol must be"),
        ("max_runs", 0, "max_runs must be 1..100000"),
        ("input_ring", 2000, "input_ring must be 1..1024"),
        ("model", "/nonexistent/m.tflite", "not found on the device"),
    ],
)
def test_bad_plan_values_are_bad_requests(agent, whole_request, field, value, says):
    with pytest.raises(agent.AgentFailure) as caught:
        agent.parse_benchmark(dict(whole_request, **{field: value}))
    assert caught.value.kind == "bad-request" and says in caught.value.message


@pytest.mark.parametrize(
    "raw, kind",
    [("not json", "bad-request"), ("[1]", "bad-request"), ('{"command": "info"}', "protocol"),
     ('{"protocol": 99, "command": "info"}', "protocol")],
)
def test_request_parse_errors(agent, raw, kind):
    with pytest.raises(agent.AgentFailure) as caught:
        agent.parse_request(raw)
    assert caught.value.kind == kind


def test_an_unknown_command_is_a_bad_request(agent):
    assert agent.parse_request('{"protocol": 1, "command": "x"}') == {"protocol": 1, "command": "x"}
    for command in ("x", ["info"], None):
        with pytest.raises(agent.AgentFailure, match="unknown command") as caught:
            agent.run_command({"protocol": 1, "command": command}, None)
        assert caught.value.kind == "bad-request"
