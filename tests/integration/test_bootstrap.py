"""`harness devices bootstrap` on a device that has no network of its own.

The lab device runs sshd in its own network namespace: one veth pair to
the host, no default route. Its python3 is bare (no pip, numpy or runtime).
Bootstrap downloads the wheels on the host, pushes them over SSH, installs
them in a venv in the device cache, and the agent then runs there.
"""

from __future__ import annotations

import re

from harness.device import Device
from harness.transport import open_transport


def _device_run(lab, known_hosts, code: str):
    dev = lab.devices[0]
    device = Device(name=dev.name, profile="x86-cpu", kind="ssh", python="python3", host=dev.host, port=dev.port,
                    user=dev.user, identity_file=str(lab.client_key), known_hosts=str(known_hosts))
    transport = open_transport(device)
    try:
        return transport.run(["python3", "-I", "-c", code], timeout_s=60)
    finally:
        transport.close()


def test_bootstrap_installs_the_runtime_without_device_network(isolated_lab, run_cli, tmp_path):
    lab = isolated_lab
    name = lab.devices[0].name
    known_hosts = lab.known_hosts(tmp_path / "known_hosts")
    inventory = lab.inventory(tmp_path / "lab.yaml", known_hosts=known_hosts)

    # The device has no route out and nothing to benchmark with.
    offline = _device_run(lab, known_hosts, "import socket; socket.create_connection(('1.1.1.1', 443), timeout=3)")
    assert offline.exit_status != 0 and "Network is unreachable" in offline.stderr.decode()
    bare = _device_run(lab, known_hosts, "import numpy")
    assert bare.exit_status != 0 and "No module named 'numpy'" in bare.stderr.decode()
    before = run_cli("devices", "check", "--inventory", str(inventory), name)
    assert "lacks numpy and ai-edge-litert" in before.stdout.replace("\n", " ")

    result = run_cli("devices", "bootstrap", "--inventory", str(inventory), name, timeout=900)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert re.search(r"agent runs with ai-edge-litert 2\.\d+\.\d+", result.stdout)
    sent = re.search(r"sent ([\d.]+) MB in ([\d.]+) s", result.stdout)
    print(f"\nbootstrap: sent {sent.group(1)} MB in {sent.group(2)} s")

    after = run_cli("devices", "check", "--inventory", str(inventory), name)
    assert after.exit_code == 0 and "ai-edge-litert" in after.stdout and "lacks" not in after.stdout
    # Bootstrapping again sends nothing: the wheels are already there.
    again = run_cli("devices", "bootstrap", "--inventory", str(inventory), name, timeout=900)
    assert again.exit_code == 0 and "sent 0.0 MB" in again.stdout
