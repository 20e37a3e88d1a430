"""SSH devices through paramiko: the same calls as the local transport.

One connection per device, opened on first use and reused; commands run
on their own channel each. Facts measured on the project's hosts that shaped this:

- paramiko's own socket costs ~47 ms per command (Nagle + delayed ACK); a
  socket we connect with TCP_NODELAY and hand over as ``sock=`` costs ~4 ms.
- a peer that goes silent blocks a read forever unless the channel has a
  timeout, so every wait here is bounded by the operation's deadline.
- a server killed mid-command gives EOF and exit status -1, with no
  exception; that is "device lost", never "command failed".

Host keys are checked against known_hosts with RejectPolicy: an unknown or
changed key stops before authentication, so nothing runs on that host.
"""

from __future__ import annotations

import logging
import posixpath
import secrets
import select
import shlex
import socket
import time
from pathlib import Path
from typing import Any, Sequence

import paramiko

from harness.device import Device
from harness.errors import DeviceLost, DeviceUnreachable, HostKeyError, InfraError
from harness.transport.base import KILLED_BY_SIGNAL, MAX_STDOUT_BYTES, STDERR_KEEP_BYTES, CommandResult

# Every failure is mapped to a HarnessError with a fix; paramiko's own
# thread logs would only repeat it as noise on stderr.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

CONNECT_TIMEOUT_S = 10.0
# Sends an SSH ignore packet this often so NAT boxes keep the idle
# connection and a dead peer is noticed between commands.
KEEPALIVE_S = 15
DEFAULT_COMMAND_TIMEOUT_S = 600.0
PUT_TIMEOUT_S = 120.0
READ_CHUNK_BYTES = 1 << 16
REACH_HINT = "check that the device is on and sshd listens on that address and port"


def known_hosts_name(host: str, port: int) -> str:
    """The name a known_hosts line uses: `host`, or `[host]:port` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def _trusted_as(device: Device) -> str:
    """The inventory name `devices trust` takes: a gateway is trusted
    through the device it serves."""
    return device.extra.get("gateway_for", device.name)


def trust_hint(device: Device) -> str:
    return f"run `harness devices trust {_trusted_as(device)}`"


def retrust_hint(device: Device) -> str:
    name = known_hosts_name(device.host or "", device.port or 22)
    return (
        f"if the device was really reinstalled, remove the old key with "
        f"`ssh-keygen -f {shlex.quote(device.known_hosts or '~/.ssh/known_hosts')} -R {shlex.quote(name)}`, "
        f"then run `harness devices trust {_trusted_as(device)}`"
    )


def open_socket(device: Device, timeout_s: float) -> socket.socket:
    """A TCP connection with Nagle off; paramiko gets it as `sock=`."""
    try:
        sock = socket.create_connection((device.host, device.port or 22), timeout=timeout_s)
    except socket.gaierror as exc:
        raise DeviceUnreachable(f"cannot resolve {device.host!r}: {exc.strerror}", device=device.name) from None
    except OSError as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
        raise DeviceUnreachable(
            f"cannot connect to {device.address}: {reason}",
            device=device.name,
            hint=REACH_HINT,
        ) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def hop_label(device: Device) -> str:
    """A jump host by the name the inventory or ssh config wrote; a device by its own."""
    return device.extra.get("hop", device.name)


def jump_chain(device: Device) -> list[Device]:
    """The device's jump hosts in chain order (the first reached directly),
    then the device: the order `devices trust` pins them, since each key
    exchange runs through the hops before it."""
    return [*(jump_chain(device.gateway) if device.gateway is not None else ()), device]


def open_gateway_channel(device: Device, timeout_s: float) -> "tuple[SshTransport, Any]":
    """A direct-tcpip channel from the device's gateway to the device, and
    the gateway connection it rides on. The gateway's host key is verified
    first (its own known_hosts line), and a failure there names the gateway,
    since the device was never asked. A gateway with a gateway of its own
    (a `jump:` chain) is reached the same way, one hop further back."""
    gateway = device.gateway
    assert gateway is not None
    hop = SshTransport(gateway, connect_timeout_s=timeout_s, connect_attempts=1)
    where = f"cannot reach {hop_label(device)} through {hop_label(gateway)}"
    try:
        channel = hop._session().open_channel(
            "direct-tcpip", (device.host, device.port or 22), ("127.0.0.1", 0), timeout=timeout_s
        )
    except InfraError as exc:
        hop.close()
        # The hop's own `device '…': ` prefix gives way to the device's: the
        # chain reads outward in, "cannot reach X through B: cannot reach B through A: …".
        inner = exc.message.removeprefix(f"device {gateway.name!r}: ")
        exc.message = f"device {device.name!r}: {where}: {inner}"
        raise
    except (paramiko.SSHException, OSError, EOFError) as exc:
        hop.close()
        # ChannelException: the gateway could not connect on our behalf.
        raise DeviceUnreachable(
            f"{where}: {exc} (from gateway {gateway.address} to {device.address})",
            device=device.name,
            hint="check that the device is on and that the gateway can reach its address and port "
            "(and allows TCP forwarding: AllowTcpForwarding)",
        ) from None
    return hop, channel


class SshTransport:
    def __init__(
        self,
        device: Device,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        connect_attempts: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        if device.kind != "ssh" or not device.host:
            raise InfraError("not an SSH device", device=device.name)
        self.device = device
        self.connect_timeout_s = connect_timeout_s
        self.connect_attempts = max(1, connect_attempts)
        self.backoff_s = backoff_s
        self.bytes_uploaded = 0
        self.files_uploaded = 0
        self._client: paramiko.SSHClient | None = None
        # The jump host's own connection; the device's session rides on one
        # of its direct-tcpip channels, so it lives exactly as long.
        self._gateway: SshTransport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._home: str | None = None

    # -- connection --------------------------------------------------------

    def _session(self) -> paramiko.Transport:
        """The live SSH transport, connecting (or reconnecting) when needed."""
        if self._client is not None:
            live = self._client.get_transport()
            if live is not None and live.is_active():
                return live
            self._drop()
        delay_s = self.backoff_s
        for attempt in range(1, self.connect_attempts + 1):
            try:
                self._client = self._connect()
                break
            except DeviceUnreachable:
                # Host key and auth problems are not transient: no retry.
                if attempt == self.connect_attempts:
                    raise
                time.sleep(delay_s)
                delay_s *= 2
        live = self._client.get_transport()
        assert live is not None
        return live

    def _connect(self) -> paramiko.SSHClient:
        device = self.device
        client = paramiko.SSHClient()
        known_hosts = Path(device.known_hosts or "~/.ssh/known_hosts").expanduser()
        if known_hosts.is_file():
            # "system" keys are read but never written back by paramiko.
            client.load_system_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        sock = self._gateway_channel() if device.gateway is not None else open_socket(device, self.connect_timeout_s)
        try:
            client.connect(
                hostname=device.host,
                port=device.port or 22,
                username=device.user,
                key_filename=device.identity_file,
                allow_agent=True,
                # Like ssh: ~/.ssh/id_* when no identity is named.
                look_for_keys=device.identity_file is None,
                sock=sock,
                timeout=self.connect_timeout_s,
                banner_timeout=self.connect_timeout_s,
                auth_timeout=self.connect_timeout_s,
                channel_timeout=self.connect_timeout_s,
            )
        except paramiko.BadHostKeyException as exc:
            _close(client, sock)
            role = "gateway" if "gateway_for" in device.extra else "device"
            raise HostKeyError(
                f"HOST KEY CHANGED for {known_hosts_name(device.host, device.port)}: the {role} offered "
                f"{exc.key.get_name()} {fingerprint_sha256(exc.key)}, known_hosts ({known_hosts}) has "
                f"{fingerprint_sha256(exc.expected_key)}. Refused; nothing was run. This is what a "
                "man-in-the-middle looks like, or the device was reinstalled",
                device=device.name,
                changed=True,
                hint=retrust_hint(device),
            ) from None
        except paramiko.AuthenticationException as exc:
            _close(client, sock)
            raise DeviceUnreachable(
                f"{device.address} refused our key: {exc}",
                device=device.name,
                hint="check identity_file / ssh-agent and the device's authorized_keys",
            ) from None
        except paramiko.SSHException as exc:
            _close(client, sock)
            if "not found in known_hosts" in str(exc):
                raise HostKeyError(
                    f"host key of {known_hosts_name(device.host, device.port)} is not in {known_hosts}; "
                    "refused, nothing was run",
                    device=device.name,
                    hint=trust_hint(device),
                ) from None
            raise DeviceUnreachable(f"SSH handshake with {device.address} failed: {exc}", device=device.name,
                                    hint=REACH_HINT) from None
        except (OSError, EOFError) as exc:
            _close(client, sock)
            raise DeviceUnreachable(f"connection to {device.address} failed: {exc}", device=device.name,
                                    hint=REACH_HINT) from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(KEEPALIVE_S)
        return client

    def _gateway_channel(self) -> Any:
        if self._gateway is not None:
            self._gateway.close()
        self._gateway, channel = open_gateway_channel(self.device, self.connect_timeout_s)
        return channel

    def _drop(self) -> None:
        for closable in (self._sftp, self._client, self._gateway):
            if closable is not None:
                try:
                    closable.close()
                except Exception:  # closing a dead connection may raise anything
                    pass
        self._sftp = None
        self._client = None
        self._gateway = None

    def connect(self) -> None:
        """Open the connection now (probes want reachability on its own)."""
        self._session()

    def server_key(self) -> paramiko.PKey | None:
        live = self._session()
        return live.get_remote_server_key()

    # -- commands ----------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes = b"",
        timeout_s: float | None = None,
        max_stdout_bytes: int = MAX_STDOUT_BYTES,
    ) -> CommandResult:
        command = " ".join(shlex.quote(str(a)) for a in argv)
        timeout_s = timeout_s or DEFAULT_COMMAND_TIMEOUT_S
        start = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        try:
            channel = self._session().open_session(timeout=min(timeout_s, self.connect_timeout_s))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._drop()
            raise DeviceLost(f"cannot open a channel: {exc}", device=self.device.name, command=command) from None
        try:
            channel.settimeout(timeout_s)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            stdout, stderr = _read_until_eof(channel, deadline, max_stdout_bytes)
            if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise socket.timeout()
            status = channel.recv_exit_status()
        except _OutputTooLarge:
            # Closing the channel (finally) hangs up on the command: the
            # device stops writing and the connection stays usable.
            raise InfraError(
                f"the device sent more than {max_stdout_bytes} bytes on stdout; stopped reading",
                device=self.device.name,
                command=command,
                hint="a reply this large is not from a working agent: check the device's python and agent",
            ) from None
        except socket.timeout:
            raise InfraError(
                f"command timed out after {timeout_s:g} s",
                device=self.device.name,
                command=command,
                hint="raise the timeout or check the device load",
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._drop()
            raise DeviceLost(f"connection lost during a command: {exc}", device=self.device.name, command=command) from None
        finally:
            channel.close()
        if status == -1 and self._client is not None and (live := self._client.get_transport()) is not None and live.is_active():
            # The session outlived the command: the process died of a signal
            # (a crash, the OOM killer); the device itself is fine.
            status = KILLED_BY_SIGNAL
        if status == -1:
            # The server went away mid-command: its session is gone too.
            self._drop()
            raise DeviceLost(
                "device lost during a command (no exit status)",
                device=self.device.name,
                command=command,
                exit_status=-1,
                stderr_tail=stderr.decode(errors="replace")[-2000:],
                hint="check that the device is up and reachable, then `--resume` the run",
            )
        return CommandResult(tuple(str(a) for a in argv), status, stdout, stderr, time.perf_counter() - start)

    def expand(self, remote_path: str) -> str:
        if remote_path != "~" and not remote_path.startswith("~/"):
            return remote_path
        if self._home is None:
            result = self.run(["sh", "-c", 'printf %s "$HOME"'], timeout_s=30)
            home = result.stdout.decode().strip()
            if result.exit_status != 0 or not home.startswith("/"):
                raise InfraError(f"cannot find the home folder: {result.stderr_tail()}", device=self.device.name)
            self._home = home
        return self._home + remote_path[1:]

    # -- files -------------------------------------------------------------

    def _sftp_client(self) -> paramiko.SFTPClient:
        live = self._session()
        if self._sftp is None or self._sftp.get_channel() is None or self._sftp.get_channel().closed:
            self._sftp = paramiko.SFTPClient.from_transport(live)
            assert self._sftp is not None
        return self._sftp

    def put(self, local_path: Path, remote_path: str) -> None:
        """Upload to `<name>.<random>.partial`, then rename: a reader never
        sees half a file, and two controllers sending the same file to one
        filesystem (two inventory names for one board) never rename each
        other's partial away."""
        target = self.expand(remote_path)
        partial = f"{target}.{secrets.token_hex(4)}.partial"
        mkdir = self.run(["mkdir", "-p", "--", posixpath.dirname(target)], timeout_s=60)
        if mkdir.exit_status != 0:
            raise InfraError(f"cannot create {posixpath.dirname(target)}: {mkdir.stderr_tail()}", device=self.device.name)
        size_bytes = Path(local_path).stat().st_size
        try:
            sftp = self._sftp_client()
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(PUT_TIMEOUT_S)
            sftp.put(str(local_path), partial, confirm=True)
            sftp.posix_rename(partial, target)
        except (socket.timeout, TimeoutError):
            self._drop()
            raise InfraError(f"upload of {Path(local_path).name} stalled for {PUT_TIMEOUT_S:g} s", device=self.device.name) from None
        except OSError as exc:
            raise self._upload_failed(local_path, target, partial, size_bytes, exc) from None
        except (paramiko.SSHException, EOFError) as exc:
            self._drop()
            raise DeviceLost(f"connection lost during an upload: {exc}", device=self.device.name) from None
        self.bytes_uploaded += size_bytes
        self.files_uploaded += 1

    def take(self, remote_path: str, local_path: Path) -> None:
        """SFTP get into `<name>.partial` here, rename, then remove the device's copy."""
        source = self.expand(remote_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        partial = local_path.with_name(local_path.name + ".partial")
        try:
            sftp = self._sftp_client()
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(PUT_TIMEOUT_S)
            sftp.get(source, str(partial))
            partial.replace(local_path)
            sftp.remove(source)
        except (socket.timeout, TimeoutError):
            partial.unlink(missing_ok=True)
            self._drop()
            raise InfraError(f"download of {source} stalled for {PUT_TIMEOUT_S:g} s", device=self.device.name) from None
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise InfraError(f"cannot fetch {source} from the device: {exc}", device=self.device.name) from None
        except (paramiko.SSHException, EOFError) as exc:
            partial.unlink(missing_ok=True)
            self._drop()
            raise DeviceLost(f"connection lost during a download: {exc}", device=self.device.name) from None

    def _upload_failed(self, local_path: Path, target: str, partial: str, size_bytes: int, exc: OSError) -> InfraError:
        """Remove the half-written file; say when the disk is what is full
        (SFTP reports that as a bare 'Failure' or a short write)."""
        folder = posixpath.dirname(target)
        try:
            self.run(["rm", "-f", "--", partial], timeout_s=30)
            df = self.run(["df", "-Pk", "--", folder], timeout_s=30)
            free_kib = int(df.stdout.decode().splitlines()[-1].split()[3]) if df.exit_status == 0 else None
        except (InfraError, ValueError, IndexError):
            free_kib = None
        if free_kib is not None and free_kib * 1024 < size_bytes:
            return InfraError(
                f"no space left on the device for {Path(local_path).name}: {free_kib} KiB free in {folder}, "
                f"it needs {-(-size_bytes // 1024)} KiB",
                device=self.device.name,
                hint="free space on the device, or point the inventory's `cache_dir` at a larger disk",
            )
        return InfraError(f"cannot upload {local_path} to {target}: {exc}", device=self.device.name,
                          hint="check the device's free disk space and the cache folder's permissions")

    def close(self) -> None:
        self._drop()


def _close(client: paramiko.SSHClient, sock: socket.socket) -> None:
    """Stop paramiko's reader thread before its socket goes away."""
    client.close()
    sock.close()


class _OutputTooLarge(Exception):
    pass


def _read_until_eof(channel: paramiko.Channel, deadline: float, max_stdout_bytes: int) -> tuple[bytes, bytes]:
    """Drain stdout and stderr together (either can fill the window and
    stall the other), waiting on the channel's fd with the time left.
    Memory stays bounded whatever the device sends: stdout up to its cap,
    stderr only its last STDERR_KEEP_BYTES."""
    out: list[bytes] = []
    out_bytes = 0
    err = bytearray()

    def drain() -> None:
        nonlocal out_bytes
        while channel.recv_ready():
            chunk = channel.recv(READ_CHUNK_BYTES)
            out_bytes += len(chunk)
            if out_bytes > max_stdout_bytes:
                raise _OutputTooLarge()
            out.append(chunk)
        while channel.recv_stderr_ready():
            err.extend(channel.recv_stderr(READ_CHUNK_BYTES))
            if len(err) > 2 * STDERR_KEEP_BYTES:  # trim in steps, not per chunk
                del err[: len(err) - STDERR_KEEP_BYTES]

    while True:
        drain()
        if channel.eof_received or channel.closed:
            drain()  # data that arrived between the drain and the EOF flag
            return b"".join(out), bytes(err[-STDERR_KEEP_BYTES:])
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            raise socket.timeout()
        select.select([channel], [], [], remaining_s)


def fingerprint_sha256(key: Any) -> str:
    """OpenSSH's `SHA256:<base64, no padding>` fingerprint of a host key."""
    import base64
    import hashlib

    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
