"""The per-operator profile (issue 20): a runtime without the profiler says
`unavailable` and changes nothing else. Its consistency with the unprofiled
latency is a timing check, so it runs with the benchmarks, alone on the host
(tests/benchmarks/test_op_profile_sum.py)."""

from __future__ import annotations

import json
import subprocess

import pytest

from harness import paths
from tests.agent_calls import FAST, call_agent

def test_tflite_runtime_profile_is_unavailable_and_nothing_else_changes(demo_artifacts):
    python = paths.tflite214_python()
    if python is None:
        pytest.skip("no tflite-runtime 2.14 side venv (make .venv-tflite214)")
    base = {"protocol": 1, "command": "benchmark", "model": str(demo_artifacts["fp32"].path),
            "adapter": "ssd-postprocess", "runtime": "tflite-runtime", **FAST}
    replies = []
    for extra in ({}, {"op_profile_runs": 5, "op_profile_min_seconds": 0.0, "op_profile_max_seconds": 10.0}):
        proc = subprocess.run([str(python), "-I", str(paths.agent_path())], input=json.dumps({**base, **extra}).encode(),
                              capture_output=True, timeout=300)
        replies.append(json.loads(proc.stdout.decode().splitlines()[-1]))
    plain, asked = replies
    assert plain["ok"] and asked["ok"] and asked["runtime"]["name"] == "tflite-runtime"
    assert asked["op_profile"] == {"status": "unavailable",
                                   "reason": f"tflite-runtime {asked['runtime']['version']} has no per-operator profiler "
                                             "API (only ai-edge-litert's libLiteRt.so has one)"}
    assert set(asked) - set(plain) == {"op_profile"} and "op_profile" not in plain
    assert len(asked["samples_ns"]) >= FAST["min_runs"] and asked["input"] == plain["input"]
    # ai-edge-litert on the same request: the pass runs (the route exists here).
    code, litert, _ = call_agent({**base, "runtime": "ai-edge-litert", "op_profile_runs": 5,
                                  "op_profile_min_seconds": 0.0, "op_profile_max_seconds": 10.0})
    assert code == 0 and litert["op_profile"]["status"] == "ok" and litert["op_profile"]["runs"] == 5
