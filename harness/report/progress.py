"""Rich progress display for long runs (stderr, so stdout stays clean).

The display draws on its own duplicate of file descriptor 2, taken when
the display starts: while TensorFlow converts, the converter points fd 2 at
its log file (TensorFlow writes hundreds of lines there), and the display
must keep moving on the terminal instead of drawing into that log.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from harness.measure.events import RunEvents
from harness.results.record import Record

_STAGE_TITLES = {
    "dataset": "preparing datasets",
    "convert": "converting variants",
    "measure": "measuring on devices",
}
_CONVERTED = {
    "done": "[green]✓[/green] {variant}: converted in {seconds:.1f} s",
    "cached": "[green]✓[/green] {variant}: from the cache",
    "unavailable": "[yellow]-[/yellow] {variant}: unavailable on this host",
    "failed": "[red]✗[/red] {variant}: conversion failed",
}


@functools.lru_cache(maxsize=1)
def _display_stream() -> TextIO:
    """Standard error as it is now, on a descriptor of its own. Kept open for
    the process: rich's stdout proxy may hold it until exit."""
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    return os.fdopen(os.dup(2), "w", encoding=encoding, errors="replace", buffering=1)


def stderr_console() -> Console:
    """A console on standard error that a later redirect of fd 2 does not move."""
    return Console(file=_display_stream())


class ProgressEvents(RunEvents):
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or stderr_console()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[label]}"),
            console=self.console,
            transient=False,
            # Python-level writes to sys.stderr stay on fd 2, so during a
            # conversion TensorFlow's warnings go to its log, not the screen.
            redirect_stderr=False,
        )
        self.tasks: dict[str, int] = {}
        self.device_tasks: dict[str, int] = {}
        self.current: str | None = None

    def __enter__(self) -> "ProgressEvents":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish_current()
        self.progress.stop()

    def _finish_current(self) -> None:
        if self.current is not None:
            task = self.progress.tasks[self.tasks[self.current]]
            total = task.total if task.total is not None else 1
            self.progress.update(self.tasks[self.current], completed=total, total=total, label="")

    def stage(self, name: str, total: int | None = None) -> None:
        self._finish_current()
        self.current = name
        self.tasks[name] = self.progress.add_task(_STAGE_TITLES.get(name, name), total=total, label="")

    def advance(self, name: str, label: str, units: int = 0) -> None:
        task = self.tasks.get(name)
        if task is not None:
            self.progress.update(task, advance=units, label=label)

    def converted(self, variant: str, outcome: str, seconds: float) -> None:
        """One line per variant as it is ready, above the bar (and in a log
        file, where the bar itself is drawn only once, at the end)."""
        line = _CONVERTED.get(outcome, "{variant}: " + outcome)
        self.progress.console.print("  " + line.format(variant=variant, seconds=seconds))

    def device_status(self, device: str, label: str, done: int, total: int) -> None:
        """One line per device under the measure bar: where it is now."""
        task = self.device_tasks.get(device)
        if task is None:
            self.device_tasks[device] = self.progress.add_task(f"  {device}", total=total, completed=done, label=label)
        else:
            self.progress.update(task, completed=done, total=total, label=label)

    def pair_done(self, record: Record) -> None:
        name = f"{record.device.name} · {record.model.variant}"
        if record.status == "ok" and record.latency_ms:
            acc = f"  mAP {record.accuracy.map:.3f}" if record.accuracy else ""
            self.progress.console.print(
                f"  [green]✓[/green] {name}: p50 {record.latency_ms.p50:.2f} ms (n={record.latency_ms.n}){acc}"
            )
        else:
            message = record.error.message if record.error else record.status
            self.progress.console.print(f"  [red]✗[/red] {name}: {message}")
