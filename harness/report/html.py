"""One self-contained HTML file: tables and inline SVG charts, no network.

Every string that came from a record, an inventory or a recipe goes through
html.escape: device and model names are user input.
"""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

from harness.report.view import (
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
)
from harness.results.record import Record

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1d232a;max-width:1200px}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-variant-numeric:tabular-nums}
th,td{padding:.3rem .6rem;border-bottom:1px solid #dde3ea;text-align:right;white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
th{background:#f3f6f9}td.l,th.l{text-align:left}
tr.failed td{color:#b00020}.slower{color:#b00020}.faster{color:#137333}
.note{color:#4a5562;font-size:.9rem}td.wrap{white-space:normal;max-width:28rem}.charts{display:flex;gap:2rem;flex-wrap:wrap}
svg text{font:11px system-ui,sans-serif;fill:#1d232a}
"""


def render_html(records: Sequence[Record], *, title: str) -> str:
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    group = None
    for section in sections(records):
        if section.group != group:
            group = section.group
            parts.append(f"<h2>{escape(group)}</h2>")
        parts.append(_section(section))
    parts.append(
        "<p class='note'>Latency: <code>invoke()</code> only, every sample kept; the p90 interval is the "
        "distribution-free 95% order-statistic bound. Ratios compare with fp32 on the same device in the same "
        "run. mAP is COCO mAP@[.5:.95] on the device's own detections; its change against fp32 in points (0.01 mAP; negative = lost).</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def _section(section: DeviceSection) -> str:
    out = [
        f"<h3>{escape(section.heading)}</h3>",
        "<div class='scroll'><table><thead><tr>",
    ]
    out += [f"<th class='{'l' if k in ('variant', 'flags') else ''}'>{escape(h)}</th>" for k, h in HEADERS]
    out.append("</tr></thead><tbody>")
    for row in section.rows:
        c = cells(row)
        cls = "failed" if row.record.status != "ok" else ""
        out.append(f"<tr class='{cls}'>")
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
    out.append("<div class='charts'>" + _scatter(section) + _size_bars(section) + "</div>")
    if has_quantization(section):
        out.append(_quantization(section))
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
        out.append(f"<tr><td class='l'>{escape(row.variant)}</td><td>{row.size_mb}</td><td>{row.map}</td><td>{escape(row.map_drop)}</td>")
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
    return "\n".join(out)


def _scatter(section: DeviceSection) -> str:
    """p50 latency (x) against mAP (y): the deployment trade-off at a glance."""
    points = [
        (row.variant, row.record.latency_ms.p50, row.record.accuracy.map)
        for row in section.rows
        if row.record.latency_ms and row.record.accuracy
    ]
    if not points:
        return ""
    w, h, pad = 460, 280, 45
    xs, ys = [p[1] for p in points], [p[2] for p in points]
    # Log latency axis: variants span 0.5 ms to 100+ ms (int16x8), and a
    # linear axis would pile every fast variant onto the origin.
    lx0 = math.floor(math.log10(min(xs)) * 4) / 4
    lx1 = math.ceil(math.log10(max(xs)) * 4) / 4
    lx1 = lx1 if lx1 > lx0 else lx0 + 0.25
    y0, y1 = max(0.0, min(ys) - 0.05), min(1.0, max(ys) + 0.05)
    y1 = y1 if y1 > y0 else y0 + 0.1

    def sx(v: float) -> float:
        return pad + (math.log10(v) - lx0) / (lx1 - lx0) * (w - 2 * pad - 60)

    def sy(v: float) -> float:
        return h - pad - (v - y0) / (y1 - y0) * (h - 2 * pad)

    svg = [
        f"<svg width='{w}' height='{h}' role='img' aria-label='latency versus mAP'>",
        f"<line x1='{pad}' y1='{h - pad}' x2='{w - pad}' y2='{h - pad}' stroke='#888'/>",
        f"<line x1='{pad}' y1='{pad}' x2='{pad}' y2='{h - pad}' stroke='#888'/>",
        f"<text x='{w / 2}' y='{h - 8}' text-anchor='middle'>p50 latency (ms, log scale)</text>",
        f"<text x='12' y='{h / 2}' transform='rotate(-90 12 {h / 2})' text-anchor='middle'>mAP</text>",
        f"<text x='{pad - 4}' y='{sy(y0) + 4:.1f}' text-anchor='end'>{y0:.2f}</text>",
        f"<text x='{pad - 4}' y='{sy(y1) + 4:.1f}' text-anchor='end'>{y1:.2f}</text>",
    ]
    for tick in _log_ticks(10**lx0, 10**lx1):
        svg.append(f"<line x1='{sx(tick):.1f}' y1='{h - pad}' x2='{sx(tick):.1f}' y2='{h - pad + 4}' stroke='#888'/>")
        svg.append(f"<text x='{sx(tick):.1f}' y='{h - pad + 16}' text-anchor='middle'>{tick:g}</text>")
    placed: list[tuple[float, float, float]] = []  # (x, y, width) of labels drawn
    for name, x, y in sorted(points, key=lambda p: (-p[2], p[1])):
        cx, cy = sx(x), sy(y)
        svg.append(f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='4' fill='#1f6feb'><title>{escape(name)}</title></circle>")
        # Nudge the label down until it clears the labels already drawn.
        label_w, ly = 6.2 * len(name), cy - 6
        while any(abs(ly - py) < 12 and cx + 6 < px + pw and px < cx + 6 + label_w for px, py, pw in placed):
            ly += 12
        placed.append((cx + 6, ly, label_w))
        svg.append(f"<text x='{cx + 6:.1f}' y='{ly:.1f}'>{escape(name)}</text>")
    svg.append("</svg>")
    return "".join(svg)


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 x powers of ten inside [lo, hi]."""
    ticks = []
    for exponent in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if lo <= value <= hi:
                ticks.append(value)
    return ticks


def _size_bars(section: DeviceSection) -> str:
    bars = [(row.variant, row.record.model.size_bytes) for row in section.rows if row.record.model.size_bytes]
    if not bars:
        return ""
    w, bar_h, label_w = 420, 20, 110
    top = max(b[1] for b in bars)
    svg = [f"<svg width='{w}' height='{len(bars) * (bar_h + 6) + 24}' role='img' aria-label='model size'>"]
    svg.append("<text x='0' y='12'>model size (MB)</text>")
    for i, (name, size) in enumerate(bars):
        y = 20 + i * (bar_h + 6)
        length = (w - label_w - 60) * size / top
        svg.append(f"<text x='0' y='{y + 14}'>{escape(name)}</text>")
        svg.append(f"<rect x='{label_w}' y='{y}' width='{length:.1f}' height='{bar_h}' fill='#8fb8f0'/>")
        svg.append(f"<text x='{label_w + length + 4:.1f}' y='{y + 14}'>{size / 1e6:.2f}</text>")
    svg.append("</svg>")
    return "".join(svg)
