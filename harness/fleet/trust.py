"""Host trust: record a device's host key on first contact, explicitly.

`harness devices trust NAME` fetches the key offered by the device (a key
exchange only: no authentication, nothing runs there), shows its OpenSSH
fingerprint and, once the user accepts, appends one line to known_hosts.
A key that differs from the recorded one is never overwritten here: the user
removes the old line on purpose (`ssh-keygen -R`) before trusting again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import paramiko

from harness.device import Device
from harness.errors import DeviceUnreachable, HostKeyError
from harness.transport.ssh import (
    CONNECT_TIMEOUT_S,
    fingerprint_sha256,
    known_hosts_name,
    open_gateway_channel,
    open_socket,
    retrust_hint,
)

TrustState = Literal["new", "trusted", "changed"]


@dataclass(frozen=True)
class HostKeyCheck:
    device: Device
    known_hosts: Path
    name: str  # as written in known_hosts: host or [host]:port
    key: paramiko.PKey
    state: TrustState

    @property
    def key_type(self) -> str:
        return self.key.get_name()

    @property
    def fingerprint(self) -> str:
        return fingerprint_sha256(self.key)


def _known_hosts(device: Device) -> Path:
    return Path(device.known_hosts or "~/.ssh/known_hosts").expanduser()


def _recorded_keys(known_hosts: Path, name: str) -> dict[str, paramiko.PKey]:
    if not known_hosts.is_file():
        return {}
    try:
        entries = paramiko.HostKeys(str(known_hosts)).lookup(name)
    except (OSError, paramiko.SSHException) as exc:
        raise HostKeyError(f"cannot read {known_hosts}: {exc}", hint="fix or move the file") from None
    return dict(entries) if entries else {}


def fetch_host_key(device: Device, *, timeout_s: float = CONNECT_TIMEOUT_S) -> HostKeyCheck:
    """The key the device offers now, compared with known_hosts."""
    known_hosts = _known_hosts(device)
    name = known_hosts_name(device.host or "", device.port or 22)
    recorded = _recorded_keys(known_hosts, name)
    # Behind a gateway the key exchange runs over the gateway's channel, so
    # the gateway must be trusted first (`devices trust` does it in order).
    hop, sock = open_gateway_channel(device, timeout_s) if device.gateway is not None else (None, open_socket(device, timeout_s))
    session = paramiko.Transport(sock)
    try:
        if recorded:
            # Ask for the recorded key type first, as ssh does, so a host with
            # several keys is compared like for like.
            options = session.get_security_options()
            wanted = [t for t in options.key_types if t in recorded or (t.startswith("rsa-sha2") and "ssh-rsa" in recorded)]
            options.key_types = wanted + [t for t in options.key_types if t not in wanted]
        session.banner_timeout = timeout_s
        session.start_client(timeout=timeout_s)
        key = session.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise DeviceUnreachable(f"SSH key exchange with {device.address} failed: {exc}", device=device.name) from None
    finally:
        session.close()
        sock.close()
        if hop is not None:
            hop.close()
    if not recorded:
        state: TrustState = "new"
    elif any(k.get_name() == key.get_name() and k.asbytes() == key.asbytes() for k in recorded.values()):
        state = "trusted"
    else:
        state = "changed"
    return HostKeyCheck(device, known_hosts, name, key, state)


def changed_key_error(check: HostKeyCheck) -> HostKeyError:
    recorded = _recorded_keys(check.known_hosts, check.name)
    was = ", ".join(f"{k.get_name()} {fingerprint_sha256(k)}" for k in recorded.values())
    return HostKeyError(
        f"HOST KEY CHANGED for {check.name}: the device now offers {check.key_type} {check.fingerprint}, "
        f"{check.known_hosts} has {was}. Refused and left unchanged. This is what a man-in-the-middle "
        "looks like, or the device was reinstalled",
        device=check.device.name,
        changed=True,
        hint=retrust_hint(check.device),
    )


def record_host_key(check: HostKeyCheck) -> None:
    """Append one known_hosts line; never rewrites existing lines."""
    if check.state == "changed":
        raise changed_key_error(check)
    if check.state == "trusted":
        return
    path = check.known_hosts
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{check.name} {check.key_type} {check.key.get_base64()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        if handle.tell() > 0 and not path.read_bytes().endswith(b"\n"):
            handle.write("\n")
        handle.write(line)
