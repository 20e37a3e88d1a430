"""The device lock under concurrent controllers, on real lab devices."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from harness.agent.client import AgentClient
from harness.fleet.lock import DeviceLock
from harness.errors import DeviceBusy
from harness.fleet.inventory import load_inventory
from harness.transport import open_transport
from tests.conftest import REPO


@pytest.fixture(scope="module")
def inventory_path(module_lab, tmp_path_factory):
    root = tmp_path_factory.mktemp("inv")
    known_hosts = module_lab.known_hosts(root / "known_hosts")
    return module_lab.inventory(root / "inventory.yaml", known_hosts=known_hosts)


@pytest.fixture
def device(inventory_path):
    return load_inventory(inventory_path).devices[0]


@pytest.fixture
def controllers(device):
    """Independent controllers: one SSH connection and one lock token each."""
    opened = []

    def make(**kwargs) -> DeviceLock:
        transport = open_transport(device)
        opened.append(transport)
        return DeviceLock(AgentClient(transport), **kwargs)

    yield make
    for transport in opened:
        transport.close()


def test_second_controller_is_refused_until_the_first_releases(controllers):
    first, second = controllers(), controllers()
    first.acquire()
    try:
        with pytest.raises(DeviceBusy) as err:
            second.acquire()
        message = err.value.render()
        assert "locked by" in message and f"pid {first.owner['pid']}" in message and "expires in" in message
        first.renew()  # the holder may renew
    finally:
        first.release()
    second.acquire()
    second.release()


def test_expired_lock_of_a_crashed_controller_is_taken_over(controllers):
    crashed = controllers(expiry_s=0.6)
    crashed.acquire()  # and never releases
    waiting = controllers(wait_s=10)
    start = time.monotonic()
    waiting.acquire()
    assert 0.3 < time.monotonic() - start < 8
    with pytest.raises(DeviceBusy, match="lost the device lock"):
        crashed.renew()
    waiting.release()


def test_lock_of_a_dead_process_on_this_machine_is_taken_at_once(inventory_path, controllers):
    script = f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        from harness.agent.client import AgentClient
        from harness.fleet.lock import DeviceLock
        from harness.fleet.inventory import load_inventory
        from harness.transport import open_transport
        lock = DeviceLock(AgentClient(open_transport(load_inventory({str(inventory_path)!r}).devices[0])), expiry_s=3600)
        lock.acquire()
        os._exit(0)  # a crash: the lock stays for an hour
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True, timeout=60)
    start = time.monotonic()
    survivor = controllers(wait_s=0)
    survivor.acquire()
    assert time.monotonic() - start < 5
    survivor.release()


HOLDER = """
import json, sys, time
sys.path.insert(0, {repo!r})
from harness.agent.client import AgentClient
from harness.fleet.lock import DeviceLock
from harness.fleet.inventory import load_inventory
from harness.transport import open_transport
transport = open_transport(load_inventory({inventory!r}).devices[0])
lock = DeviceLock(AgentClient(transport), wait_s=60)
intervals = []
for _ in range(3):
    lock.acquire()
    start = time.time()
    time.sleep(0.3)  # "benchmarking"
    intervals.append((start, time.time()))
    lock.release()
print(json.dumps(intervals))
"""


def test_two_controller_processes_never_hold_the_device_together(inventory_path):
    code = HOLDER.format(repo=str(REPO), inventory=str(inventory_path))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    intervals = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        intervals += json.loads(out)
    intervals.sort()
    assert len(intervals) == 6
    for (_, end), (start, _) in zip(intervals, intervals[1:]):
        assert start >= end, f"two controllers held the lock together: {intervals}"
