"""One error hierarchy for the whole harness.

Every error the CLI can meet derives from :class:`HarnessError` and carries
its exit code, so the CLI maps errors to exit codes in one place and never
prints a traceback for a problem the user can fix.
"""

from __future__ import annotations

from pathlib import Path

# DESIGN.md's exit codes, for every command; the CLI, the gate and each error
# class take them from here.
EXIT_OK, EXIT_GATE, EXIT_INPUT, EXIT_INFRA = 0, 1, 2, 3


class HarnessError(Exception):
    """Base class. ``exit_code`` follows DESIGN.md's contract."""

    exit_code: int = EXIT_INFRA

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = self.message
        if self.hint:
            text += f"\n  fix: {self.hint}"
        return text


class InputError(HarnessError):
    """Invalid input: config, model, dataset, flag (exit 2).

    ``source`` names the file or flag, ``place`` the field or line in it.
    """

    exit_code = EXIT_INPUT

    def __init__(
        self,
        message: str,
        *,
        source: str | Path | None = None,
        place: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if source is not None:
            where = str(source)
            if place:
                where += f", {place}"
            where += ": "
        super().__init__(where + message, hint=hint)
        self.source = None if source is None else str(source)
        self.place = place


class InfraError(HarnessError):
    """A device, transport or agent failed (exit 3). Results already
    measured are saved before this reaches the CLI."""

    exit_code = EXIT_INFRA

    def __init__(
        self,
        message: str,
        *,
        device: str | None = None,
        command: str | None = None,
        exit_status: int | None = None,
        stderr_tail: str = "",
        hint: str | None = None,
    ) -> None:
        prefix = f"device {device!r}: " if device else ""
        super().__init__(prefix + message, hint=hint)
        self.device = device
        self.command = command
        self.exit_status = exit_status
        self.stderr_tail = stderr_tail


class AgentError(InfraError):
    """The agent ran but reported a failure (bad model, runtime error)."""


class ConversionError(HarnessError):
    """The TFLite converter rejected a variant; recorded per variant."""

    exit_code = EXIT_INPUT


class DeviceUnreachable(InfraError):
    """No SSH session could be opened (refused, timed out, no route, auth)."""


class HostKeyError(InfraError):
    """The device's host key is unknown or changed: nothing was run on it.

    ``changed`` tells the two apart, because a changed key may be an attack
    and is never trusted again without the user removing the old one.
    """

    def __init__(self, message: str, *, device: str | None = None, changed: bool = False, hint: str | None = None) -> None:
        super().__init__(message, device=device, hint=hint)
        self.changed = changed


class DeviceLost(InfraError):
    """The connection died while a command ran (SSH exit status -1)."""


class DeviceBusy(InfraError):
    """Another controller holds the device lock."""


class StoreLost(InfraError):
    """The results store (PostgreSQL) went away mid-run; the run folder
    still holds every pair measured."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run, raised once every pair measured is saved; the
    CLI answers exit 3 with the command that continues the run. A
    KeyboardInterrupt still, so callers that stop on Ctrl-C (pytest) do."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id
