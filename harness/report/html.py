"""One self-contained HTML file: tables, inline SVG charts and an inline
script for tooltips and variant toggles; nothing is fetched.

Every string that came from a record, an inventory or a recipe goes through
html.escape: device and model names are user input.
"""

from __future__ import annotations

from html import escape
from typing import Mapping, Sequence

from harness.report import charts, configs, layout, pareto
from harness.report.compare_render import html_table, ratio_dots, summary_line
from harness.report.context import ReportContext
from harness.report.op_profile import TOP_HEADERS, TYPE_HEADERS, VERSUS_HEADERS, OpProfileBlock
from harness.report.history import METRICS, Key
from harness.report.page import inline_code, page, toggles
from harness.report.view import CURVE_CAPTION, HEADERS, WHOLE_MODEL_CAPTION, DeviceSection, SensitiveLayer, short_commit
from harness.results.record import LatencyMs, Record

# The page can do what the files cannot: say so under the shared note.
INTERACTIVE = "Hover a mark for its numbers; untick a variant to hide it everywhere."


class HtmlFormatter:
    """Each block as an HTML fragment (user text escaped)."""

    def group(self, block: layout.GroupHeading) -> str:
        return f"<h2>{escape(block.title)}</h2>"

    def section(self, block: layout.SectionHeading) -> str:
        return f"<h3>{escape(block.section.heading)}</h3>"

    def results(self, block: layout.ResultsTable) -> str:
        return _results(block)

    def ship(self, block: layout.Ship) -> str:
        d = block.decision
        lines = [f"runner-up {d.runner_up}: {d.runner_up_why}"] if d.runner_up else []
        lines += [f"ruled out: {r.text()}" for r in d.ruled_out]
        return (f"<div class='ship'><p class='{'faster' if d.variant else 'slower'}'><strong>{escape(d.headline())}"
                f"</strong></p>{_bullets(lines)}<p class='note'>bounds: {escape(d.bounds)}</p></div>")

    def findings(self, block: layout.Findings) -> str:
        return _bullets(block.lines)

    def charts(self, block: layout.Charts) -> str:
        return _charts(block.section, block.samples_ms)

    def comparison(self, block: layout.Comparison) -> str:
        return (f"<h3>{escape(block.heading)}</h3><p>{escape(summary_line(block.report))}</p>"
                + html_table(block.report) + f"<div class='charts'>{ratio_dots(block.report)}</div>")

    def quantization(self, block: layout.Quantization) -> str:
        return _quantization(block)

    def trend(self, block: layout.TrendBlock) -> str:
        return _trend(block)

    def op_profile(self, block: OpProfileBlock) -> str:
        return _op_profile(block)
    def configurations(self, block: layout.Configurations) -> str:
        return _configurations(block)

    def note(self, block: layout.Note) -> str:
        return f"<p class='note'>{inline_code(block.text)} {escape(INTERACTIVE)}</p>"


def render_html(records: Sequence[Record], *, title: str, context: ReportContext | None = None) -> str:
    report = layout.run_report(records, title=title, context=context)
    return page(title, [toggles(report.variants), *layout.render(report, HtmlFormatter())])


def _bullets(lines: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>" if lines else ""


# The page is 1200 px wide at most: flags wrap, and the runtime column goes
# when the section's heading already names the one runtime every row used.
CELL_CLASSES = {"variant": "l", "flags": "l wrap"}


def _results(block: layout.ResultsTable) -> str:
    headers = [(k, h) for k, h in HEADERS if not (k == "runtime" and block.runtime_in_heading)]
    out = ["<div class='scroll'><table class='results'><thead><tr>"]
    out += [f"<th class='{CELL_CLASSES.get(k, '')}'>{escape(h)}</th>" for k, h in headers]
    out.append("</tr></thead><tbody>")
    for row, c in block.rows:
        out.append(f"<tr class='{'failed' if row.record.status != 'ok' else ''}' data-variant='{escape(row.variant, quote=True)}'>")
        for key, _ in headers:
            klass = row.tone if key == "vs_fp32" else CELL_CLASSES.get(key, "")
            title = f" title='{escape(c.error, quote=True)}'" if key == "variant" and c.error else ""
            out.append(f"<td class='{klass}'{title}>{escape(str(getattr(c, key)))}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _charts(section: DeviceSection, samples_ms: Mapping[Key, tuple[float, ...]]) -> str:
    ok = [row.record for row in section.rows if row.record.status == "ok"]
    points = [pareto.TradeOff(r.model.variant, r.latency_ms.p50, r.accuracy.map) for r in ok if r.latency_ms and r.accuracy]
    dists = [
        charts.Distribution(r.model.variant, samples_ms.get(r.key) or _summary_points(r.latency_ms))
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
        pareto.tradeoff_chart(points, device=section.device),
        charts.distribution_chart(dists, device=section.device),
        charts.bar_chart(memory, title="peak resident memory (MiB)"),
        charts.bar_chart(sizes, title="model size (MB)"),
    ]) + "</div>"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _summary_points(lat: LatencyMs) -> tuple[float, ...]:
    """Without raw samples, the record's own quantiles stand in for them."""
    return tuple(sorted((lat.min, lat.p50, lat.p50, lat.p90, lat.p99, lat.max)))


def _trend(block: layout.TrendBlock) -> str:
    metric = METRICS[block.metric]
    index = {run_id: i for i, run_id in enumerate(block.runs)}
    series = [
        charts.Series(
            line.variant, f"{line.variant}: {block.metric} over {len(line.points)} runs",
            tuple((index[p.run_id], p.value, f"{line.variant} in run {p.run_id} ({p.created_at}"
                   f"{', commit ' + short_commit(p.commit) if p.commit else ''}): {block.metric} {p.value:.3f} {metric.unit}")
                  for p in line.points if p.value is not None),
        )
        for line in block.lines
    ]
    return charts.trend_chart(series, block.runs, title=f"{metric.label} across runs on {block.section.device}",
                              unit=metric.unit)


def _configurations(block: layout.Configurations) -> str:
    """The scaling and runtime tables, a latency-vs-threads line per variant
    and a p50 bar per runtime."""
    section, views = block.section, block.views
    out = []
    for view in configs.tables(views):
        out.append(f"<h3>{escape(view.name)}: {escape(section.model)} on <code>{escape(section.device)}</code></h3>"
                   f"<p class='note'>{escape(view.explain)}</p><table class='configs'><thead><tr>")
        out += [f"<th class='{'l' if h in ('variant', 'runtime') else ''}'>{escape(h)}</th>" for h in view.headers]
        out.append("</tr></thead><tbody>")
        for row in view.rows:
            out.append("<tr>" + "".join(
                f"<td class='{'l' if h in ('variant', 'runtime') else ''}'>{escape(cell)}</td>" for h, cell in zip(view.headers, row)
            ) + "</tr>")
        out.append("</tbody></table>")
    out.append(_bullets(configs.skipped_notes(views)))
    return "\n".join(out) + "<div class='charts'>" + _scaling_chart(views, section.device, "p50_ms") + _scaling_chart(
        views, section.device, "speedup") + "".join(
        _runtime_chart(group) for group in views.runtimes) + "</div>"


def _scaling_chart(views: configs.ConfigViews, device: str, metric: str) -> str:
    """One line per variant and runtime against threads: `p50_ms` or `speedup`."""
    counts = sorted({p.threads for line in views.scaling for p in line.points})
    index = {t: i for i, t in enumerate(counts)}
    series = [
        charts.Series(
            line.variant, f"{line.variant} ({line.setting}) against threads",
            tuple((index[p.threads], value, f"{line.variant} · {line.setting} · {_threads(p.threads)}: p50 {p.p50_ms:.3f} ms, "
                   f"speed-up {configs.fmt_x(p.speedup)}, efficiency {configs.fmt_eff(p.efficiency)}")
                  for p in line.points if (value := getattr(p, metric)) is not None and p.p50_ms is not None),
            name=configs.narrow(f"{line.variant} · {line.setting}"),  # the end label has ~100 px
        )
        for line in views.scaling
    ]
    series = [s for s in series if s.points]
    title, unit = ("p50", "ms") if metric == "p50_ms" else ("speed-up over the fewest threads", "x")
    return charts.trend_chart(series, [_threads(t) for t in counts], title=f"{title} against threads on {device}", unit=unit)


def _runtime_chart(group: configs.RuntimeGroup) -> str:
    bars = [
        charts.Bar(group.variant, e.runtime, e.p50_ms, f"{e.p50_ms:.3f} ms",
                   f"{group.variant}, {_threads(group.threads)}, {e.runtime}: p50 {e.p50_ms:.3f} ms "
                   f"({configs.fmt_x(e.ratio)} the first runtime's)")
        for e in group.entries if e.p50_ms is not None
    ]
    return charts.bar_chart(bars, title=f"{group.variant} · {_threads(group.threads)}: p50 ms per runtime")


def _threads(count: int | None) -> str:
    return "default threads" if count is None else f"{count} thread{'' if count == 1 else 's'}"


def _quantization(block: layout.Quantization) -> str:
    section = block.section
    out = [
        f"<h3>Quantization: {escape(section.model)} on <code>{escape(section.device)}</code></h3>",
        "<table class='quant'><thead><tr><th class='l'>variant</th><th>size MB</th><th>mAP</th><th>mAP vs fp32</th>",
    ]
    out += [f"<th>loads in {escape(r)}</th>" for r in block.runtimes]
    out.append("<th class='l'>how it was made</th></tr></thead><tbody>")
    for row in block.rows:
        out.append(f"<tr data-variant='{escape(row.variant, quote=True)}'><td class='l'>{escape(row.variant)}</td>"
                   f"<td>{row.size_mb}</td><td>{row.map}</td><td>{escape(row.map_drop)}</td>")
        for r in block.runtimes:
            word = row.loads.get(r, "—")
            klass = "slower" if word == "FAILS" else "faster" if word == "ok" else ""
            out.append(f"<td class='{klass}'>{escape(word)}</td>")
        out.append(f"<td class='l wrap'>{escape(row.method)}</td></tr>")
    out.append("</tbody></table>")
    out.append(_bullets(block.findings))
    if block.layers:
        out.append(
            "<p class='note'>Most sensitive layers (QuantizationDebugger on the calibration split; RMSE of the "
            "quantised output in units of its scale, rounding alone gives ~0.29):</p>"
            "<table><thead><tr><th>#</th><th class='l'>layer</th><th class='l'>op</th><th>RMSE / scale</th>"
            "<th>mean error</th><th class='l'>kept in float</th></tr></thead><tbody>"
        )
        for layer in block.layers:
            out.append(
                f"<tr><td>{layer.rank}</td><td class='l' title='{escape(layer.tensor_name, quote=True)}'>{escape(layer.layer)}</td>"
                f"<td class='l'>{escape(layer.op)}</td><td>{layer.rmse_over_scale}</td><td>{escape(layer.mean_error)}</td>"
                f"<td class='l'>{layer.in_float}</td></tr>"
            )
        out.append("</tbody></table>")
        out.append(_sensitivity(block.layers))
    if block.nodes:
        out.append(_nodes(block))
    if block.curve:
        out.append(_curve(block))
    return "\n".join(out)


def _nodes(block: layout.Quantization) -> str:
    out = [f"<p class='note'>{escape(WHOLE_MODEL_CAPTION)}:</p>",
           "<table><thead><tr><th>#</th><th class='l'>layer</th><th class='l'>op</th><th>error</th><th>added</th>"
           "<th>shares its scale</th><th class='l'>kept in float</th></tr></thead><tbody>"]
    for n in block.nodes:
        out.append(f"<tr><td>{n.rank}</td><td class='l' title='{escape(n.node, quote=True)}'>{escape(n.layer)}</td>"
                   f"<td class='l'>{escape(n.op)}</td><td>{n.error}</td><td>{n.added}</td><td>{n.followers}</td>"
                   f"<td class='l'>{n.in_float}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _curve(block: layout.Quantization) -> str:
    """The search's curve: a table, and calibration mAP against this
    device's latency (or against k where a point was not timed)."""
    out = [f"<p class='note'>{escape(CURVE_CAPTION)}:</p>",
           "<table><thead><tr><th>k</th><th class='l'>layers in float</th><th>calibration mAP</th><th>size MB</th>"
           "<th>p50 ms</th></tr></thead><tbody>"]
    for point in block.curve:
        k, layers, map_text, size, p50 = (escape(cell) for cell in point.cells)
        out.append(f"<tr><td>{k}</td><td class='l wrap'>{layers}</td><td>{map_text}</td><td>{size}</td><td>{p50}</td></tr>")
    out.append("</tbody></table>")
    if len(block.curve) > 1:  # one point (k = 0 met the bound) is said by the table
        out.append("<div class='charts'>" + charts.curve_chart(block.curve, device=block.section.device) + "</div>")
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


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: Sequence[int],
                tones: Sequence[str] | None = None, variant: str | None = None) -> str:
    attr = f" data-variant='{escape(variant, quote=True)}'" if variant else ""
    head = "".join(f"<th{' class=l' if i in left else ''}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = []
    for n, row in enumerate(rows):
        tone = tones[n] if tones else ""
        cells = "".join(
            f"<td class='{'l' if i in left else ''}{' ' + tone if tone and i == len(row) - 1 else ''}'>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr{attr}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _op_profile(block: OpProfileBlock) -> str:
    section = block.section
    out = [f"<h3>Per-operator profile: {escape(section.model)} on <code>{escape(section.device)}</code></h3>"]
    if block.source:
        out.append(f"<p class='note'>From the device's runtime ({escape(block.source)}), in a separate profiled "
                   "pass after the timed samples.</p>")
    for v in block.variants:
        out.append(f"<h4 data-variant='{escape(v.variant, quote=True)}'>{escape(v.variant)}</h4>"
                   f"<p class='note'>{escape(v.check)}</p>")
        out.append(_html_table(TOP_HEADERS, v.top, left=(1, 2, 4), variant=v.variant))
        out.append(_html_table(TYPE_HEADERS, v.types, left=(0, 1), variant=v.variant))
    for t in block.versus:
        out.append(f"<p>{escape(t.variant)} vs fp32 per op type (mean µs per run):</p>")
        out.append(_html_table(VERSUS_HEADERS, t.rows, left=(0,), tones=t.faster_or_slower, variant=t.variant))
    out.append(_bullets([*block.unavailable, *block.edgetpu]))
    return "\n".join(out)
