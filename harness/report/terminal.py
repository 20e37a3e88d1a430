"""The rich terminal report: one table per (device, model)."""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.report.view import HEADERS, cells, findings, sections
from harness.results.record import Record


def render_terminal(records: Sequence[Record], console: Console, *, title: str) -> None:
    for section in sections(records):
        table = Table(
            title=f"{title} · {section.model} on {section.device} ({section.runtime})",
            title_justify="left",
            header_style="bold",
        )
        for key, header in HEADERS:
            table.add_column(header, justify="left" if key in ("variant", "flags") else "right", no_wrap=key != "flags")
        for row in section.rows:
            c = cells(row)
            values = [Text(str(getattr(c, key))) for key, _ in HEADERS]
            if row.latency_ratio is not None and row.latency_ratio > 1.05:
                values[5].stylize("red")
            elif row.latency_ratio is not None and row.latency_ratio < 0.95:
                values[5].stylize("green")
            if row.record.status != "ok":
                values[0].stylize("bold red")
            table.add_row(*values)
        console.print(table)
        for line in findings(section):
            console.print(Text("• " + line))
