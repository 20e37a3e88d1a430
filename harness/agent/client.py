"""Talking to the agent: deploy it, send one request, check the reply.

The agent is copied into the device cache under a name built from its own
hash, so two harness versions never run each other's agent.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from functools import cached_property
from pathlib import Path
from typing import Any

from harness import paths
from harness.errors import AgentError, InfraError
from harness.transport.base import KILLED_BY_SIGNAL, CommandResult, Transport

PROTOCOL_VERSION = 1
# Largest reply we accept: an eval pass over a few thousand images fits.
MAX_REPLY_BYTES = 256 * 1024 * 1024


def venv_dir(cache_root: str, python: str) -> str:
    """Where `harness devices bootstrap` puts the runtime for a device's
    python: keyed by that python, so pointing `python:` elsewhere never
    picks up a venv made from another interpreter."""
    return posixpath.join(cache_root, f"venv-{hashlib.sha256(python.encode()).hexdigest()[:10]}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class AgentClient:
    def __init__(self, transport: Transport, *, timeout_s: float = 600.0, confined: bool = True) -> None:
        self.transport = transport
        # On a device the agent may touch only its cache directory (`--root`);
        # the host's own uses (loadability, host-side mAP) read host files.
        self.confined = confined
        self.device = transport.device
        self.timeout_s = timeout_s
        self.cache_root = transport.expand(self.device.cache_dir)
        self._python: str | None = None

    @cached_property
    def agent_path(self) -> str:
        local = paths.agent_path()
        digest = file_sha256(local)
        remote = posixpath.join(self.cache_root, f"agent-{digest[:16]}.py")
        # The agent cannot check itself before it exists: one round trip
        # tests for it and for a bootstrapped venv, then a verified upload.
        venv_python = posixpath.join(venv_dir(self.cache_root, self.device.python), "bin", "python")
        probe = self.transport.run(
            [self.device.python, "-I", "-c",
             "import os,sys; print(os.path.isfile(sys.argv[1]), os.access(sys.argv[2], os.X_OK))", remote, venv_python],
            timeout_s=min(60, self.timeout_s),
        )
        have_agent, have_venv = (probe.stdout.decode().split() + ["False", "False"])[:2]
        if have_venv == "True" and self._python is None:
            self._python = venv_python
        if have_agent != "True":
            self.transport.put(local, remote)
        return remote

    @property
    def python(self) -> str:
        """The interpreter that runs the agent: the venv `harness devices
        bootstrap` made for the device's python if there is one, else it."""
        self.agent_path  # noqa: B018 - resolves the venv in the same round trip
        return self._python or self.device.python

    def use_python(self, python: str) -> None:
        self._python = python

    def call(self, request: dict[str, Any], *, timeout_s: float | None = None, python: str | None = None) -> dict[str, Any]:
        """One agent command; `python` overrides the interpreter (the device
        lock runs on the device's own python, never the venv it guards)."""
        payload = dict(request, protocol=PROTOCOL_VERSION)
        agent = self.agent_path
        # The client's timeout caps every call (hash, lock, info as well):
        # a device gone silent fails within the configured time, whatever
        # the call.
        root = ["--root", self.cache_root] if self.confined else []
        result = self.transport.run(
            [python or self.python, "-I", agent, *root],
            stdin=json.dumps(payload).encode(),
            timeout_s=min(timeout_s or self.timeout_s, self.timeout_s),
            max_stdout_bytes=MAX_REPLY_BYTES,
        )
        return self._parse(result, request.get("command", "?"))

    def _parse(self, result: CommandResult, command: str) -> dict[str, Any]:
        name = self.device.name
        if result.exit_status == -1:
            raise InfraError(
                "device lost during the agent call (no exit status)",
                device=name,
                command=command,
                exit_status=-1,
                stderr_tail=result.stderr_tail(),
                hint="check that the device is up and reachable, then `--resume` the run",
            )
        lines = result.stdout.strip().splitlines()
        if not lines and (result.exit_status < -1 or result.exit_status >= 128):
            # Killed by a signal (or a shell's 128+N): this pair's fault, not the device's.
            how = "a signal" if result.exit_status == KILLED_BY_SIGNAL else f"exit status {result.exit_status}"
            raise AgentError(
                f"agent {command} was killed ({how}): the runtime or a delegate crashed, or the device's "
                f"out-of-memory killer stopped it; last stderr:\n{result.stderr_tail(5)}",
                device=name,
                command=command,
                exit_status=result.exit_status,
                stderr_tail=result.stderr_tail(),
                hint="check the device's kernel log (`dmesg`) for an OOM kill or a segfault; try another variant or runtime",
            )
        if not lines:
            raise InfraError(
                f"agent died without a reply (exit status {result.exit_status}); last stderr:\n{result.stderr_tail()}",
                device=name,
                command=command,
                exit_status=result.exit_status,
                stderr_tail=result.stderr_tail(),
            )
        if len(result.stdout) > MAX_REPLY_BYTES:
            raise InfraError(f"agent reply too large ({len(result.stdout)} bytes)", device=name, command=command)
        try:
            reply = json.loads(lines[-1])
        except ValueError:
            raise InfraError(
                f"agent reply is not JSON: {lines[-1][:200]!r}", device=name, command=command, exit_status=result.exit_status
            ) from None
        if not isinstance(reply, dict) or reply.get("protocol") != PROTOCOL_VERSION:
            got = reply.get("protocol") if isinstance(reply, dict) else None
            raise InfraError(
                f"agent speaks protocol {got!r}, this harness {PROTOCOL_VERSION}",
                device=name,
                command=command,
                hint="clean the device cache (`harness devices clean`) so the current agent is deployed",
            )
        if not reply.get("ok"):
            error = reply.get("error") or {}
            if not isinstance(error, dict):  # a broken or foreign agent: still a readable failure
                error = {"message": str(error)[:500]}
            raise AgentError(
                f"agent {command} failed [{error.get('kind', 'unknown')}]: {error.get('message', 'no message')}",
                device=name,
                command=command,
                exit_status=result.exit_status,
                stderr_tail=result.stderr_tail(),
            )
        return reply

    def info(self) -> dict[str, Any]:
        """What the device offers; `path` lets the agent measure free disk
        where the cache lives."""
        return self.call({"command": "info", "path": self.cache_root}, timeout_s=120)

    def ensure_file(self, local: Path, sha256: str, suffix: str) -> str:
        """Content-addressed upload: never re-sent when already there, and
        verified after upload."""
        remote = posixpath.join(self.cache_root, "blobs", sha256 + suffix)
        if self._remote_sha256(remote) == sha256:
            return remote
        self.transport.put(local, remote)
        got = self._remote_sha256(remote)
        if got != sha256:
            raise InfraError(
                f"upload of {local.name} is corrupt on the device (sha256 {got} != {sha256})",
                device=self.device.name,
                hint="check the device's free disk space and storage",
            )
        return remote

    def ensure_named_file(self, local: Path, sha256: str, remote: str) -> str:
        """Like ensure_file, under a given name (wheels must keep theirs)."""
        if self._remote_sha256(remote) == sha256:
            return remote
        self.transport.put(local, remote)
        got = self._remote_sha256(remote)
        if got != sha256:
            raise InfraError(f"upload of {local.name} is corrupt on the device", device=self.device.name,
                             hint="check the device's free disk space and storage")
        return remote

    def _remote_sha256(self, remote: str) -> str | None:
        reply = self.call({"command": "hash", "paths": [remote]}, timeout_s=120)
        return (reply.get("sha256") or {}).get(remote)
