"""One self-contained HTML file: tables, inline SVG charts and an inline
script for tooltips and variant toggles; nothing is fetched.

Every string that came from a record, an inventory or a recipe goes through
html.escape: device and model names are user input.
"""

from __future__ import annotations

from dataclasses import replace
from html import escape
from typing import Sequence

from harness.report import charts
from harness.report.compare import ComparisonReport
from harness.report.compare_render import html_table, ratio_dots, summary_line
from harness.report.context import ReportContext
from harness.report.history import METRICS
from harness.report.page import page, toggles
from harness.report.view import (
    SensitiveLayer,
    HEADERS,
    DeviceSection,
    cells,
    findings,
    has_quantization,
    quantization_findings,
    quantization_rows,
    runtime_headers,
    sections,
    sensitive_layers,
    short_commit,
)
from harness.results.record import LatencyMs, Record

NOTE = (
    "<p class='note'>Latency: <code>invoke()</code> only, every sample kept; the p90 interval is the "
    "distribution-free 95% order-statistic bound. Ratios compare with fp32 on the same device in the same "
    "run. mAP is COCO mAP@[.5:.95] on the device's own detections; its change against fp32 in points (0.01 mAP; "
    "negative = lost). Hover a mark for its numbers; untick a variant to hide it everywhere.</p>"
)


def render_html(records: Sequence[Record], *, title: str, context: ReportContext | None = None) -> str:
    context = context or ReportContext()
    body = [toggles(r.model.variant for section in sections(records) for r in (row.record for row in section.rows))]
    group = None
    for section in sections(records):
        if section.group != group:
            group = section.group
            body.append(f"<h2>{escape(group)}</h2>")
        body.append(_section(section, context))
    for comparison in context.comparisons:
        if comparison.kind == "devices":
            body.append(_comparison(comparison, "Device vs device (same variant, Mann–Whitney on the raw samples)"))
    body.append(NOTE)
    return page(title, body)


def _comparison(report: ComparisonReport, heading: str) -> str:
    if not report.rows:
        return ""
    return (f"<h3>{escape(heading)}</h3><p>{escape(summary_line(report))}</p>" + html_table(report)
            + f"<div class='charts'>{ratio_dots(report)}</div>")


def _section_comparison(section: DeviceSection, context: ReportContext) -> str:
    for report in context.comparisons:
        if report.kind == "variants":
            rows = tuple(r for r in report.rows if r.device == section.device and r.model == section.model)
            return _comparison(replace(report, rows=rows), f"Each variant vs {report.baseline} on {section.device} "
                               "(Mann–Whitney on the raw samples)")
    return ""


def _charts(section: DeviceSection, context: ReportContext) -> str:
    ok = [row.record for row in section.rows if row.record.status == "ok"]
    points = [charts.TradeOff(r.model.variant, r.latency_ms.p50, r.accuracy.map) for r in ok if r.latency_ms and r.accuracy]
    dists = [
        charts.Distribution(r.model.variant, context.samples_ms.get(r.key) or _summary_points(r.latency_ms))
        for r in ok if r.latency_ms
    ]
    memory = [
        charts.Bar(r.model.variant, r.model.variant, r.memory_mb.peak, f"{r.memory_mb.peak:.1f}",
                   f"{r.model.variant}: peak RSS {r.memory_mb.peak:.1f} MiB (after load "
                   f"{_num(r.memory_mb.after_load)}, before {_num(r.memory_mb.baseline)})")
        for r in ok if r.memory_mb and r.memory_mb.peak is not None
    ]
    sizes = [
        charts.Bar(row.variant, row.variant, row.record.model.size_bytes / 1e6, f"{row.record.model.size_bytes / 1e6:.2f}",
                   f"{row.variant}: {row.record.model.size_bytes} bytes")
        for row in section.rows if row.record.model.size_bytes
    ]
    return "<div class='charts'>" + "".join([
        charts.tradeoff_chart(points, device=section.device),
        charts.distribution_chart(dists, device=section.device),
        charts.bar_chart(memory, title="peak resident memory (MiB)"),
        charts.bar_chart(sizes, title="model size (MB)"),
    ]) + "</div>"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _summary_points(lat: LatencyMs) -> tuple[float, ...]:
    """Without raw samples, the record's own quantiles stand in for them."""
    return tuple(sorted((lat.min, lat.p50, lat.p50, lat.p90, lat.p99, lat.max)))


def _trend(section: DeviceSection, context: ReportContext) -> str:
    mine = [t for t in context.trends if t.key[:2] == (section.device, section.model)]
    if not mine:
        return ""
    runs = sorted({p.run_id: p.created_at for t in mine for p in t.points}.items(), key=lambda kv: (kv[1], kv[0]))
    index = {run_id: i for i, (run_id, _) in enumerate(runs)}
    series = [
        charts.Series(
            t.key[2], f"{t.key[2]}: p50 over {len(t.points)} runs",
            tuple((index[p.run_id], p.value, f"{t.key[2]} in run {p.run_id} ({p.created_at}"
                   f"{', commit ' + short_commit(p.source_commit) if p.source_commit else ''}): p50 {p.value:.3f} ms")
                  for p in t.points if p.value is not None),
        )
        for t in mine
    ]
    metric = METRICS["p50"]
    return charts.trend_chart(series, [r for r, _ in runs], title=f"{metric.label} across runs on {section.device}",
                              unit=metric.unit)


def _section(section: DeviceSection, context: ReportContext) -> str:
    out = [
        f"<h3>{escape(section.heading)}</h3>",
        "<div class='scroll'><table><thead><tr>",
    ]
    out += [f"<th class='{'l' if k in ('variant', 'flags') else ''}'>{escape(h)}</th>" for k, h in HEADERS]
    out.append("</tr></thead><tbody>")
    for row in section.rows:
        c = cells(row)
        cls = "failed" if row.record.status != "ok" else ""
        out.append(f"<tr class='{cls}' data-variant='{escape(row.variant, quote=True)}'>")
        for key, _ in HEADERS:
            value = escape(str(getattr(c, key)))
            klass = "l" if key in ("variant", "flags") else ""
            if key == "vs_fp32" and row.latency_ratio is not None:
                klass = "slower" if row.latency_ratio > 1.05 else "faster" if row.latency_ratio < 0.95 else ""
            title = f" title='{escape(c.error, quote=True)}'" if key == "variant" and c.error else ""
            out.append(f"<td class='{klass}'{title}>{value}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    notes = findings(section)
    if notes:
        out.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    out.append(_charts(section, context))
    out.append(_section_comparison(section, context))
    if has_quantization(section):
        out.append(_quantization(section))
    out.append(_trend(section, context))
    return "\n".join(out)


def _quantization(section: DeviceSection) -> str:
    rows = quantization_rows(section)
    runtimes = runtime_headers(rows)
    out = [
        f"<h3>Quantization: {escape(section.model)} on <code>{escape(section.device)}</code></h3>",
        "<table class='quant'><thead><tr><th class='l'>variant</th><th>size MB</th><th>mAP</th><th>mAP vs fp32</th>",
    ]
    out += [f"<th>loads in {escape(r)}</th>" for r in runtimes]
    out.append("<th class='l'>how it was made</th></tr></thead><tbody>")
    for row in rows:
        out.append(f"<tr data-variant='{escape(row.variant, quote=True)}'><td class='l'>{escape(row.variant)}</td>"
                   f"<td>{row.size_mb}</td><td>{row.map}</td><td>{escape(row.map_drop)}</td>")
        for r in runtimes:
            word = row.loads.get(r, "—")
            klass = "slower" if word == "FAILS" else "faster" if word == "ok" else ""
            out.append(f"<td class='{klass}'>{escape(word)}</td>")
        out.append(f"<td class='l wrap'>{escape(row.method)}</td></tr>")
    out.append("</tbody></table>")
    notes = quantization_findings(section)
    if notes:
        out.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    layers = sensitive_layers(section)
    if layers:
        out.append(
            "<p class='note'>Most sensitive layers (QuantizationDebugger on the calibration split; RMSE of the "
            "quantised output in units of its scale, rounding alone gives ~0.29):</p>"
            "<table><thead><tr><th>#</th><th class='l'>layer</th><th class='l'>op</th><th>RMSE / scale</th>"
            "<th>mean error</th><th class='l'>kept in float</th></tr></thead><tbody>"
        )
        for layer in layers:
            out.append(
                f"<tr><td>{layer.rank}</td><td class='l' title='{escape(layer.tensor_name, quote=True)}'>{escape(layer.layer)}</td>"
                f"<td class='l'>{escape(layer.op)}</td><td>{layer.rmse_over_scale}</td><td>{escape(layer.mean_error)}</td>"
                f"<td class='l'>{layer.in_float}</td></tr>"
            )
        out.append("</tbody></table>")
        out.append(_sensitivity(layers))
    return "\n".join(out)


# Rounding alone (a uniform error of one quantisation step) gives an RMSE of
# 1/sqrt(12) = 0.29 of the scale: layers near it lose nothing to int8.
ROUNDING_RMSE_OVER_SCALE = 12 ** -0.5


def _sensitivity(layers: Sequence[SensitiveLayer]) -> str:
    bars = [
        charts.Bar("", layer.layer, float(layer.rmse_over_scale), layer.rmse_over_scale,
                   f"#{layer.rank} {layer.layer} ({layer.op}): RMSE/scale {layer.rmse_over_scale}, mean error "
                   f"{layer.mean_error}, kept in float: {layer.in_float}; tensor {layer.tensor_name}",
                   highlight=layer.in_float == "yes")
        for layer in layers
    ]
    return "<div class='charts'>" + charts.bar_chart(
        bars, title="quantization sensitivity per layer (RMSE / scale; red: kept in float)",
        reference=(ROUNDING_RMSE_OVER_SCALE, "rounding alone"),
    ) + "</div>"
