"""One benchmark at a time per device, across controllers.

The lock is a file in the device cache (`lock.json`: token, owner, expiry),
taken and released through the agent under flock(2) on the device, so the
check-and-take is atomic there. It expires: a controller that crashed (or
lost its network) blocks the device for at most `expiry_s`, and the holder
renews it before every pair. A lock left by a dead process of this very
machine is taken over at once, since we can see that its owner is gone.
"""

from __future__ import annotations

import getpass
import os
import posixpath
import secrets
import socket
import time
from typing import Any, Callable

from harness.agent.client import AgentClient
from harness.errors import DeviceBusy, InfraError

LOCK_FILE_NAME = "lock.json"
# Longer than any single pair (agent timeout 600 s), renewed before each.
DEFAULT_EXPIRY_S = 900.0
DEFAULT_WAIT_S = 0.0
POLL_S = 0.5


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_holder(holder: dict[str, Any]) -> str:
    owner = holder.get("owner") or {}
    who = f"{owner.get('user', '?')}@{owner.get('host', '?')} pid {owner.get('pid', '?')}"
    return f"locked by {who} ({owner.get('command', 'harness')}), expires in {holder.get('expires_in_s', '?')} s"


class DeviceLock:
    def __init__(
        self,
        client: AgentClient,
        *,
        expiry_s: float = DEFAULT_EXPIRY_S,
        wait_s: float = DEFAULT_WAIT_S,
        command: str = "run",
    ) -> None:
        self.client = client
        self.path = posixpath.join(client.cache_root, LOCK_FILE_NAME)
        self.expiry_s = expiry_s
        self.wait_s = wait_s
        self.token = secrets.token_hex(8)
        self.owner = {"user": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid(), "command": command}
        self.held = False

    def _request(self, action: str, steal: str | None = None) -> dict[str, Any]:
        # The device's own python (stdlib is all the lock needs): a bootstrap
        # holding the lock may be rebuilding the venv's python right now.
        return self.client.call(
            {
                "command": "lock",
                "action": action,
                "path": self.path,
                "token": self.token,
                "owner": self.owner,
                "expiry_s": self.expiry_s,
                "steal": steal,
            },
            timeout_s=60,
            python=self.client.device.python,
        )

    def acquire(self, on_wait: Callable[[str], None] | None = None) -> None:
        deadline = time.monotonic() + self.wait_s
        steal: str | None = None
        while True:
            reply = self._request("acquire", steal)
            if reply.get("acquired"):
                self.held = True
                return
            holder = reply.get("holder") or {}
            if self._owner_dead(holder):
                steal = holder.get("token")
                continue
            if time.monotonic() >= deadline:
                raise DeviceBusy(
                    describe_holder(holder),
                    device=self.client.device.name,
                    hint="wait for the other run to finish, or raise --lock-wait; a crashed controller's lock "
                    f"expires by itself (lock file {self.path})",
                )
            if on_wait is not None:
                on_wait(describe_holder(holder))
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def _owner_dead(self, holder: dict[str, Any]) -> bool:
        """Only a process of this machine can be seen to be dead."""
        owner = holder.get("owner") or {}
        pid = owner.get("pid")
        return owner.get("host") == self.owner["host"] and isinstance(pid, int) and pid != os.getpid() and not _pid_alive(pid)

    def renew(self) -> None:
        reply = self._request("acquire")
        if not reply.get("acquired"):
            self.held = False
            raise DeviceBusy(
                f"lost the device lock: {describe_holder(reply.get('holder') or {})}",
                device=self.client.device.name,
                hint="a pair took longer than the lock expiry; raise it",
            )

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            self._request("release")
        except InfraError:
            pass  # the device is gone; its lock expires by itself

    def __enter__(self) -> "DeviceLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class HeldByLabgrid:
    """The lock of a device whose labgrid place this run holds: the
    coordinator already keeps every other controller off it, and a second
    lock file on the board would only add a way to block it."""

    held = True

    def acquire(self, on_wait: Callable[[str], None] | None = None) -> None:
        pass

    def renew(self) -> None:
        pass

    def release(self) -> None:
        pass
