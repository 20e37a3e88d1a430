"""Transports: how commands and files reach a device.

`open_transport` picks the implementation by the device's kind; paramiko is
imported only when an SSH device is actually opened.
"""

from __future__ import annotations

from harness.device import Device
from harness.errors import InfraError
from harness.transport.base import Transport


def open_transport(device: Device) -> Transport:
    """A transport for the device; SSH connects lazily, on first use."""
    if device.kind == "local":
        from harness.transport.local import LocalTransport

        return LocalTransport(device)
    if device.kind == "ssh":
        from harness.transport.ssh import SshTransport

        return SshTransport(device)
    raise InfraError(f"no transport for device kind {device.kind!r}", device=device.name)
