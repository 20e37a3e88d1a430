"""The rich terminal report: one table per (device, model)."""

from __future__ import annotations

from typing import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.report.view import TERMINAL_HEADERS as HEADERS
from harness.report.view import (
    DeviceSection,
    cells,
    findings,
    has_quantization,
    quantization_findings,
    quantization_rows,
    runtime_headers,
    sections,
    sensitive_layers,
)
from harness.results.record import Record


# Below this width the table keeps the columns a decision needs and the
# flags move under it; the Markdown and HTML reports always carry them all.
WIDE_COLUMNS = 130
NARROW_KEYS = ("variant", "p50", "vs_fp32", "peak_mb", "size_both", "map", "map_drop")
WIDE_KEYS = tuple(k for k, _ in HEADERS if k != "size_both")


def render_terminal(records: Sequence[Record], console: Console, *, title: str) -> None:
    wide = console.width >= WIDE_COLUMNS
    keys = WIDE_KEYS if wide else NARROW_KEYS
    headers = tuple((k, h) for k, h in HEADERS if k in keys)
    group = None
    for section in sections(records):
        if section.group != group:
            group = section.group
            console.rule(Text(group, style="bold"), align="left")
        table = Table(
            title=f"{title} · {section.heading}",
            title_justify="left",
            header_style="bold",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
            pad_edge=False,
            collapse_padding=True,
        )
        for key, header in headers:
            table.add_column(header, justify="left" if key in ("variant", "flags") else "right", no_wrap=key != "flags")
        notes: list[str] = []
        for row in section.rows:
            c = cells(row)
            values = [Text(str(getattr(c, key))) for key, _ in headers]
            if not wide and c.flags and row.record.status == "ok":
                notes.append(f"{c.variant}: {c.flags}")
            ratio_cell = values[[k for k, _ in headers].index("vs_fp32")]
            if row.latency_ratio is not None and row.latency_ratio > 1.05:
                ratio_cell.stylize("red")
            elif row.latency_ratio is not None and row.latency_ratio < 0.95:
                ratio_cell.stylize("green")
            if row.record.status != "ok":
                values[0].stylize("bold red")
            table.add_row(*values)
        console.print(table)
        for line in _fold_common(notes, len(section.rows)) + findings(section):
            console.print(Text("• " + line))
        if has_quantization(section):
            _quantization(section, console)
    if not wide:
        console.print(Text(f"(p90, p99 and their intervals: a terminal of {WIDE_COLUMNS}+ columns, or report.md)", style="dim"))


def _quantization(section: DeviceSection, console: Console) -> None:
    rows = quantization_rows(section)
    runtimes = runtime_headers(rows)
    table = Table(
        title=f"quantization · {section.model} on {section.device}",
        title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False,
    )
    table.add_column("variant", no_wrap=True)
    for header in ("MB", "mAP", "ΔmAP"):
        table.add_column(header, justify="right", no_wrap=True)
    for runtime in runtimes:
        table.add_column(runtime, justify="center")
    for row in rows:
        loads = [Text(row.loads.get(r, "—"), style="red" if row.loads.get(r) == "FAILS" else "") for r in runtimes]
        table.add_row(row.variant, row.size_mb, row.map, row.map_drop, *loads)
    console.print(table)
    layers = sensitive_layers(section)
    if layers:
        top = Table(
            title="most sensitive layers (RMSE/scale; rounding alone ~0.29)",
            title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False,
        )
        for header, justify in (("#", "right"), ("layer", "left"), ("op", "left"), ("RMSE/scale", "right"), ("float", "left")):
            top.add_column(header, justify=justify, no_wrap=header != "layer")  # type: ignore[arg-type]
        for layer in layers[:5]:
            top.add_row(str(layer.rank), layer.layer, layer.op, layer.rmse_over_scale, layer.in_float)
        console.print(top)
    for line in quantization_findings(section):
        console.print(Text("• " + line))


def _fold_common(notes: list[str], n_rows: int) -> list[str]:
    """A flag every row carries (say `under load`) is said once, not per row."""
    per_row = [(n.split(": ", 1)[0], n.split(": ", 1)[1].split(", ")) for n in notes]
    if len(per_row) < n_rows or n_rows < 2:
        return notes
    common = [f for f in per_row[0][1] if all(f in flags for _, flags in per_row)]
    if not common:
        return notes
    out = [f"every variant: {', '.join(common)}"]
    for variant, flags in per_row:
        rest = [f for f in flags if f not in common]
        if rest:
            out.append(f"{variant}: {', '.join(rest)}")
    return out

