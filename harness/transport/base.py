"""How bytes and commands reach a device: one Protocol, two transports
(harness/transport/local.py and ssh.py).

The local transport (a subprocess on this machine) and the SSH transport
(paramiko) implement the same calls, so the runner and the deployment code
never know which one they drive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from harness.device import Device


# Exit status of a command that died of a signal on an SSH device whose
# connection is still up: OpenSSH reports it with an `exit-signal` message
# that paramiko drops, leaving -1, the same as a lost device. (The local
# transport reports -N, the signal's number, like subprocess.)
KILLED_BY_SIGNAL = -256

# What a transport keeps of one command's output. A device is not trusted to
# bound its own replies: stdout beyond the cap stops the read (the command
# fails) instead of growing the controller's memory; stderr is only ever
# shown as a tail, so only its last bytes are kept.
MAX_STDOUT_BYTES = 256 * 1024 * 1024
STDERR_KEEP_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_status: int
    stdout: bytes
    stderr: bytes
    duration_s: float

    def stderr_tail(self, lines: int = 15) -> str:
        return "\n".join(self.stderr.decode(errors="replace").rstrip().splitlines()[-lines:])


class Transport(Protocol):
    device: Device
    # File bytes sent by put() since the transport opened: what "re-running
    # sends no model bytes again" is measured with.
    bytes_uploaded: int
    files_uploaded: int

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes = b"",
        timeout_s: float | None = None,
        max_stdout_bytes: int = MAX_STDOUT_BYTES,
    ) -> CommandResult:
        """Run argv on the device (each argument quoted by the transport).
        More than max_stdout_bytes on stdout is an InfraError."""

    def put(self, local_path: Path, remote_path: str) -> None:
        """Copy a file to the device, creating parent folders."""

    def take(self, remote_path: str, local_path: Path) -> None:
        """Move a file the device wrote (an eval pass's detections) to this
        machine: copied, then removed from the device."""

    def expand(self, remote_path: str) -> str:
        """Resolve ~ on the device."""

    def close(self) -> None: ...
