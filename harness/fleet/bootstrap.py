"""`harness devices bootstrap NAME`: make a device with a bare Python run the
agent, without the device ever reaching a package index.

1. Ask the device's python what it is: version, architecture, glibc, and
   whether it has the venv module.
2. On the host, `pip download` the wheels that fit it (--only-binary,
   --platform manylinux_2_17 … manylinux_2_<glibc>, --python-version,
   --implementation cp): ai-edge-litert where it has a wheel for that
   platform, else tflite-runtime 2.14 with numpy < 2 (its numpy bound), plus
   pip itself (a wheel runs as `python pip.whl/pip`, so the device needs no pip).
   Downloads are cached per platform under the harness cache.
3. Push them into the device cache (content-addressed, verified by sha256),
   create a venv there (`python -m venv --without-pip`), install with
   `--no-index --find-links`, and run the agent's `info` with the venv's python.

Afterwards the harness runs the agent with that venv's python (AgentClient
finds it by the device's `python:`), so the inventory needs no change.

Two inventory names can reach one filesystem (an alias of one board, homes
on one NFS share): steps 3 and the check after it hold the device lock (the
lock file lives in that same cache), so a second bootstrap or a run waits
rather than finding the venv half rebuilt; a venv already built from the
same wheels is kept. On the host, one download per platform folder at a
time (flock), for the same reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import posixpath
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from harness.agent.client import AgentClient, file_sha256, venv_dir
from harness.device import Device
from harness.errors import HarnessError, InfraError
from harness.fleet.lock import DeviceLock
from harness.transport import open_transport
from harness.transport.base import Transport

LITERT = "ai-edge-litert"
TFLITE_RUNTIME = ("tflite-runtime==2.14.*", "numpy<2")
PIP = "pip"
_DESCRIBE = (
    "import json, platform, sys, importlib.util as u; "
    "print(json.dumps({'python': '%d.%d' % sys.version_info[:2], 'machine': platform.machine(), "
    "'libc': platform.libc_ver(), 'venv': u.find_spec('venv') is not None}))"
)
# manylinux_2_17 is the oldest tag the runtimes publish (manylinux2014).
MIN_GLIBC_MINOR = 17
# How long a bootstrap waits for another one (or a run) on the same board.
LOCK_WAIT_S = 1800.0
# In the venv: the wheels it was built from, so an identical one is kept.
VENV_MARKER = "edge-harness-wheels.json"


@dataclass(frozen=True)
class Target:
    python: str  # "3.11"
    machine: str  # "aarch64"
    glibc: tuple[int, int] | None
    has_venv: bool

    def platforms(self) -> list[str]:
        arch = {"arm64": "aarch64", "armv8l": "armv7l"}.get(self.machine, self.machine)
        major, minor = self.glibc or (2, MIN_GLIBC_MINOR)
        tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, MIN_GLIBC_MINOR - 1, -1)]
        return [*tags, f"manylinux2014_{arch}", f"linux_{arch}"]

    @property
    def key(self) -> str:
        glibc = "%d.%d" % self.glibc if self.glibc else "unknown"
        return f"cp{self.python.replace('.', '')}-{self.machine}-glibc{glibc}"


@dataclass(frozen=True)
class BootstrapResult:
    device: Device
    ok: bool
    python: str | None = None
    runtime: str | None = None
    wheels: tuple[str, ...] = ()
    bytes_uploaded: int = 0
    seconds: float = 0.0
    error: str | None = None
    hint: str | None = None
    steps: tuple[str, ...] = field(default=())


def describe(client: AgentClient) -> Target:
    device = client.device
    result = client.transport.run([device.python, "-I", "-c", _DESCRIBE], timeout_s=120)
    if result.exit_status != 0:
        raise InfraError(f"python {device.python!r} does not run: {result.stderr_tail(3)}", device=device.name,
                         hint="install python3 (>= 3.9) on the device or set the inventory's `python:`")
    info = json.loads(result.stdout.decode().strip().splitlines()[-1])
    libc_name, libc_version = info["libc"]
    glibc = None
    if libc_name == "glibc" and libc_version:
        parts = libc_version.split(".")
        glibc = (int(parts[0]), int(parts[1]))
    return Target(info["python"], info["machine"], glibc, bool(info["venv"]))


def download_wheels(target: Target, cache: Path) -> tuple[list[Path], str]:
    """Wheels for the target in a per-platform folder; returns them and the
    requirement set that fitted."""
    folder = cache / "device-wheels" / target.key
    folder.mkdir(parents=True, exist_ok=True)
    with _host_lock(folder / ".lock"):
        return _download_locked(target, folder)


@contextlib.contextmanager
def _host_lock(path: Path) -> Iterator[None]:
    """Two bootstraps on this machine share the download folder: one
    pip download there at a time (the other then finds it complete)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released as the file closes, on any exit
        yield


def _download_locked(target: Target, folder: Path) -> tuple[list[Path], str]:
    marker = folder / "requirements.json"
    if marker.is_file():
        chosen = json.loads(marker.read_text())
        wheels = [folder / name for name in chosen["wheels"]]
        if all(w.is_file() for w in wheels):
            return wheels, chosen["requirements"]
    if target.glibc is None:
        raise InfraError(
            "the device's C library is not glibc: no manylinux wheel of a TFLite runtime fits",
            hint="use a glibc-based OS image (Raspberry Pi OS, Debian, Ubuntu, Mendel)",
        )
    errors = []
    for requirements in ([LITERT], list(TFLITE_RUNTIME)):
        before = {p.name for p in folder.glob("*.whl")}
        failure = _pip_download(target, [*requirements, PIP], folder)
        if failure is None:
            wheels = sorted(folder.glob("*.whl"))
            names = [w.name for w in wheels if _wanted(w.name, requirements)]
            marker.write_text(json.dumps({"requirements": " ".join(requirements), "wheels": names}))
            return [folder / n for n in names], " ".join(requirements)
        errors.append(f"{' '.join(requirements)}: {failure}")
        for stray in set(p.name for p in folder.glob("*.whl")) - before:
            (folder / stray).unlink()
    raise InfraError(
        f"no TFLite runtime wheel fits Python {target.python} on {target.machine} (glibc "
        f"{'%d.%d' % target.glibc}): " + " | ".join(errors),
        hint="install a Python the runtimes publish wheels for (3.9-3.12 on x86_64/aarch64; 3.9-3.11 for tflite-runtime)",
    )


def _wanted(name: str, requirements: list[str]) -> bool:
    """Every downloaded wheel belongs to the set (pip resolved the deps);
    a wheel of the other runtime left from an earlier try does not."""
    other = "tflite_runtime" if requirements == [LITERT] else "ai_edge_litert"
    return not name.startswith(other)


def _pip_download(target: Target, requirements: list[str], folder: Path) -> str | None:
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet", "--only-binary=:all:",
            "--implementation", "cp", "--python-version", target.python, "--dest", str(folder)]
    for platform_tag in target.platforms():
        argv += ["--platform", platform_tag]
    result = subprocess.run([*argv, *requirements], capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return None
    lines = [ln for ln in result.stderr.splitlines() if "ERROR" in ln]
    return (lines[0] if lines else result.stderr.strip()[-300:]) or f"pip exited {result.returncode}"


def bootstrap(device: Device, cache: Path) -> BootstrapResult:
    started = time.perf_counter()
    transport = open_transport(device)
    steps: list[str] = []
    try:
        client = AgentClient(transport)
        target = describe(client)
        steps.append(f"device python {target.python} on {target.machine}, glibc "
                     f"{'%d.%d' % target.glibc if target.glibc else '?'}")
        wheels, requirements = download_wheels(target, cache)
        steps.append(f"host downloaded {requirements} + deps: {len(wheels)} wheels, "
                     f"{sum(w.stat().st_size for w in wheels) / 1e6:.1f} MB")
        with DeviceLock(client, wait_s=LOCK_WAIT_S, command="bootstrap"):
            info = _push_and_install(client, target, wheels, requirements, steps)
        runtime = info.get("runtime")
        if not runtime:
            raise InfraError(f"the agent runs but finds no runtime: {info.get('runtime_error')}", device=device.name)
        return BootstrapResult(
            device, True, python=client.python, runtime=f"{runtime['name']} {runtime['version']}",
            wheels=tuple(w.name for w in wheels), bytes_uploaded=transport.bytes_uploaded,
            seconds=time.perf_counter() - started, steps=tuple(steps),
        )
    except HarnessError as exc:
        return BootstrapResult(device, False, error=exc.message, hint=exc.hint, seconds=time.perf_counter() - started,
                               bytes_uploaded=transport.bytes_uploaded, steps=tuple(steps))
    finally:
        transport.close()


def _push_and_install(client: AgentClient, target: Target, wheels: list[Path], requirements: str,
                      steps: list[str]) -> dict:
    """Wheels into the device cache, the venv from them (unless one from the
    same wheels is there), and the agent's `info` from it; under the lock."""
    transport, device = client.transport, client.device
    remote_dir = posixpath.join(client.cache_root, "wheels", target.key)
    for wheel in wheels:
        client.ensure_named_file(wheel, file_sha256(wheel), posixpath.join(remote_dir, wheel.name))
    steps.append(f"pushed to {remote_dir} ({transport.bytes_uploaded / 1e6:.1f} MB sent)")
    venv = venv_dir(client.cache_root, device.python)
    python = posixpath.join(venv, "bin", "python")
    built_from = json.dumps(sorted(f"{w.name}:{file_sha256(w)}" for w in wheels))
    marker = posixpath.join(venv, VENV_MARKER)
    if _read_remote(transport, marker) == built_from:
        steps.append(f"kept {venv} (built from these wheels)")
    else:
        _install(client, target, venv, remote_dir, wheels, requirements)
        _write_remote(client, marker, built_from)
        steps.append(f"installed into {venv}")
    client.use_python(python)
    return client.info()


def _read_remote(transport: Transport, path: str) -> str | None:
    result = transport.run(["cat", "--", path], timeout_s=60)
    return result.stdout.decode(errors="replace") if result.exit_status == 0 else None


def _write_remote(client: AgentClient, path: str, text: str) -> None:
    """The marker is written last: a venv whose install broke off has none."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / VENV_MARKER
        local.write_text(text)
        client.transport.put(local, path)


def _install(client: AgentClient, target: Target, venv: str, remote_dir: str, wheels: list[Path], requirements: str) -> None:
    transport, device = client.transport, client.device
    if not target.has_venv:
        raise InfraError(
            f"python {device.python!r} has no venv module", device=device.name,
            hint="install the OS package that provides it (python3-venv on Debian) from local media, or point `python:` at another interpreter",
        )
    pip_wheel = next(w for w in wheels if w.name.startswith("pip-"))
    python = posixpath.join(venv, "bin", "python")
    steps = [
        [device.python, "-I", "-m", "venv", "--without-pip", "--clear", venv],
        # pip runs from its wheel (zipimport); no -I, which would hide the wheel from sys.path.
        [python, posixpath.join(remote_dir, pip_wheel.name, "pip"), "install", "--quiet", "--no-index",
         "--disable-pip-version-check", "--no-cache-dir", "--find-links", remote_dir, *requirements.split()],
    ]
    for argv in steps:
        result = transport.run(argv, timeout_s=1800)
        if result.exit_status != 0:
            raise InfraError(
                f"`{' '.join(argv[:4])} …` failed on the device (exit {result.exit_status}): {result.stderr_tail(5)}",
                device=device.name, command=" ".join(argv), exit_status=result.exit_status,
            )

