"""Fleet operations behind `harness devices`: probe, bootstrap, clean.

Each function takes devices and returns frozen results, one per device,
whatever happened on the others (a device that fails becomes a result with
its error, fabric-style); the CLI decides how to show them and the exit code.
"""

from __future__ import annotations

import posixpath
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

from harness.agent.client import AgentClient
from harness.device import Device
from harness.fleet.lock import DeviceLock
from harness.errors import HarnessError, HostKeyError, InfraError
from harness.transport import open_transport
from harness.transport.base import Transport

MIN_PYTHON = (3, 9)
# Wheels exist for these; 32-bit ARM stops at tflite-runtime 2.14 (numpy < 2).
LITERT_ARCHES = ("x86_64", "aarch64", "arm64")

T = TypeVar("T")


def fan_out(devices: Sequence[Device], work: Callable[[Device], T]) -> list[T]:
    """`work` on every device at once; results in the devices' order."""
    if not devices:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(devices)), thread_name_prefix="device") as pool:
        return list(pool.map(work, devices))


@dataclass(frozen=True)
class Probe:
    device: Device
    reachable: bool
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    # Why the device cannot be used (unreachable, untrusted, no python).
    error: str | None = None
    error_hint: str | None = None
    untrusted: bool = False

    @property
    def platform(self) -> dict[str, Any]:
        return self.info.get("platform") or {}

    def lacks(self) -> list[str]:
        """What stops the agent from benchmarking here, as fixes."""
        if not self.reachable or self.error:
            return []
        missing = []
        python = self.device.python
        version = self.platform.get("python") or "0"
        if tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) < MIN_PYTHON:
            missing.append(f"Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]} (found {version}): install a newer python3 "
                           "and point the inventory's `python:` at it")
        packages = []
        if not self.platform.get("numpy"):
            packages.append("numpy" if self.platform.get("arch") in LITERT_ARCHES else "'numpy<2'")
        if not self.info.get("runtime"):
            packages.append("ai-edge-litert" if self.platform.get("arch") in LITERT_ARCHES else "tflite-runtime")
        if packages:
            missing.append(
                f"{' and '.join(p.strip(chr(39)) for p in packages)}: run `harness devices bootstrap "
                f"{self.device.name}` (wheels fetched on this host, no network needed on the device), or on the "
                f"device `{python} -m pip install --user {' '.join(packages)}`"
            )
        edgetpu = self.info.get("edgetpu") or {}
        if edgetpu.get("present") and not edgetpu.get("library"):
            missing.append("libedgetpu for the Edge TPU found: install `libedgetpu1-std` from Coral's apt repository")
        return missing


def _python_preflight(transport: Transport, device: Device) -> str | None:
    """The agent needs a python; say so plainly rather than 'agent died'."""
    result = transport.run([device.python, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], timeout_s=60)
    if result.exit_status == 127 or (result.exit_status != 0 and "not found" in result.stderr_tail()):
        return f"python {device.python!r} not found on the device"
    if result.exit_status != 0:
        return f"python {device.python!r} does not run: {result.stderr_tail(3)}"
    major, minor = (int(p) for p in result.stdout.decode().strip().split("."))
    if (major, minor) < MIN_PYTHON:
        return f"python {device.python!r} is {major}.{minor}; the agent needs >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}"
    return None


def _reason(exc: HarnessError, device: Device) -> str:
    """The message without the `device 'x': ` prefix the tables already show."""
    prefix = f"device {device.name!r}: "
    return exc.message[len(prefix):] if exc.message.startswith(prefix) else exc.message


def probe(device: Device) -> Probe:
    start = time.perf_counter()
    transport = open_transport(device)
    try:
        try:
            if hasattr(transport, "connect"):
                transport.connect()  # type: ignore[attr-defined]
        except HostKeyError as exc:
            return Probe(device, False, time.perf_counter() - start, error=_reason(exc, device), error_hint=exc.hint, untrusted=True)
        except InfraError as exc:
            return Probe(device, False, time.perf_counter() - start, error=_reason(exc, device), error_hint=exc.hint)
        try:
            problem = _python_preflight(transport, device)
            if problem:
                return Probe(device, True, time.perf_counter() - start, error=problem,
                             error_hint="install python3 (>= 3.9) or set the inventory's `python:`")
            info = AgentClient(transport).info()
        except HarnessError as exc:
            return Probe(device, True, time.perf_counter() - start, error=_reason(exc, device), error_hint=exc.hint)
        return Probe(device, True, time.perf_counter() - start, info=info)
    finally:
        transport.close()


@dataclass(frozen=True)
class CleanResult:
    device: Device
    path: str | None
    error: str | None = None


def _safe_to_remove(path: str, home: str) -> bool:
    """Never `rm -rf` a home, a root, or a path we did not expand."""
    normal = posixpath.normpath(path)
    return normal.startswith("/") and normal.count("/") >= 2 and normal not in (home.rstrip("/"), "/")


def clean(device: Device) -> CleanResult:
    """Remove the device cache (agent, models, inputs, lock) under its lock."""
    transport = open_transport(device)
    path: str | None = None
    try:
        client = AgentClient(transport)
        path = client.cache_root
        home = transport.expand("~")
        if not _safe_to_remove(path, home):
            return CleanResult(device, path, error=f"refusing to remove {path!r}: not a cache folder (set cache_dir)")
        lock = DeviceLock(client, wait_s=0, command="devices clean")
        lock.acquire()  # never pull the cache from under a running benchmark
        result = transport.run(["rm", "-rf", "--", path], timeout_s=300)
        lock.held = False  # the lock file went with the cache
        if result.exit_status != 0:
            return CleanResult(device, path, error=f"rm failed: {result.stderr_tail(3)}")
        return CleanResult(device, path)
    except HarnessError as exc:
        return CleanResult(device, path, error=_reason(exc, device) + (f"\n    fix: {exc.hint}" if exc.hint else ""))
    finally:
        transport.close()
