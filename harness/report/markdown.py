"""Markdown report, fit for a pull-request comment or a CI step summary.

Formats the blocks harness/report/layout.py lists; decides nothing about
what a report holds."""

from __future__ import annotations

from typing import Sequence

from harness.report import configs, layout
from harness.report.compare_render import markdown_table, summary_line
from harness.report.context import ReportContext
from harness.report.op_profile import TOP_HEADERS, TYPE_HEADERS, VERSUS_HEADERS, OpProfileBlock
from harness.report.view import CURVE_CAPTION, WHOLE_MODEL_CAPTION, HEADERS, fmt_ms, md_cell
from harness.results.record import Record

# A pull-request comment is narrow: the trend table shows the last runs only.
TREND_RUNS = 6


class MarkdownFormatter:
    """Each block as Markdown lines."""

    def group(self, block: layout.GroupHeading) -> list[str]:
        return [f"## {md_cell(block.title)}", ""]

    def section(self, block: layout.SectionHeading) -> list[str]:
        return [f"### {md_cell(block.section.heading)}", ""]

    def results(self, block: layout.ResultsTable) -> list[str]:
        out = ["| " + " | ".join(h for _, h in HEADERS) + " |",
               "|" + "|".join(":--" if k in ("variant", "flags") else "--:" for k, _ in HEADERS) + "|"]
        out += ["| " + " | ".join(md_cell(str(getattr(c, k))) for k, _ in HEADERS) + " |" for _, c in block.rows]
        return out + [""]

    def ship(self, block: layout.Ship) -> list[str]:
        d = block.decision
        out = [f"**{md_cell(d.headline())}**", ""]
        if d.runner_up:
            out.append(f"- runner-up {md_cell(d.runner_up)}: {md_cell(d.runner_up_why)}")
        out += [f"- ruled out: {md_cell(r.text())}" for r in d.ruled_out]
        return out + ["", f"Bounds: {md_cell(d.bounds)}.", ""]

    def findings(self, block: layout.Findings) -> list[str]:
        return [f"- {md_cell(line)}" for line in block.lines] + [""]

    def charts(self, block: layout.Charts) -> list[str]:
        return []  # drawn in report.html; Markdown has no inline SVG a PR comment shows

    def comparison(self, block: layout.Comparison) -> list[str]:
        line = f"{md_cell(block.heading)}: {md_cell(summary_line(block.report))}"
        return [f"## {line}" if block.run_wide else line, "", *markdown_table(block.report), ""]

    def quantization(self, block: layout.Quantization) -> list[str]:
        section = block.section
        out = [f"### Quantization: {md_cell(section.model)} on `{md_cell(section.device)}`", ""]
        out.append("| variant | size MB | mAP | mAP vs fp32 | " + " | ".join(f"loads in {md_cell(r)}" for r in block.runtimes)
                   + " | how it was made |")
        out.append("|:--|--:|--:|--:|" + "|".join(":-:" for _ in block.runtimes) + "|:--|")
        for row in block.rows:
            loads = " | ".join(row.loads.get(r, "—") for r in block.runtimes)
            out.append(f"| {row.variant} | {row.size_mb} | {row.map} | {row.map_drop} | {loads} | {md_cell(row.method)} |")
        out.append("")
        out.extend(f"- {md_cell(line)}" for line in block.findings)
        if block.layers:
            out += ["", "Most sensitive layers (QuantizationDebugger on the calibration split; RMSE of the quantised "
                    "output in units of its scale, rounding alone gives ~0.29):", ""]
            out.append("| # | layer | op | RMSE / scale | mean error | kept in float |")
            out.append("|--:|:--|:--|--:|--:|:--|")
            out += [f"| {layer.rank} | `{md_cell(layer.layer)}` | {layer.op} | {layer.rmse_over_scale} | "
                    f"{layer.mean_error} | {layer.in_float} |" for layer in block.layers]
        if block.nodes:
            out += ["", f"{WHOLE_MODEL_CAPTION}:", "", "| # | layer | op | error | added | shares its scale | kept in float |",
                    "|--:|:--|:--|--:|--:|--:|:--|"]
            out += [f"| {n.rank} | `{md_cell(n.layer)}` | {n.op} | {n.error} | {n.added} | {n.followers} | {n.in_float} |"
                    for n in block.nodes]
        if block.curve:
            out += ["", f"{CURVE_CAPTION}:", "", "| k | layers in float | calibration mAP | size MB | p50 ms |", "|--:|:--|--:|--:|--:|"]
            out += ["| " + " | ".join(md_cell(cell) for cell in point.cells) + " |" for point in block.curve]
        return out + [""]

    def trend(self, block: layout.TrendBlock) -> list[str]:
        runs = block.runs[-TREND_RUNS:]
        out = [f"{block.metric} ms across runs on `{md_cell(block.section.device)}`:", "",
               "| variant | " + " | ".join(md_cell(r) for r in runs) + " |", "|:--|" + "--:|" * len(runs)]
        for line in block.lines:
            values = {p.run_id: p.value for p in line.points}
            out.append(f"| {md_cell(line.variant)} | " + " | ".join(fmt_ms(values.get(r)) for r in runs) + " |")
        return out + [""]

    def op_profile(self, block: OpProfileBlock) -> list[str]:
        section = block.section
        out = [f"### Per-operator profile: {md_cell(section.model)} on `{md_cell(section.device)}`", ""]
        if block.source:
            out += [f"From the device's runtime ({md_cell(block.source)}), in a separate profiled pass after the "
                    "timed samples.", ""]
        for v in block.variants:
            out += [f"**{md_cell(v.variant)}**: {md_cell(v.check)}", "", "Top operators:", ""]
            out += _md_table(TOP_HEADERS, v.top, left=(1, 2, 4))
            out += ["By op type:", ""]
            out += _md_table(TYPE_HEADERS, v.types, left=(0, 1))
        for t in block.versus:
            out += [f"{md_cell(t.variant)} vs fp32 per op type (mean µs per run):", ""]
            out += _md_table(VERSUS_HEADERS, t.rows, left=(0,))
        out += [f"- {md_cell(line)}" for line in (*block.unavailable, *block.edgetpu)]
        return out + ([""] if block.unavailable or block.edgetpu else [])

    def configurations(self, block: layout.Configurations) -> list[str]:
        out: list[str] = []
        for view in configs.tables(block.views):
            out += [f"#### {view.name}: {md_cell(block.section.model)} on `{md_cell(block.section.device)}` "
                    f"({md_cell(view.explain)})", "", "| " + " | ".join(view.headers) + " |",
                    "|" + "|".join(":--" if h in ("variant", "runtime") else "--:" for h in view.headers) + "|"]
            out += ["| " + " | ".join(md_cell(cell) for cell in row) + " |" for row in view.rows] + [""]
        notes = configs.skipped_notes(block.views)
        return out + [f"- {md_cell(line)}" for line in notes] + ([""] if notes else [])

    def note(self, block: layout.Note) -> list[str]:
        return [block.text]


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: Sequence[int]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(":--" if i in left else "--:" for i in range(len(headers))) + "|"]
    return out + ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows] + [""]


def render_markdown(records: Sequence[Record], *, title: str, context: ReportContext | None = None) -> str:
    report = layout.run_report(records, title=title, context=context)
    lines = [f"# {md_cell(report.title)}", ""]
    for part in layout.render(report, MarkdownFormatter()):
        lines += part
    return "\n".join(lines) + "\n"
