"""Devices that fail: unreachable, killed mid-measurement or mid-upload,
silent, lossy and slow links. Each run is the real controller against real
sshd lab devices; each test checks what was stored afterwards."""

from __future__ import annotations

import time

import pytest

from tests.faults.checks import assert_outcome
from tests.faults.lab_faults import (
    DelayRelay, benchmarking, drop_everything, no_agent_left, random_loss, rate_limit, tools_missing, wait_for,
)


def test_device_unreachable_from_the_start(fault_lab, faults_run, tiny_tflite):
    setup = fault_lab(2)
    setup.device("lab-b").kill()
    stored = faults_run.run("run", "--model", str(tiny_tflite), "--inventory", str(setup.inventory),
                            "--devices", "lab-a,lab-b")
    assert stored.exit_code == 3
    assert_outcome(stored, ok={("lab-a", "fp32")},
                   failed={("lab-b", "fp32"): ("cannot connect", "fix: check that the device is on")}, kind="device")
    assert "lab-b" in stored.stderr and "cannot connect" in stored.stderr
    no_agent_left(setup.device("lab-a"))


def test_device_killed_mid_measurement(fault_lab, faults_run, fault_models):
    setup = fault_lab(2)
    faults_run.plan.update(min_seconds=1.5, max_seconds=3.0, ci_rel_tol=0.0)
    proc = faults_run.start("run", "--model", str(fault_models / "model.yaml"), "--inventory", str(setup.inventory),
                            "--devices", "lab-a,lab-b", "--variants", "fp32,int8")
    lab_b = setup.device("lab-b")
    wait_for(lambda: faults_run.stored().has("lab-b", "fp32"), 120, "lab-b's fp32 result")
    wait_for(lambda: benchmarking(lab_b), 60, "lab-b to measure int8")
    lab_b.kill()
    stored = faults_run.finish(proc)
    assert stored.exit_code == 3
    pairs = assert_outcome(
        stored, ok={("lab-a", "fp32"), ("lab-a", "int8"), ("lab-b", "fp32")},
        failed={("lab-b", "int8"): ("lab-b", "fix:")}, kind="device",
    )
    assert pairs[("lab-b", "fp32")]["accuracy"]["n_images"] == 8  # measured before the fault, intact
    no_agent_left(setup.device("lab-a"))


@pytest.mark.skipif(bool(tools_missing("ip", "tc")), reason="needs iproute2 (ip netns, tc)")
def test_device_killed_during_upload(fault_lab, faults_run, fault_models):
    # 48 kbit/s: the ~45 KB agent takes ~8 s to upload, long enough to be caught mid-way.
    setup = fault_lab(2, isolated={"lab-b"})
    lab_b = setup.device("lab-b")
    rate_limit(lab_b, "48kbit")
    proc = faults_run.start("run", "--model", str(fault_models / "model.yaml"), "--inventory", str(setup.inventory),
                            "--devices", "lab-a,lab-b", "--variants", "fp32")
    cache = lab_b.home / ".cache" / "edge-harness"
    partial = wait_for(lambda: list(cache.glob("*.partial")), 120, "an upload in progress on lab-b")
    lab_b.kill()
    stored = faults_run.finish(proc)
    assert stored.exit_code == 3
    assert_outcome(stored, ok={("lab-a", "fp32")}, failed={("lab-b", "fp32"): ("lab-b", "fix: check that the device is on")}, kind="device")
    # Half a file only ever exists under its .partial name: never used as the real one.
    assert not any(p.with_suffix("").exists() for p in partial)
    no_agent_left(setup.device("lab-a"))


@pytest.mark.skipif(bool(tools_missing("ip", "nft")), reason="needs iproute2 and nftables (apt-get install nftables)")
def test_silent_peer_fails_within_the_configured_timeout(fault_lab, faults_run, fault_models):
    setup = fault_lab(1, isolated={"lab-a"})
    device = setup.device("lab-a")
    # Enough for the fp32 pair's whole benchmark call (load, eval pass, <= 3 s
    # of timing) on a loaded 2-core host running the suite on both cores.
    timeout_s = 10.0
    faults_run.plan.update(min_seconds=1.5, max_seconds=3.0, ci_rel_tol=0.0, command_timeout_s=timeout_s, retries=0)
    proc = faults_run.start("run", "--model", str(fault_models / "model.yaml"), "--inventory", str(setup.inventory),
                            "--devices", "lab-a", "--variants", "fp32,int8")
    wait_for(lambda: faults_run.stored().has("lab-a", "fp32"), 120, "the fp32 result")
    wait_for(lambda: benchmarking(device), 60, "int8's measurement")
    drop_everything(device)
    silent_at = time.monotonic()
    stored = faults_run.finish(proc, timeout_s=120)
    waited_s = time.monotonic() - silent_at
    # The benchmark call, then the lock release, each bounded by the timeout.
    assert waited_s < 2 * timeout_s + 15, f"the controller hung {waited_s:.0f} s on a silent device"
    assert stored.exit_code == 3
    assert_outcome(stored, ok={("lab-a", "fp32")}, failed={("lab-a", "int8"): (f"timed out after {timeout_s:g} s",)},
                   kind="device")


@pytest.mark.skipif(bool(tools_missing("ip", "nft", "tc")), reason="needs iproute2 and nftables")
def test_packet_loss_bandwidth_and_delay_still_measure_every_pair(fault_lab, faults_run, fault_models):
    setup = fault_lab(2, isolated={"lab-a"})
    lossy, far = setup.device("lab-a"), setup.device("lab-b")
    random_loss(lossy, 5)
    rate_limit(lossy, "2mbit")
    relay = DelayRelay((far.host, far.port), delay_s=0.03)
    try:
        # lab-b is reached through the relay: the same host key, another address.
        inventory = setup.inventory.read_text().replace(f"host: {far.host}\n    port: {far.port}",
                                                        f"host: 127.0.0.1\n    port: {relay.port}")
        assert inventory != setup.inventory.read_text()
        setup.inventory.write_text(inventory)
        setup.known_hosts.write_text(setup.known_hosts.read_text()
                                     + far.known_hosts_line.replace(f"[{far.host}]:{far.port}", f"[127.0.0.1]:{relay.port}"))
        stored = faults_run.run("run", "--model", str(fault_models / "model.yaml"), "--inventory", str(setup.inventory),
                                "--devices", "lab-a,lab-b", "--variants", "fp32,int8")
    finally:
        relay.close()
    assert stored.exit_code == 0, stored.stderr[-2000:]
    assert_outcome(stored, ok={(d, v) for d in ("lab-a", "lab-b") for v in ("fp32", "int8")}, failed={})
    for device in (lossy, far):
        no_agent_left(device)
