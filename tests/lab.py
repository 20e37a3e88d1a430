"""The test device lab: real OpenSSH servers on loopback addresses.

Each lab device is one `sshd -D` on 127.0.0.N:2222 with its own host key,
authorized key, PidFile, HOME and PATH (a bin folder whose `python3` runs
this venv's interpreter). Facts measured on the project's hosts that shaped it (docs/testing.md):

- sshd needs /run/sshd (root, 0755) and, with keys under /tmp, StrictModes no.
- killing the listening sshd leaves live sessions behind (re-parented), so
  each device runs under `unshare --pid --fork --kill-child=SIGKILL`: killing
  that one process kills the PID namespace, sessions included.
- readiness is the `SSH-` banner, polled; no sleeps as synchronisation.
- SetEnv SHLVL=1 skips root's slow ~/.bashrc init; SetEnv HOME gives every
  device its own home, so `~/.cache/edge-harness` differs per device like it
  would on separate machines.

Other engineers may run a lab on this machine at the same time, so a device
takes the next loopback address whose port 2222 is free.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
LAB_PORT = 2222
READY_TIMEOUT_S = 10.0
FIRST_HOST = 2
LAST_HOST = 250


def sshd_available() -> bool:
    return Path(SSHD).is_file() and shutil.which("unshare") is not None and shutil.which("ssh-keygen") is not None


def keygen(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


def _port_free(host: str, port: int) -> bool:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _banner_ready(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as conn:
            return conn.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def processes_in_namespace(namespace: str) -> list[int]:
    """Live (non-zombie) processes whose PID namespace is `namespace`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        if _pid_namespace(int(entry)) != namespace:
            continue
        try:
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.append(int(entry))
    return found


@dataclass
class LabDevice:
    name: str
    root: Path
    client_key: Path
    host: str = ""
    port: int = LAB_PORT
    user: str = field(default_factory=getpass.getuser)
    process: subprocess.Popen | None = None
    namespace: str | None = None
    # The device's `python3`: a shell script body; default runs this venv's
    # interpreter. The emulated Pi's runs aarch64 CPython under qemu-user.
    python3_script: str | None = None
    # Run in its own network namespace, reachable only over a veth pair
    # from the host (10.237.X.2), with no route anywhere else.
    isolated: bool = False
    netns: str | None = None
    # False for a device started inside another device's namespace (the
    # host behind a gateway): the namespace is its owner's to delete.
    owns_netns: bool = True

    @property
    def host_key(self) -> Path:
        return self.root / "host_ed25519"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def known_hosts_line(self) -> str:
        keytype, key = (self.root / "host_ed25519.pub").read_text().split()[:2]
        return f"[{self.host}]:{self.port} {keytype} {key}\n"

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)
        self.bin_dir.mkdir(exist_ok=True)
        if not self.host_key.exists():
            keygen(self.host_key, f"lab-{self.name}")
        authorized = self.root / "authorized_keys"
        authorized.write_text(Path(str(self.client_key) + ".pub").read_text())
        python3 = self.bin_dir / "python3"
        python3.write_text(self.python3_script or f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        python3.chmod(0o755)

    def _write_config(self) -> Path:
        config = self.root / "sshd_config"
        path_env = f"{self.bin_dir}:/usr/local/bin:/usr/bin:/bin"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.host}:{self.port}",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "Subsystem sftp internal-sftp",
                    f"SetEnv SHLVL=1 PATH={path_env} HOME={self.home}",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        return config

    def start(self, taken: set[str]) -> None:
        """Start on the first free loopback address not in `taken`."""
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        if self.isolated:
            self._make_netns()
            if self._try_start():
                return
            raise RuntimeError(f"lab device {self.name}: sshd did not start in {self.netns}; see {self.root / 'sshd.log'}")
        for last_octet in range(FIRST_HOST, LAST_HOST):
            host = f"127.0.0.{last_octet}"
            if host in taken or not _port_free(host, self.port):
                continue
            self.host = host
            if self._try_start():
                return
        raise RuntimeError(f"lab device {self.name}: no free loopback address for sshd on port {self.port}")

    def _make_netns(self) -> None:
        """A namespace with lo and one veth end; the host keeps the other end.
        No default route: the device can reach the host's veth address only."""
        used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        for subnet in range(1, 250):
            if f"10.237.{subnet}." in used:
                continue
            ns, host_if, dev_if = f"eh-lab-{subnet}", f"ehh{subnet}", f"ehd{subnet}"
            if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
                continue
            self.netns = ns
            for argv in (
                ["ip", "link", "add", host_if, "type", "veth", "peer", "name", dev_if],
                ["ip", "link", "set", dev_if, "netns", ns],
                ["ip", "addr", "add", f"10.237.{subnet}.1/30", "dev", host_if],
                ["ip", "link", "set", host_if, "up"],
                ["ip", "-n", ns, "addr", "add", f"10.237.{subnet}.2/30", "dev", dev_if],
                ["ip", "-n", ns, "link", "set", dev_if, "up"],
                ["ip", "-n", ns, "link", "set", "lo", "up"],
            ):
                subprocess.run(argv, check=True, capture_output=True)
            self.host = f"10.237.{subnet}.2"
            return
        raise RuntimeError(f"lab device {self.name}: no free 10.237.X.0/30 subnet for its network namespace")

    def _try_start(self) -> bool:
        config = self._write_config()
        log = open(self.root / "sshd.log", "ab")  # noqa: SIM115 - closed with the process
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.process = subprocess.Popen(
            [*prefix, "unshare", "--pid", "--fork", "--kill-child=SIGKILL", SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # lost a race for the address: try the next one
            if self.namespace is None:
                self.namespace = self._child_namespace()
            if self._banner_ready() and self.process.poll() is None:
                self.namespace = self.namespace or self._child_namespace()
                return True
            time.sleep(0.005)  # polling interval, not synchronisation
        self.kill()
        raise RuntimeError(f"lab device {self.name}: sshd not ready after {READY_TIMEOUT_S} s; see {self.root / 'sshd.log'}")

    def _banner_ready(self) -> bool:
        if self.netns is None or (self.owns_netns and not self.host.startswith("127.")):
            return _banner_ready(self.host, self.port)
        # Loopback inside a namespace is not the host's, and a device in a
        # namespace it does not own may have no route from the host at all
        # (the far end of a jump-host chain): probe from in there.
        probe = f"import socket; c = socket.create_connection(({self.host!r}, {self.port}), timeout=0.5); assert c.recv(4) == b'SSH-'"
        return subprocess.run(["ip", "netns", "exec", self.netns, sys.executable, "-c", probe], capture_output=True).returncode == 0

    def _child_namespace(self) -> str | None:
        assert self.process is not None
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            return None
        return _pid_namespace(int(children[0])) if children else None

    def kill(self) -> None:
        """Kill the device and every session on it (the whole PID namespace)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        namespace, self.process = self.namespace, None
        if self.netns is not None and self.owns_netns:  # takes the veth pair with it
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
            self.netns = None
        if namespace is not None:
            deadline = time.monotonic() + 5
            while processes_in_namespace(namespace) and time.monotonic() < deadline:
                time.sleep(0.01)
            left = processes_in_namespace(namespace)
            assert not left, f"lab device {self.name} left processes behind: {left}"

    def restart(self) -> None:
        self.kill()
        self.namespace = None
        if not self._try_start():
            raise RuntimeError(f"lab device {self.name}: could not restart on {self.host}:{self.port}")


class Lab:
    """N lab devices sharing one client key; `with Lab(root, 2) as lab:`."""

    def __init__(self, root: Path, count: int) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.client_key = self.root / "client_ed25519"
        if not self.client_key.exists():
            keygen(self.client_key, "lab-client")
        self.devices = [LabDevice(f"lab-{chr(ord('a') + i)}", self.root / f"dev{i}", self.client_key) for i in range(count)]

    def __enter__(self) -> "Lab":
        taken: set[str] = set()
        try:
            for device in self.devices:
                device.prepare()
                device.start(taken)
                taken.add(device.host)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for device in self.devices:
            device.kill()

    def known_hosts(self, path: Path, devices: list[LabDevice] | None = None) -> Path:
        path.write_text("".join(d.known_hosts_line for d in (devices or self.devices)))
        return path

    def inventory(self, path: Path, *, known_hosts: Path, extra: dict[str, dict] | None = None) -> Path:
        """An inventory YAML naming every lab device."""
        import yaml

        devices = {}
        for device in self.devices:
            devices[device.name] = {
                "host": device.host,
                "port": device.port,
                "user": device.user,
                "identity_file": str(self.client_key),
                "profile": "x86-cpu",
                "python": "python3",
                "tags": ["lab"],
                **(extra or {}).get(device.name, {}),
            }
        path.write_text(yaml.safe_dump({"known_hosts": str(known_hosts), "devices": devices}, sort_keys=False))
        return path
