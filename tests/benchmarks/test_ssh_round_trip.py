"""One command's round trip over the SSH transport, against starting the same
command locally, interleaved in one run (shared machines move both together).

Measured here: paramiko's own socket costs ~47 ms a command (Nagle + delayed
ACK); the transport's TCP_NODELAY socket ~3 ms, a local `true` ~1 ms. A
regression to Nagle shows up as a ratio of tens, not a few.
"""

from __future__ import annotations

import statistics
import time

from harness.device import Device
from harness.fleet.inventory import load_inventory
from harness.transport import open_transport
from harness.transport.local import LocalTransport
from tests.benchmarks.conftest import RATIOS

ROUNDS = 30


def test_ssh_round_trip_vs_a_local_command(benchmark, ssh_lab, tmp_path):
    lab = ssh_lab(1)
    known_hosts = lab.known_hosts(tmp_path / "known_hosts")
    (device,) = load_inventory(lab.inventory(tmp_path / "inventory.yaml", known_hosts=known_hosts)).devices
    ssh = open_transport(device)
    local = LocalTransport(Device(name="local", profile="x86-cpu", kind="local", python="python3"))
    ssh.run(["true"])  # connect once: the connection is reused by every command after
    session = ssh._client.get_transport()
    local_s: list[float] = []

    def one_round() -> None:
        ssh.run(["true"])
        start = time.perf_counter()
        local.run(["true"])
        local_s.append(time.perf_counter() - start)

    try:
        benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
        assert ssh._client.get_transport() is session  # one connection, not one per command
    finally:
        ssh.close()
    # A round is one SSH command and one local command; the SSH share is the rest.
    ssh_s = benchmark.stats.stats.median - statistics.median(local_s)
    ratio = ssh_s / statistics.median(local_s)
    RATIOS["SSH command round trip / local command"] = ratio
    benchmark.extra_info.update({"ssh_round_trip_ms": ssh_s * 1000, "ratio_to_local": ratio})
    assert ratio < 15, f"an SSH command takes {ssh_s * 1000:.1f} ms, {ratio:.1f}x a local one (Nagle back on?)"
