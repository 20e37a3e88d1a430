"""Progress hooks a run reports through; the CLI renders them (report.progress), tests ignore them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.results.record import Record


class RunEvents:
    """Progress hooks; the CLI renders them, tests ignore them."""

    def stage(self, name: str, total: int | None = None) -> None: ...

    def advance(self, name: str, label: str, units: int = 0) -> None: ...

    def converted(self, variant: str, outcome: str, seconds: float) -> None:
        """A variant is ready: `outcome` is done, cached, failed or unavailable."""

    def pair_done(self, record: Record) -> None: ...

    def device_status(self, device: str, label: str, done: int, total: int) -> None: ...
