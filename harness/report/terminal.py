"""The rich terminal report: one table per (device, model).

Formats the blocks harness/report/layout.py lists. The terminal is the
short form printed after a run: charts, comparisons and trends are in
report.md and report.html, so their blocks print nothing here."""

from __future__ import annotations

from typing import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.report import configs, layout
from harness.report.context import ReportContext
from harness.report.op_profile import OpProfileBlock
from harness.report.view import TERMINAL_HEADERS as HEADERS
from harness.results.record import Record

# Below this width the table keeps the columns a decision needs and the
# flags move under it; the Markdown and HTML reports always carry them all.
WIDE_COLUMNS = 130
NARROW_KEYS = ("variant", "p50", "vs_fp32", "peak_mb", "size_both", "map", "map_drop")
WIDE_KEYS = tuple(k for k, _ in HEADERS if k != "size_both")
TONE_STYLES = {"slower": "red", "faster": "green", "": ""}
# The terminal lists the few most sensitive layers; report.md lists them all.
TERMINAL_LAYERS = 5
# ... and the few op types that take most of a variant's time.
TERMINAL_OPS = 4


def _table(title: str, *, collapse_padding: bool = False) -> Table:
    return Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1),
                 pad_edge=False, collapse_padding=collapse_padding)


class TerminalFormatter:
    """Prints each block on a rich console."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.wide = console.width >= WIDE_COLUMNS
        keys = WIDE_KEYS if self.wide else NARROW_KEYS
        self.headers = tuple((k, h) for k, h in HEADERS if k in keys)

    def group(self, block: layout.GroupHeading) -> None:
        self.console.rule(Text(block.title, style="bold"), align="left")

    def section(self, block: layout.SectionHeading) -> None:
        pass  # the results table's title carries the heading

    def results(self, block: layout.ResultsTable) -> None:
        table = _table(f"{self.title} · {block.section.heading}", collapse_padding=True)
        for key, header in self.headers:
            table.add_column(header, justify="left" if key in ("variant", "flags") else "right", no_wrap=key != "flags")
        notes: list[str] = []
        for row, c in block.rows:
            values = [Text(str(getattr(c, key)), style=TONE_STYLES[row.tone] if key == "vs_fp32" else "")
                      for key, _ in self.headers]
            if not self.wide and c.flags and row.record.status == "ok":
                notes.append(f"{c.variant}: {c.flags}")
            if row.record.status != "ok":
                values[0].stylize("bold red")
            table.add_row(*values)
        self.console.print(table)
        self._bullets(_fold_common(notes, len(block.rows)))

    def ship(self, block: layout.Ship) -> None:
        d = block.decision
        self.console.print(Text(d.headline(), style="bold green" if d.variant else "bold red"))
        if d.runner_up:
            self.console.print(Text(f"runner-up {d.runner_up}: {d.runner_up_why}"))
        self._bullets([f"ruled out: {r.text()}" for r in d.ruled_out])
        self.console.print(Text(f"bounds: {d.bounds}", style="dim"))

    def findings(self, block: layout.Findings) -> None:
        self._bullets(block.lines)

    def charts(self, block: layout.Charts) -> None:
        pass  # report.html draws them

    def comparison(self, block: layout.Comparison) -> None:
        pass  # report.md and report.html; `harness report --versus` prints one as a table

    def quantization(self, block: layout.Quantization) -> None:
        table = _table(f"quantization · {block.section.model} on {block.section.device}")
        table.add_column("variant", no_wrap=True)
        for header in ("MB", "mAP", "ΔmAP"):
            table.add_column(header, justify="right", no_wrap=True)
        for runtime in block.runtimes:
            table.add_column(runtime, justify="center")
        for row in block.rows:
            loads = [Text(row.loads.get(r, "—"), style="red" if row.loads.get(r) == "FAILS" else "") for r in block.runtimes]
            table.add_row(row.variant, row.size_mb, row.map, row.map_drop, *loads)
        self.console.print(table)
        if block.layers:
            self._small_table("most sensitive layers (RMSE/scale; rounding alone ~0.29)", ("#", "layer", "op", "RMSE/scale", "float"),
                              [(str(x.rank), x.layer, x.op, x.rmse_over_scale, x.in_float) for x in block.layers[:TERMINAL_LAYERS]])
        if block.nodes:
            self._small_table("where int8's error enters (whole model: error = RMSE/std, added over its inputs)",
                              ("#", "layer", "op", "added", "float"),
                              [(str(n.rank), n.layer, n.op, n.added, n.in_float) for n in block.nodes[:TERMINAL_LAYERS]])
        if block.curve:
            self._small_table("selective-int8 search: k layers in float (calibration mAP; p50 on this device, short plan)",
                              ("k", "layers in float", "mAP", "MB", "p50 ms"), [point.cells for point in block.curve])
        self._bullets(block.findings)

    def trend(self, block: layout.TrendBlock) -> None:
        pass  # report.md and report.html; `harness history --trend` prints one as a table

    def op_profile(self, block: OpProfileBlock) -> None:
        """Compact: a line per variant (its op types and slowest operators)
        and one table of every variant against fp32; report.md has the
        full tables."""
        lines = []
        for v in block.variants:
            types = ", ".join(f"{row[0]} {row[4]}" for row in v.types[:TERMINAL_OPS])
            slowest = ", ".join(f"{row[1]} {row[5]} µs" for row in v.top[:3])
            lines.append(f"{v.variant}: by op type {types}; slowest operators {slowest}; {v.check}")
        if lines:
            self.console.print(Text(f"per-operator profile · {block.section.model} on {block.section.device}", style="bold"))
        self._bullets(lines)
        if block.versus:
            table = _table("op type µs per run against fp32")
            table.add_column("op type", no_wrap=True)
            table.add_column("fp32", justify="right", no_wrap=True)
            for t in block.versus:
                table.add_column(t.variant, justify="right", no_wrap=True)
            cells = {t.variant: {row[0]: (row, tone) for row, tone in zip(t.rows, t.faster_or_slower)} for t in block.versus}
            for op_type in dict.fromkeys(row[0] for t in block.versus for row in t.rows):
                fp32 = next(cells[t.variant][op_type][0][1] for t in block.versus if op_type in cells[t.variant])
                values = []
                for t in block.versus:
                    row, tone = cells[t.variant].get(op_type, (None, ""))
                    text = "—" if row is None or row[3] == "—" else f"{row[2]} ({row[3]})"
                    values.append(Text(row[2] if row is not None and text == "—" else text, style=TONE_STYLES[tone]))
                table.add_row(op_type, fp32, *values)
            self.console.print(table)
        self._bullets([*block.unavailable, *block.edgetpu])

    def configurations(self, block: layout.Configurations) -> None:
        for view in configs.tables(block.views, short=True):
            table = _table(f"{view.name.lower()} · {block.section.model} on {block.section.device} ({view.explain})",
                           collapse_padding=True)
            for header in view.headers:
                table.add_column(header, justify="left" if header in ("variant", "runtime") else "right", no_wrap=True)
            for row in view.rows:
                table.add_row(*row)
            self.console.print(table)
        self._bullets(configs.skipped_notes(block.views))

    def note(self, block: layout.Note) -> None:
        if not self.wide:
            self.console.print(Text(f"(p90, p99 and their intervals: a terminal of {WIDE_COLUMNS}+ columns, or report.md)",
                                    style="dim"))

    def _small_table(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """Numbers right, names left; only the name column (the second) wraps."""
        table = _table(title)
        for i, header in enumerate(headers):
            left = i == 1 or header in ("op", "float")
            table.add_column(header, justify="left" if left else "right", no_wrap=i != 1)
        for row in rows:
            table.add_row(*row)
        self.console.print(table)

    def _bullets(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.console.print(Text("• " + line))


def render_terminal(records: Sequence[Record], console: Console, *, title: str, context: ReportContext | None = None) -> None:
    layout.render(layout.run_report(records, title=title, context=context), TerminalFormatter(console, title))


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
