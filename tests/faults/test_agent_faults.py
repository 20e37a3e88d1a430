"""The agent or the device's storage fails: a real crash (SIGABRT), the
out-of-memory killer, a corrupted upload, a full disk. The pair fails with
its reason; the device and every other pair go on."""

from __future__ import annotations

import subprocess

import pytest

from harness.agent.client import file_sha256
from tests.faults.checks import assert_outcome
from tests.faults.conftest import python3_with
from tests.faults.lab_faults import MemoryCgroup, no_agent_left

ABORT_ENV = "EDGE_HARNESS_TEST_ONLY_AGENT_ABORT"


def test_agent_crash_fails_that_pair_only(fault_lab, faults_run, fault_models):
    (int8,) = (fault_models / "variants").rglob("*detector-int8.tflite")
    crash_on_int8 = python3_with(f"export {ABORT_ENV}=benchmark:{file_sha256(int8)[:16]}")
    setup = fault_lab(1, scripts={"lab-a": crash_on_int8})
    stored = faults_run.run("run", "--model", str(fault_models / "model.yaml"), "--inventory", str(setup.inventory),
                            "--devices", "lab-a", "--variants", "fp32,int8,fp16")
    assert stored.exit_code == 3
    # int8 crashed; fp32 before it and fp16 after it on the same device are measured.
    assert_outcome(stored, ok={("lab-a", "fp32"), ("lab-a", "fp16")},
                   failed={("lab-a", "int8"): ("was killed", "runtime or a delegate crashed", "aborting on purpose", "fix:")},
                   kind="agent")
    no_agent_left(setup.device("lab-a"))


@pytest.mark.skipif(not MemoryCgroup.available(), reason="needs a cgroup v1 memory controller")
def test_agent_oom_killed_on_a_small_device(fault_lab, faults_run, fault_models):
    # hog.tflite needs ~150 MB of tensors; the agent alone fits in 100 MB.
    cgroup = MemoryCgroup(100 << 20)
    faults_run.plan.update(min_runs=2, max_seconds=1.0)  # an invoke of the hog takes ~0.1 s
    try:
        setup = fault_lab(2, scripts={"lab-a": python3_with(f"echo $$ > {cgroup.procs}")})
        stored = faults_run.run("run", "--model", str(fault_models / "hog.tflite"), "--inventory", str(setup.inventory),
                                "--devices", "lab-a,lab-b")
        assert cgroup.oom_kills() >= 1
    finally:
        cgroup.remove()
    assert stored.exit_code == 3
    assert_outcome(stored, ok={("lab-b", "fp32")},
                   failed={("lab-a", "fp32"): ("was killed", "out-of-memory", "dmesg")}, kind="agent")
    assert stored.by_pair()[("lab-b", "fp32")]["memory_mb"]["peak"] > 100


def test_corrupted_upload_is_caught_by_its_checksum(fault_lab, faults_run, tiny_tflite):
    # The device's storage flips a byte of every model before each agent call.
    flip = ('for f in "$HOME"/.cache/edge-harness/blobs/*.tflite; do [ -f "$f" ] && '
            'printf X | dd of="$f" bs=1 seek=64 conv=notrunc 2>/dev/null; done')
    setup = fault_lab(2, scripts={"lab-a": python3_with(flip)})
    stored = faults_run.run("run", "--model", str(tiny_tflite), "--inventory", str(setup.inventory),
                            "--devices", "lab-a,lab-b")
    assert stored.exit_code == 3
    assert_outcome(stored, ok={("lab-b", "fp32")},
                   failed={("lab-a", "fp32"): ("is corrupt on the device", "sha256", "fix: check the device's free disk")},
                   kind="device")


def test_full_disk_on_the_device(fault_lab, faults_run, fault_models, tmp_path):
    cache = tmp_path / "small-disk"
    cache.mkdir()
    # Room for the agent (~50 KB), not for the eval inputs (~100 KB).
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=80k", "tmpfs", str(cache)], check=True)
    try:
        setup = fault_lab(2, extra={"lab-a": {"cache_dir": str(cache)}})
        stored = faults_run.run("run", "--model", str(fault_models / "model.yaml"), "--inventory", str(setup.inventory),
                                "--devices", "lab-a,lab-b", "--variants", "fp32")
        leftovers = sorted(p.name for p in cache.rglob("*.partial"))
    finally:
        subprocess.run(["umount", "-l", str(cache)], check=True)
    assert stored.exit_code == 3
    assert_outcome(stored, ok={("lab-b", "fp32")}, failed={("lab-a", "fp32"): ("no space left", "fix:")}, kind="device")
    assert leftovers == []  # the half-written upload is removed, not left filling the disk
    no_agent_left(setup.device("lab-b"))
