"""Fault injection on lab devices (tests/lab.py): what the kernel here
offers (measured on the project's hosts: nftables in a network namespace, `tc tbf`, cgroup v1
memory, tmpfs), and how a test sees a device's processes and files."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from tests.lab import LabDevice, processes_in_namespace

CGROUP_V1_MEMORY = Path("/sys/fs/cgroup/memory")


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    """Poll a condition (not a sleep standing in for one) with a deadline."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)
    return value


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def agent_pids(device: LabDevice) -> list[int]:
    """Agent processes running on the device (its PID namespace)."""
    if device.namespace is None:
        return []
    return [pid for pid in processes_in_namespace(device.namespace) if "/agent-" in _cmdline(pid)]


def benchmarking(device: LabDevice) -> bool:
    """An agent on the device has the TFLite runtime loaded: it is measuring
    (hash and lock calls never import the runtime)."""
    for pid in agent_pids(device):
        try:
            if "litert" in Path(f"/proc/{pid}/maps").read_text():
                return True
        except OSError:
            continue
    return False


def no_agent_left(device: LabDevice, timeout_s: float = 10.0) -> None:
    wait_for(lambda: not agent_pids(device), timeout_s, f"the agent processes on {device.name} to end")


def netns_run(device: LabDevice, *argv: str) -> None:
    assert device.netns, "fault needs an isolated lab device (its own network namespace)"
    subprocess.run(["ip", "netns", "exec", device.netns, *argv], check=True, capture_output=True)


def nft(device: LabDevice, script: str) -> None:
    """nftables rules inside the device's network namespace only."""
    assert device.netns
    subprocess.run(["ip", "netns", "exec", device.netns, "nft", "-f", "-"], input=script.encode(), check=True,
                   capture_output=True)


def drop_everything(device: LabDevice) -> None:
    """The device goes silent: every packet in or out is dropped, no RST."""
    nft(device, "table inet silent {\n chain in { type filter hook input priority 0; policy drop; }\n"
                " chain out { type filter hook output priority 0; policy drop; }\n}\n")


def random_loss(device: LabDevice, percent: int) -> None:
    nft(device, f"table inet lossy {{\n chain in {{ type filter hook input priority 0; numgen random mod 100 < {percent} drop; }}\n"
                f" chain out {{ type filter hook output priority 0; numgen random mod 100 < {percent} drop; }}\n}}\n")


def device_link(device: LabDevice) -> str:
    out = subprocess.run(["ip", "-n", device.netns, "-o", "link", "show", "type", "veth"], capture_output=True,
                         text=True, check=True).stdout
    return out.split(":")[1].strip().split("@")[0]


def rate_limit(device: LabDevice, rate: str) -> None:
    """`tc tbf` on the device's side of the link (no netem in this kernel)."""
    netns_run(device, "tc", "qdisc", "add", "dev", device_link(device), "root", "tbf", "rate", rate,
              "burst", "4kb", "latency", "400ms")


def tools_missing(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


class DelayRelay:
    """A user-space TCP relay that holds every chunk `delay_s` before
    forwarding it (the kernel here has no netem): point a device's inventory
    entry at relay.port on 127.0.0.1."""

    def __init__(self, target: tuple[str, int], delay_s: float) -> None:
        self.target = target
        self.delay_s = delay_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, target: Callable, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            server = socket.create_connection(self.target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._spawn(self._pump, client, server)
            self._spawn(self._pump, server, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                chunk = source.recv(65536)
                if not chunk:
                    break
                time.sleep(self.delay_s)  # the injected delay itself, not synchronisation
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for thread in self._threads:
            thread.join(timeout=5)


class MemoryCgroup:
    """A cgroup v1 memory limit (cgroup v2 has no memory controller here:
    measured on the project's hosts). Processes that write their pid to `procs` are OOM-killed
    past the limit."""

    def __init__(self, limit_bytes: int) -> None:
        self.path = CGROUP_V1_MEMORY / f"eh-faults-{uuid.uuid4().hex[:8]}"
        self.path.mkdir()
        (self.path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        swap = self.path / "memory.memsw.limit_in_bytes"
        if swap.exists():
            swap.write_text(str(limit_bytes))

    @staticmethod
    def available() -> bool:
        return (CGROUP_V1_MEMORY / "memory.limit_in_bytes").exists()

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def oom_kills(self) -> int:
        for line in (self.path / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def remove(self) -> None:
        wait_for(lambda: not self.procs.read_text().strip(), 10, "the cgroup to empty")
        self.path.rmdir()
