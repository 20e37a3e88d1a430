"""Devices as frozen data: what a device is, not how to reach it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness import paths

LOCAL_DEVICE_NAME = "local"


@dataclass(frozen=True)
class Device:
    name: str
    profile: str
    kind: Literal["local", "ssh"]
    # The interpreter that runs the agent on the device.
    python: str
    threads: int | None = None
    # Cores the measurement is pinned to (None: the OS decides).
    cpus: tuple[int, ...] | None = None
    tags: tuple[str, ...] = ()
    # Per-user cache on the device for the agent, models and inputs.
    cache_dir: str = "~/.cache/edge-harness"
    host: str | None = None
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    # known_hosts file that verifies this device's host key (SSH only).
    known_hosts: str | None = None
    # The jump host this device is reached through (like ssh's ProxyJump):
    # an SSH Device of its own, with its own pinned key in `known_hosts`.
    gateway: "Device | None" = None
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # A sweep the inventory asks for (`threads: [1, 2]`, `runtimes: [...]`;
    # harness/measure/configs.py), and the interpreter that has a runtime
    # when it is not the device's `python` (`runtime_pythons:`).
    sweep_threads: tuple[int, ...] = ()
    runtimes: tuple[str, ...] = ()
    runtime_pythons: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


    @property
    def address(self) -> str:
        """`user@host:port` for messages; the name for the local device."""
        if self.kind == "local":
            return "this machine"
        return f"{self.user}@{self.host}:{self.port}"


def local_device(cache_dir: Path | None = None) -> Device:
    """This machine, always available without an inventory.

    Its agent runs under the harness's own interpreter, which the `runtime`
    extra gives a TFLite runtime.
    """
    # tflite-runtime 2.14 needs numpy < 2: it lives in a side virtualenv.
    side = paths.tflite214_python()
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge-harness" / "device"
    return Device(
        name=LOCAL_DEVICE_NAME,
        profile="x86-cpu",
        kind="local",
        python=sys.executable,
        cache_dir=str(cache_dir or default_cache),
        tags=("local",),
        runtime_pythons={"tflite-runtime": str(side)} if side else {},
    )
