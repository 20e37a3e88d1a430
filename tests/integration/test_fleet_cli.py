"""`harness devices …` and `harness run --inventory` end to end, through the
CLI in a fresh process, against real sshd lab devices next to `local`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.lab import keygen


@pytest.fixture
def lab_inventory(ssh_lab, tmp_path):
    lab = ssh_lab(2)
    known_hosts = tmp_path / "known_hosts"  # empty: nothing trusted yet
    return lab, lab.inventory(tmp_path / "inventory.yaml", known_hosts=known_hosts), known_hosts


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


def test_trust_then_check(lab_inventory, run_cli):
    lab, inventory, known_hosts = lab_inventory
    untrusted = run_cli("devices", "check", "--inventory", str(inventory), "lab-a")
    assert untrusted.exit_code == 3 and "harness devices trust lab-a" in untrusted.stdout
    no_traceback(untrusted)

    refused = run_cli("devices", "trust", "--inventory", str(inventory), "lab-a")  # stdin empty: "no"
    assert refused.exit_code == 3 and "not trusted" in refused.stdout
    assert "SHA256:" in refused.stdout and not known_hosts.exists()

    trusted = run_cli("devices", "trust", "--inventory", str(inventory), "--yes")
    assert trusted.exit_code == 0, trusted.stderr
    lines = known_hosts.read_text().splitlines()
    assert sorted(lines) == sorted(d.known_hosts_line.strip() for d in lab.devices)  # [host]:2222 form

    check = run_cli("devices", "check", "--inventory", str(inventory))
    assert check.exit_code == 0, check.stdout + check.stderr
    for name in ("local", "lab-a", "lab-b"):
        assert name in check.stdout
    assert check.stdout.count("ai-edge-litert") == 3

    lab.devices[1].kill()
    partial = run_cli("devices", "check", "--inventory", str(inventory), "lab-a", "lab-b")
    assert partial.exit_code == 3
    assert "lab-b: cannot connect" in partial.stdout and "ai-edge-litert" in partial.stdout  # lab-a still shown
    no_traceback(partial)

    listed = run_cli("devices", "list", "--inventory", str(inventory))
    assert listed.exit_code == 0 and "root@" in listed.stdout and "local" in listed.stdout


def test_changed_host_key_is_refused_and_nothing_runs(lab_inventory, run_cli):
    lab, inventory, known_hosts = lab_inventory
    assert run_cli("devices", "trust", "--inventory", str(inventory), "--yes", "lab-a").exit_code == 0
    device = lab.devices[0]
    # The device is "reinstalled" (or impersonated): a new host key.
    device.host_key.unlink()
    Path(str(device.host_key) + ".pub").unlink()
    keygen(device.host_key, "impostor")
    device.restart()
    recorded = known_hosts.read_text()

    check = run_cli("devices", "check", "--inventory", str(inventory), "lab-a")
    assert check.exit_code == 3
    assert "HOST KEY CHANGED" in check.stdout and "nothing was run" in check.stdout
    assert f"ssh-keygen -f {known_hosts} -R '[{device.host}]:2222'" in check.stdout
    assert not (device.home / ".cache").exists()  # no agent was deployed: no command ran

    trust = run_cli("devices", "trust", "--inventory", str(inventory), "--yes", "lab-a")
    assert trust.exit_code == 3 and "HOST KEY CHANGED" in trust.stderr and "left unchanged" in trust.stderr
    assert known_hosts.read_text() == recorded  # never overwritten silently
    no_traceback(trust)

    # Following the hint re-trusts the device.
    subprocess.run(["ssh-keygen", "-f", str(known_hosts), "-R", f"[{device.host}]:2222"], check=True, capture_output=True)
    assert run_cli("devices", "trust", "--inventory", str(inventory), "--yes", "lab-a").exit_code == 0
    assert run_cli("devices", "check", "--inventory", str(inventory), "lab-a").exit_code == 0


def test_bad_inventory_and_names_exit_2(tmp_path, run_cli):
    bad = tmp_path / "inventory.yaml"
    bad.write_text("devices:\n  pi-1: {host: 127.0.0.2, profile: x86-cpu, password: hunter2}\n")
    for args in (["devices", "check"], ["run", "--devices", "pi-1"]):
        result = run_cli(*args, "--inventory", str(bad))
        assert result.exit_code == 2 and "passwords are never read" in result.stderr
        no_traceback(result)
    result = run_cli("run", "--devices", "pi-9")
    assert result.exit_code == 2 and "unknown device 'pi-9'" in result.stderr


def test_clean_removes_the_device_cache(lab_inventory, run_cli):
    lab, inventory, _ = lab_inventory
    assert run_cli("devices", "trust", "--inventory", str(inventory), "--yes").exit_code == 0
    assert run_cli("devices", "bootstrap", "--inventory", str(inventory), "lab-a").exit_code == 0
    cache = lab.devices[0].home / ".cache" / "edge-harness"
    assert any(cache.glob("agent-*.py"))
    clean = run_cli("devices", "clean", "--inventory", str(inventory), "lab-a")
    assert clean.exit_code == 0 and f"removed {cache}" in clean.stdout
    assert not cache.exists()


@pytest.mark.slow
def test_run_on_two_lab_devices_next_to_local(lab_inventory, run_cli, tiny_recipe, tmp_path):
    lab, inventory, known_hosts = lab_inventory
    assert run_cli("devices", "trust", "--inventory", str(inventory), "--yes").exit_code == 0
    env = {"HARNESS_CACHE": str(tmp_path / "cache")}
    args = ("run", "--model", str(tiny_recipe), "--inventory", str(inventory), "--devices", "local,lab-a,lab-b")

    first = run_cli(*args, env=env)
    assert first.exit_code == 0, first.stdout + first.stderr
    results = sorted((tmp_path / "reports").glob("*/results.json"))
    data = json.loads(results[-1].read_text())
    records = data["records"]
    assert sorted((r["device"]["name"], r["model"]["variant"]) for r in records) == [
        (d, v) for d in ("lab-a", "lab-b", "local") for v in ("fp32", "int8")
    ]
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]
    assert all(r["latency_ms"]["n"] >= 100 and r["accuracy"]["n_images"] == 8 for r in records)
    sent = data["run"]["transfers"]
    assert all(sent[d]["bytes_uploaded"] > 0 for d in ("lab-a", "lab-b", "local"))

    second = run_cli(*args, env=env)
    assert second.exit_code == 0, second.stdout + second.stderr
    data = json.loads(sorted((tmp_path / "reports").glob("*/results.json"))[-1].read_text())
    assert data["run_id"] != json.loads(results[-1].read_text())["run_id"]
    assert all(r["status"] == "ok" for r in data["records"])
    # Models, inputs and the agent are all found by hash: nothing is sent again.
    assert {d: t["bytes_uploaded"] for d, t in data["run"]["transfers"].items()} == {"local": 0, "lab-a": 0, "lab-b": 0}
    for name in ("lab-a", "lab-b"):
        assert f"{name}: sent 0.00 MB" in second.stdout
    # Copying into its own cache is not sending: the local device says nothing of it.
    assert "local: sent" not in second.stdout

    # An untrusted device fails its own pairs (with the fix), never the others'.
    known_hosts.write_text(lab.devices[0].known_hosts_line)
    third = run_cli(*args[:-1], "lab-a,lab-b", "--variants", "fp32", env=env)
    assert third.exit_code == 3
    data = json.loads(sorted((tmp_path / "reports").glob("*/results.json"))[-1].read_text())
    by_device = {r["device"]["name"]: r for r in data["records"]}
    assert by_device["lab-a"]["status"] == "ok"
    assert by_device["lab-b"]["status"] == "failed" and by_device["lab-b"]["error"]["kind"] == "device"
    assert "harness devices trust lab-b" in by_device["lab-b"]["error"]["message"]
    assert "harness devices trust lab-b" in third.stderr
    no_traceback(third)
