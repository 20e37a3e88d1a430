"""A device reachable only through a gateway (jump host), over paramiko
direct-tcpip channels, with both host keys pinned.

Topology (made by the test, as the offline bootstrap test does): one network
namespace holds two real sshd. The gateway listens on the namespace's veth
address (10.237.X.2), which the host reaches; the device listens on the
namespace's own 127.0.0.1, which only processes inside the namespace, the
gateway's sshd among them, can reach. The host's 127.0.0.1 is a different
loopback, so there is no direct route to the device at all: a namespace
rather than a refused port, because a refusal rule can be wrong silently
while a separate loopback cannot be reached by accident.

The two-hop chain adds a second namespace behind the first: the inner
gateway listens on its veth address (10.238.X.2), which only the first
namespace routes to, and the device on the second namespace's loopback, so
host -> lab-gw -> inner-gw -> device is the only path there is.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import _require_sshd
from tests.lab import Lab, keygen

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway_lab(tmp_path_factory):
    _require_sshd()
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (`ip netns`)")
    lab = Lab(tmp_path_factory.mktemp("gateway-lab"), 2)
    gateway, device = lab.devices
    gateway.name, gateway.isolated = "lab-gw", True
    device.name = "behind-a"
    try:
        gateway.prepare()
        gateway.start(set())
        device.prepare()
        device.netns, device.owns_netns, device.host = gateway.netns, False, "127.0.0.1"
        assert device._try_start(), (device.root / "sshd.log").read_text()
        yield lab
    finally:
        device.kill()
        gateway.kill()


def _inventory(lab: Lab, tmp_path, known_hosts, gateway: str | None):
    gw, device = lab.devices
    entry = {"host": device.host, "port": device.port, "user": device.user, "identity_file": str(lab.client_key),
             "profile": "x86-cpu", "python": "python3"}
    if gateway is not None:
        entry["gateway"] = gateway
    path = tmp_path / f"inventory-{'gw' if gateway else 'direct'}.yaml"
    path.write_text(yaml.safe_dump({"known_hosts": str(known_hosts), "devices": {device.name: entry}}))
    return path


def test_run_through_gateway_measures_every_pair_and_refuses_a_changed_gateway_key(
    gateway_lab, tiny_recipe, run_cli, tmp_path
):
    lab = gateway_lab
    gw, device = lab.devices
    known_hosts = tmp_path / "known_hosts"
    spec = f"{gw.user}@{gw.host}:{gw.port}"
    inventory = _inventory(lab, tmp_path, known_hosts, spec)
    # `devices trust` pins the gateway first, then the device through it.
    trusted = run_cli("devices", "trust", "--inventory", str(inventory), "--yes", device.name)
    assert trusted.exit_code == 0, trusted.stdout + trusted.stderr
    assert known_hosts.read_text() == lab.known_hosts(tmp_path / "expected_known_hosts").read_text()

    # Without the gateway the device cannot be reached (or is someone else).
    direct = run_cli("devices", "check", "--inventory", str(_inventory(lab, tmp_path, known_hosts, None)), device.name)
    assert direct.exit_code == 3, direct.stdout + direct.stderr

    result = run_cli("run", "--inventory", str(inventory), "--model", str(tiny_recipe), "--devices", device.name,
                     "--variants", "fp32,int8", records_only=True)
    assert result.exit_code == 0, result.stdout + result.stderr
    (results,) = (tmp_path / "reports").glob("*/results.json")
    records = json.loads(results.read_text())["records"]
    assert sorted((r["device"]["name"], r["model"]["variant"], r["status"]) for r in records) == [
        (device.name, "fp32", "ok"), (device.name, "int8", "ok")
    ]

    # The device goes down: the gateway is reached, the hop to the device is not.
    device.kill()
    down = run_cli("devices", "check", "--inventory", str(inventory), device.name)
    assert down.exit_code == 3 and "Traceback" not in down.stderr, down.stdout + down.stderr
    assert f"cannot reach {device.name} through {gw.host}" in " ".join((down.stdout + down.stderr).split()), \
        down.stdout + down.stderr

    # The gateway is reinstalled: a new host key. Refused before anything runs.
    # Same namespace and address; the device behind it keeps running.
    gw.owns_netns = False
    gw.kill()
    gw.owns_netns = True
    gw.host_key.unlink()
    (gw.root / "host_ed25519.pub").unlink()
    keygen(gw.host_key, "lab-gw-reinstalled")
    assert gw._try_start(), (gw.root / "sshd.log").read_text()
    changed = run_cli("devices", "check", "--inventory", str(inventory), device.name)
    assert changed.exit_code == 3, changed.stdout + changed.stderr
    text = changed.stdout + changed.stderr
    assert "Traceback" not in text
    assert "HOST KEY CHANGED" in text and "the gateway offered" in text, text
    assert f"ssh-keygen -f {known_hosts} -R '[{gw.host}]:{gw.port}'" in text, text


@pytest.fixture
def chain_lab(tmp_path_factory):
    """lab-gw in namespace A (reached from the host), inner-gw in namespace
    B (reached from A only), the device on B's loopback (reached from B only)."""
    _require_sshd()
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (`ip netns`)")
    lab = Lab(tmp_path_factory.mktemp("chain-lab"), 3)
    outer, inner, device = lab.devices
    outer.name, outer.isolated, inner.name, device.name = "lab-gw", True, "inner-gw", "behind-b"
    inner_ns = None
    try:
        outer.prepare()
        outer.start(set())
        subnet = outer.host.split(".")[2]  # namespace A's number is ours: so is 10.238.X
        inner_ns = f"{outer.netns}-b"
        a_if, b_if = f"ehj{subnet}", f"ehk{subnet}"
        for argv in (
            ["ip", "netns", "add", inner_ns],
            ["ip", "-n", outer.netns, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", inner_ns],
            ["ip", "-n", outer.netns, "addr", "add", f"10.238.{subnet}.1/30", "dev", a_if],
            ["ip", "-n", outer.netns, "link", "set", a_if, "up"],
            ["ip", "-n", inner_ns, "addr", "add", f"10.238.{subnet}.2/30", "dev", b_if],
            ["ip", "-n", inner_ns, "link", "set", b_if, "up"],
            ["ip", "-n", inner_ns, "link", "set", "lo", "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True)
        for lab_device, host in ((inner, f"10.238.{subnet}.2"), (device, "127.0.0.1")):
            lab_device.prepare()
            lab_device.netns, lab_device.owns_netns, lab_device.host = inner_ns, False, host
            assert lab_device._try_start(), (lab_device.root / "sshd.log").read_text()
        yield lab
    finally:
        device.kill()
        inner.kill()
        outer.kill()  # deletes namespace A and the A-B veth pair with it
        if inner_ns is not None:
            subprocess.run(["ip", "netns", "del", inner_ns], capture_output=True)


def test_a_proxyjump_chain_from_the_ssh_config_pins_every_hop_and_names_the_hop_that_fails(chain_lab, run_cli, tmp_path):
    lab = chain_lab
    outer, inner, device = lab.devices
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host {device.name}\n  HostName {device.host}\n  Port {device.port}\n  ProxyJump lab-gw,inner-gw\n"
        f"Host lab-gw\n  HostName {outer.host}\n  Port {outer.port}\n  User {outer.user}\n"
        f"Host inner-gw\n  HostName {inner.host}\n  Port {inner.port}\n"
    )
    known_hosts = tmp_path / "known_hosts"
    inventory = tmp_path / "inventory.yaml"
    entry = {"host": device.name, "user": device.user, "identity_file": str(lab.client_key),
             "profile": "x86-cpu", "python": "python3"}
    inventory.write_text(yaml.safe_dump({"ssh_config": str(config), "known_hosts": str(known_hosts),
                                         "devices": {device.name: entry}}))
    # Each hop's key is fetched through the hops before it, so a wrong order
    # fails here; the file holds each hop once, in chain order.
    trusted = run_cli("devices", "trust", "--inventory", str(inventory), "--yes", device.name)
    assert trusted.exit_code == 0, trusted.stdout + trusted.stderr
    assert known_hosts.read_text() == lab.known_hosts(tmp_path / "expected", [outer, inner, device]).read_text()

    checked = run_cli("devices", "check", "--inventory", str(inventory), device.name)
    assert checked.exit_code == 0, checked.stdout + checked.stderr

    # The inner hop goes down: the outer one is reached, the inner one is not.
    inner.kill()
    down = run_cli("devices", "check", "--inventory", str(inventory), device.name)
    text = " ".join((down.stdout + down.stderr).split())
    assert down.exit_code == 3 and "Traceback" not in text, text
    assert f"cannot reach {device.name} through inner-gw: cannot reach inner-gw through lab-gw" in text, text
