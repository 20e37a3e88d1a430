"""The lab itself: devices start fast, are separate machines as far as the
harness can tell, and leave no process behind, live sessions included."""

from __future__ import annotations

from harness.fleet.inventory import load_inventory
from harness.transport import open_transport
from tests.lab import processes_in_namespace


def test_teardown_leaves_no_process_even_with_live_sessions(ssh_lab, tmp_path):
    lab = ssh_lab(2)
    assert len({d.host for d in lab.devices}) == 2 and all(d.port == 2222 for d in lab.devices)
    namespaces = [d.namespace for d in lab.devices]
    assert all(namespaces)
    known_hosts = lab.known_hosts(tmp_path / "known_hosts")
    devices = load_inventory(lab.inventory(tmp_path / "inv.yaml", known_hosts=known_hosts)).devices
    transports = [open_transport(d) for d in devices]
    homes = [t.expand("~") for t in transports]
    assert homes == [str(d.home) for d in lab.devices]  # one home per device
    # A session that would outlive a plain `kill sshd` (re-parented).
    for t in transports:
        t.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 &"])
    assert all(len(processes_in_namespace(ns)) >= 2 for ns in namespaces)
    lab.stop()  # asserts inside; checked again here
    assert all(processes_in_namespace(ns) == [] for ns in namespaces)
    for t in transports:
        t.close()
