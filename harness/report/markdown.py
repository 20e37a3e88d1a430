"""Markdown report, fit for a pull-request comment or a CI step summary."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from harness.report.compare_render import markdown_table, summary_line
from harness.report.context import ReportContext
from harness.report.view import (
    md_cell,
    HEADERS,
    DeviceSection,
    cells,
    fmt_ms,
    findings,
    has_quantization,
    quantization_findings,
    quantization_rows,
    runtime_headers,
    sections,
    sensitive_layers,
)
from harness.results.record import Record


def _quantization(section: DeviceSection) -> list[str]:
    rows = quantization_rows(section)
    runtimes = runtime_headers(rows)
    out = [f"### Quantization: {md_cell(section.model)} on `{md_cell(section.device)}`", ""]
    out.append("| variant | size MB | mAP | mAP vs fp32 | " + " | ".join(f"loads in {md_cell(r)}" for r in runtimes) + " | how it was made |")
    out.append("|:--|--:|--:|--:|" + "|".join(":-:" for _ in runtimes) + "|:--|")
    for row in rows:
        loads = " | ".join(row.loads.get(r, "—") for r in runtimes)
        out.append(f"| {row.variant} | {row.size_mb} | {row.map} | {row.map_drop} | {loads} | {md_cell(row.method)} |")
    out.append("")
    out.extend(f"- {md_cell(line)}" for line in quantization_findings(section))
    layers = sensitive_layers(section)
    if layers:
        out += ["", "Most sensitive layers (QuantizationDebugger on the calibration split; RMSE of the quantised "
                "output in units of its scale, rounding alone gives ~0.29):", ""]
        out.append("| # | layer | op | RMSE / scale | mean error | kept in float |")
        out.append("|--:|:--|:--|--:|--:|:--|")
        for layer in layers:
            out.append(
                f"| {layer.rank} | `{md_cell(layer.layer)}` | {layer.op} | {layer.rmse_over_scale} | {layer.mean_error} | {layer.in_float} |"
            )
    out.append("")
    return out


def _variant_verdicts(section: DeviceSection, context: ReportContext) -> list[str]:
    for report in context.comparisons:
        if report.kind == "variants":
            rows = tuple(r for r in report.rows if r.device == section.device and r.model == section.model)
            if rows:
                report = replace(report, rows=rows)
                return [f"Each variant vs {report.baseline} (Mann–Whitney on the raw samples): "
                        f"{md_cell(summary_line(report))}", "", *markdown_table(report), ""]
    return []


def _trend(section: DeviceSection, context: ReportContext, last: int = 6) -> list[str]:
    """p50 of each variant in the last runs that measured it, oldest first."""
    mine = [t for t in context.trends if t.key[:2] == (section.device, section.model)]
    if not mine:
        return []
    runs = sorted({p.run_id: p.created_at for t in mine for p in t.points}.items(), key=lambda kv: (kv[1], kv[0]))[-last:]
    out = [f"p50 ms across runs on `{md_cell(section.device)}`:", "",
           "| variant | " + " | ".join(md_cell(r) for r, _ in runs) + " |", "|:--|" + "--:|" * len(runs)]
    for t in mine:
        values = {p.run_id: p.value for p in t.points}
        out.append(f"| {md_cell(t.key[2])} | " + " | ".join(fmt_ms(values.get(r)) for r, _ in runs) + " |")
    return out + [""]


def render_markdown(records: Sequence[Record], *, title: str, context: ReportContext | None = None) -> str:
    context = context or ReportContext()
    out = [f"# {md_cell(title)}", ""]
    group = None
    for section in sections(records):
        if section.group != group:
            group = section.group
            out.extend([f"## {md_cell(group)}", ""])
        out.append(f"### {md_cell(section.heading)}")
        out.append("")
        out.append("| " + " | ".join(h for _, h in HEADERS) + " |")
        out.append("|" + "|".join(":--" if k in ("variant", "flags") else "--:" for k, _ in HEADERS) + "|")
        for row in section.rows:
            c = cells(row)
            out.append("| " + " | ".join(md_cell(str(getattr(c, k))) for k, _ in HEADERS) + " |")
        notes = findings(section)
        if notes:
            out.append("")
            out.extend(f"- {md_cell(line)}" for line in notes)
        out.append("")
        out.extend(_variant_verdicts(section, context))
        if has_quantization(section):
            out.extend(_quantization(section))
        out.extend(_trend(section, context))
    for report in context.comparisons:
        if report.kind == "devices" and report.rows:
            out += [f"## Device vs device: {md_cell(summary_line(report))}", "", *markdown_table(report), ""]
    out.append(
        "Latency: `invoke()` only, every sample kept; p90 interval is the distribution-free 95% "
        "order-statistic bound. Ratios compare with fp32 on the same device in the same run. "
        "mAP is COCO mAP@[.5:.95] on the device's own detections; its change against fp32 is in points (0.01 mAP; negative = lost)."
    )
    return "\n".join(out) + "\n"
