"""The `local` device: the agent as a subprocess of this machine."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Sequence

from harness.device import Device
from harness.errors import InfraError
from harness.transport.base import MAX_STDOUT_BYTES, STDERR_KEEP_BYTES, CommandResult


class LocalTransport:
    def __init__(self, device: Device) -> None:
        self.device = device
        self.bytes_uploaded = 0
        self.files_uploaded = 0

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes = b"",
        timeout_s: float | None = None,
        max_stdout_bytes: int = MAX_STDOUT_BYTES,
    ) -> CommandResult:
        start = time.perf_counter()
        try:
            proc = subprocess.run(list(argv), input=stdin, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise InfraError(
                f"command timed out after {timeout_s:.0f} s",
                device=self.device.name,
                command=" ".join(argv),
                stderr_tail=(exc.stderr or b"").decode(errors="replace")[-2000:],
                hint="raise the timeout or check the device load",
            ) from None
        except OSError as exc:
            raise InfraError(f"cannot start {argv[0]!r}: {exc}", device=self.device.name) from None
        # This machine is trusted with its own memory; the cap is checked
        # after the fact so both transports fail the same way.
        if len(proc.stdout) > max_stdout_bytes:
            raise InfraError(
                f"the device sent more than {max_stdout_bytes} bytes on stdout; stopped reading",
                device=self.device.name,
                command=" ".join(argv),
            )
        stderr = proc.stderr[-STDERR_KEEP_BYTES:]
        return CommandResult(tuple(argv), proc.returncode, proc.stdout, stderr, time.perf_counter() - start)

    def expand(self, remote_path: str) -> str:
        return os.path.expanduser(remote_path)

    def put(self, local_path: Path, remote_path: str) -> None:
        target = Path(self.expand(remote_path))
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{secrets.token_hex(4)}.partial")  # one per writer (ssh.py says why)
        try:
            shutil.copyfile(local_path, partial)
            os.replace(partial, target)
            self.bytes_uploaded += target.stat().st_size
            self.files_uploaded += 1
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise InfraError(f"cannot copy {local_path} to {target}: {exc}", device=self.device.name) from None

    def take(self, remote_path: str, local_path: Path) -> None:
        local_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.move(self.expand(remote_path), local_path)  # a rename within one filesystem
        except OSError as exc:
            raise InfraError(f"cannot move {remote_path} to {local_path}: {exc}", device=self.device.name) from None

    def close(self) -> None:
        pass

