"""Rich progress display for long runs (stderr, so stdout stays clean)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from harness.results.record import Record
from harness.measure.events import RunEvents

_STAGE_TITLES = {
    "dataset": "preparing datasets",
    "convert": "converting variants",
    "measure": "measuring on devices",
}


class ProgressEvents(RunEvents):
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[label]}"),
            console=console,
            transient=False,
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
