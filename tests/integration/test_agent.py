"""The agent, run for real in a clean subprocess (`python -I agent.py`)
against the converted demo detector and the real TFLite runtime."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from harness.dataset.coco import CocoDataset
from harness.dataset.preprocess import InputQuant, prepare_batch

from tests.agent_calls import AGENT, FAST, call_agent


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
        for ymin, xmin, ymax, xmax in d["boxes"]:
            # The op does not clip to the image: boxes may reach a little past it.
            assert ymin < ymax and xmin < xmax
            assert -0.5 < ymin < 1.0 and -0.5 < xmin < 1.0 and 0.0 < ymax < 1.5 and 0.0 < xmax < 1.5
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


def test_missing_edgetpu_delegate_is_a_clear_device_error(tmp_path):
    """The real load_delegate path of the real runtime, on a machine without
    libedgetpu: an error kind the harness records per device, not a crash."""
    model = tmp_path / "model.tflite"
    model.write_bytes(b"unused: the delegate is loaded first")
    code, reply, _ = call_agent({
        "protocol": 1, "command": "benchmark", "model": str(model),
        "delegate": {"name": "edgetpu", "library": "libedgetpu.so.1"}, **FAST,
    })
    assert code == 1 and reply["ok"] is False
    assert reply["error"]["kind"] == "delegate-missing"
    assert "libedgetpu.so.1" in reply["error"]["message"] and "libedgetpu1-std" in reply["error"]["message"]


def test_telemetry_uses_the_profile_sources(tmp_path):
    """A stand-in vcgencmd (named fake: there is no Pi firmware here) on PATH;
    the agent's real parsing of its documented output."""
    fake = tmp_path / "vcgencmd"
    fake.write_text(
        "#!/bin/sh\n# fake vcgencmd: prints what a throttled Raspberry Pi 4 prints\n"
        'case "$1" in measure_temp) echo "temp=71.5\'C";; get_throttled) echo "throttled=0x50005";;'
        ' measure_clock) echo "frequency(48)=1000000000";; esac\n'
    )
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    telemetry = {"temperature": ["vcgencmd", "thermal"], "throttling": ["vcgencmd", "sysfs"], "frequency": ["vcgencmd"]}
    code, reply, _ = call_agent({"protocol": 1, "command": "info", "telemetry": telemetry}, env=env)
    got = reply["env"]
    assert code == 0 and got["temperature_c"] == 71.5 and got["temperature_source"] == "vcgencmd"
    assert got["throttled"] is True and got["throttling_source"] == "vcgencmd" and got["cpu_mhz"] == 1000.0
    assert got["throttle_reasons"] == ["under-voltage", "throttled", "under-voltage occurred", "throttling occurred"]
    code, reply, _ = call_agent({"protocol": 1, "command": "info", "telemetry": {"throttling": ["sysfs"]}}, env=env)
    assert reply["env"]["throttling_source"] in (None, "sysfs")  # this VM may expose no cpufreq at all


def test_with_root_the_agent_reads_only_its_cache(demo_artifacts, tmp_path):
    """How the host starts it on a device: `--root CACHE`. A model outside the
    cache, or a symlink inside it pointing out, is refused before any read."""
    cache = tmp_path / "cache"
    cache.mkdir()
    inside = cache / "model.tflite"
    inside.write_bytes(demo_artifacts["fp32"].path.read_bytes())
    (cache / "escape.tflite").symlink_to(demo_artifacts["fp32"].path)
    argv = [sys.executable, "-I", str(AGENT), "--root", str(cache)]

    def ask(request):
        proc = subprocess.run(argv, input=json.dumps({"protocol": 1, **request}).encode(), capture_output=True, timeout=120)
        return json.loads(proc.stdout.decode())

    ok = ask({"command": "hash", "paths": [str(inside)]})
    assert ok["ok"] and ok["sha256"][str(inside)]
    for request in (
        {"command": "hash", "paths": ["/etc/passwd"]},
        {"command": "benchmark", "model": str(cache / "escape.tflite"), **FAST},
        {"command": "benchmark", "model": str(cache / ".." / "elsewhere.tflite"), **FAST},
        {"command": "lock", "path": "/tmp/x.lock", "action": "acquire", "token": "t"},
        {"command": "benchmark", "model": str(inside), "adapter": "ssd-postprocess",
         "adapter_options": {"anchors": "/etc/hostname"}, **FAST},
    ):
        reply = ask(request)
        assert reply["ok"] is False and reply["error"]["kind"] == "outside-cache", (request, reply)


def test_an_orphaned_agent_stops_instead_of_measuring_for_nobody(demo_artifacts, tmp_path):
    """The controller (here a shell standing in for the SSH session or the
    controller process) is killed mid-measurement: the agent notices it was
    reparented and exits long before its 120 s plan would end."""
    import os
    import signal
    import time

    request = tmp_path / "request.json"
    request.write_text(json.dumps({"protocol": 1, "command": "benchmark", "model": str(demo_artifacts["fp32"].path),
                                   "warmup_runs": 1, "warmup_seconds": 0.0, "min_runs": 10**9,
                                   "min_seconds": 120.0, "max_seconds": 120.0, "ci_rel_tol": 0.01}))
    log = tmp_path / "agent.log"
    log.write_text("")  # exists before the shell's redirection (re)opens it: no race on the first read
    parent = subprocess.Popen(
        ["sh", "-c", '"$0" -I "$1" < "$2" > /dev/null 2> "$3" & echo $!; wait',
         sys.executable, str(AGENT), str(request), str(log)],
        stdout=subprocess.PIPE, text=True,
    )
    agent_pid = int(parent.stdout.readline())
    deadline = time.monotonic() + 120
    while "warming up" not in log.read_text():  # started: it knows its parent
        assert time.monotonic() < deadline and _alive(agent_pid), log.read_text()
        time.sleep(0.05)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while _alive(agent_pid):
        assert time.monotonic() < deadline, "the orphaned agent is still measuring"
        time.sleep(0.05)
    assert "controller that started this agent is gone" in log.read_text()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False



@pytest.mark.parametrize("dropped", ["warmup_runs", "warmup_seconds", "min_runs", "min_seconds", "max_seconds", "ci_rel_tol"])
def test_a_benchmark_without_the_whole_plan_is_refused_not_defaulted(dropped, demo_artifacts):
    """The host owns the plan's defaults: a missing field is a bad request
    naming it, never a second opinion of the agent's."""
    plan = {k: v for k, v in FAST.items() if k != dropped}
    code, reply, _ = call_agent({"protocol": 1, "command": "benchmark", "model": str(demo_artifacts["fp32"].path), **plan})
    assert code == 1 and reply["ok"] is False and reply["error"]["kind"] == "bad-request"
    assert dropped in reply["error"]["message"] and "whole plan" in reply["error"]["message"]
