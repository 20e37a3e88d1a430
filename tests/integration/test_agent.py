"""The agent, run for real in a clean subprocess (`python -I agent.py`)
against the converted demo detector and the real TFLite runtime."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from harness import paths
from harness.dataset.coco import CocoDataset
from harness.preprocess import InputQuant, prepare_batch

AGENT = paths.agent_path()
FAST = {"warmup_runs": 2, "warmup_seconds": 0.0, "min_runs": 70, "min_seconds": 0.0, "max_seconds": 10.0}


def call_agent(request: dict, *, env: dict | None = None, isolated: bool = True) -> tuple[int, dict, str]:
    argv = [sys.executable] + (["-I"] if isolated else []) + [str(AGENT)]
    proc = subprocess.run(argv, input=json.dumps(request).encode(), capture_output=True, timeout=300, env=env)
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1, f"stdout must be exactly one reply line, got {lines!r}"
    return proc.returncode, json.loads(lines[0]), proc.stderr.decode()


@pytest.fixture(scope="module")
def few_val_images(demo_datasets, tmp_path_factory):
    """The first 12 val images, prepared per input dtype."""
    _, val = demo_datasets
    subset = CocoDataset(val.name, val.annotations_json, val.images[:12], val.categories, val.annotations_sha256)
    return subset


def write_inputs(tmp_path, dataset, recipe, quant: InputQuant):
    path = tmp_path / f"inputs-{quant.dtype}.npy"
    np.save(path, prepare_batch([img.path for img in dataset.images], recipe.input, quant))
    return path


def test_info_reports_runtime_and_platform():
    code, reply, _ = call_agent({"protocol": 1, "command": "info"})
    assert code == 0 and reply["ok"] is True
    assert reply["protocol"] == 1
    assert reply["runtime"]["name"] == "ai-edge-litert"
    assert reply["platform"]["arch"] and reply["platform"]["cpu_count"] >= 1


@pytest.mark.parametrize("variant", ["fp32", "int8", "uint8"])
def test_benchmark_with_eval_images(variant, demo_artifacts, demo_recipe, few_val_images, tmp_path):
    artifact = demo_artifacts[variant]
    inputs = write_inputs(tmp_path, few_val_images, demo_recipe, artifact.input_quant)
    code, reply, stderr = call_agent(
        {"protocol": 1, "command": "benchmark", "model": str(artifact.path), "inputs": str(inputs),
         "adapter": "ssd-postprocess", "threads": 1, **FAST}
    )
    assert code == 0, stderr
    assert reply["ok"] is True
    assert reply["input"] == {"source": "eval-images", "count": 12, "dtype": variant if variant != "fp32" else "float32",
                              "shape": [1, demo_recipe.input.height, demo_recipe.input.width, 3]}
    assert len(reply["samples_ns"]) >= FAST["min_runs"]
    assert all(isinstance(s, int) and s > 0 for s in reply["samples_ns"])
    assert reply["load_ms"] > 0 and reply["first_invoke_ms"] > 0
    mem = reply["memory_mb"]
    assert 0 < mem["baseline"] <= mem["peak"] and mem["after_load"] <= mem["peak"]
    # One detection set per image; the synthetic images all contain objects.
    assert len(reply["detections"]) == 12
    found = sum(len(d["scores"]) for d in reply["detections"])
    assert found >= 12
    for d in reply["detections"]:
        assert len(d["boxes"]) == len(d["classes"]) == len(d["scores"])
        for box in d["boxes"]:
            # Decoded, not clipped (export.py): a box near the border sticks out a little.
            assert all(-0.1 <= v <= 1.1 for v in box) and box[0] < box[2] and box[1] < box[3]
        assert all(0 <= c < len(demo_recipe.labels) for c in d["classes"])


def test_benchmark_without_inputs_uses_random_tensors(demo_artifacts):
    code, reply, _ = call_agent(
        {"protocol": 1, "command": "benchmark", "model": str(demo_artifacts["fp32"].path),
         "adapter": "ssd-postprocess", **FAST}
    )
    assert code == 0
    assert reply["input"]["source"] == "random"
    assert reply["detections"] == []
    assert len(reply["samples_ns"]) >= FAST["min_runs"]


def test_inputs_of_the_wrong_dtype_are_refused(demo_artifacts, demo_recipe, few_val_images, tmp_path):
    inputs = write_inputs(tmp_path, few_val_images, demo_recipe, InputQuant("float32"))
    code, reply, _ = call_agent(
        {"protocol": 1, "command": "benchmark", "model": str(demo_artifacts["int8"].path), "inputs": str(inputs), **FAST}
    )
    assert code == 1
    assert reply["ok"] is False and reply["error"]["kind"] == "bad-input"
    assert "int8" in reply["error"]["message"]


def test_a_corrupt_model_is_a_model_load_failure(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    code, reply, _ = call_agent({"protocol": 1, "command": "benchmark", "model": str(bad), **FAST})
    assert code == 1 and reply["error"]["kind"] == "model-load"


@pytest.mark.parametrize(
    "raw, kind",
    [(b"not json", "bad-request"), (b'{"protocol": 99, "command": "info"}', "protocol"), (b'{"protocol": 1}', "bad-request")],
)
def test_bad_requests_get_a_reply_not_a_traceback(raw, kind):
    proc = subprocess.run([sys.executable, "-I", str(AGENT)], input=raw, capture_output=True, timeout=60)
    assert proc.returncode == 1
    reply = json.loads(proc.stdout)
    assert reply["ok"] is False and reply["error"]["kind"] == kind


def test_hash_command(tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"edge" * 1000)
    code, reply, _ = call_agent({"protocol": 1, "command": "hash", "paths": [str(blob), str(tmp_path / "missing")]})
    assert code == 0
    assert reply["sha256"] == {str(blob): hashlib.sha256(b"edge" * 1000).hexdigest(), str(tmp_path / "missing"): None}


def test_stray_prints_cannot_corrupt_the_reply(tmp_path):
    """A runtime that prints to stdout, from Python and from native code (fd 1)."""
    fake = tmp_path / "site" / "ai_edge_litert"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "interpreter.py").write_text("import os\nprint('python noise')\nos.write(1, b'native noise\\n')\n")
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    code, reply, stderr = call_agent({"protocol": 1, "command": "info"}, env=env, isolated=False)
    assert code == 0 and reply["runtime"]["name"] == "ai-edge-litert"
    assert "python noise" in stderr and "native noise" in stderr
