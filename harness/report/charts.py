"""Inline SVG charts for the HTML report: no library, no network.

Every mark that stands for a variant carries ``data-variant`` (the report's
toggles hide and show it) and ``data-tip`` (the hover tooltip's text); both
are attribute-escaped, and every text node goes through html.escape, since
device, model and layer names are user input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Callable, Sequence

from harness.measure.stats import quantile
from harness.report.view import VARIANT_ORDER, CurvePoint, fmt_ms

# Colour per variant, stable across every chart of a report.
_PALETTE = ("#1f6feb", "#8250df", "#1a7f37", "#bf8700", "#cf222e", "#6e7781", "#0a7ea4", "#d2508c", "#57606a")
MISC_COLOUR = "#444c56"  # a variant outside the palette, a verdict without a colour


def colour(variant: str) -> str:
    return _PALETTE[VARIANT_ORDER.index(variant) % len(_PALETTE)] if variant in VARIANT_ORDER else MISC_COLOUR


def mark(variant: str, tip: str) -> str:
    """The attributes every variant mark carries (escaped for an attribute)."""
    return f" data-variant='{escape(variant, quote=True)}' data-tip='{escape(tip, quote=True)}'"


def svg_open(width: int, height: int, label: str) -> str:
    return f"<svg class='chart' width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' aria-label='{escape(label, quote=True)}'>"


def svg_title(text: str, x: float = 0, y: float = 12) -> str:
    return f"<text x='{x}' y='{y}' class='ct'>{escape(text)}</text>"


def log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 x powers of ten inside [lo, hi]."""
    ticks = []
    for exponent in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if lo <= value <= hi:
                ticks.append(value)
    return ticks


def linear_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round steps (1, 2, 5 x 10^k) covering [lo, hi]."""
    span = hi - lo if hi > lo else abs(hi) or 1.0
    raw = span / max(1, count)
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


@dataclass(frozen=True)
class LogAxis:
    """Maps values onto [start, end] pixels on a log10 scale, with padded
    quarter-decade bounds so the extremes never sit on the frame."""

    lo: float
    hi: float
    start: float
    end: float

    @classmethod
    def fit(cls, values: Sequence[float], start: float, end: float) -> "LogAxis":
        positive = [v for v in values if v > 0] or [1.0]
        lo = math.floor(math.log10(min(positive)) * 4) / 4
        hi = math.ceil(math.log10(max(positive)) * 4) / 4
        return cls(10**lo, 10 ** (hi if hi > lo else lo + 0.25), start, end)

    def __call__(self, value: float) -> float:
        value = max(value, self.lo)
        return self.start + (math.log10(value) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo)) * (
            self.end - self.start
        )


def frame(x0: float, y0: float, x1: float, y1: float) -> list[str]:
    return [
        f"<line x1='{x0}' y1='{y1}' x2='{x1}' y2='{y1}' stroke='#888'/>",
        f"<line x1='{x0}' y1='{y0}' x2='{x0}' y2='{y1}' stroke='#888'/>",
    ]


def xtick(x: float, y: float, label: str) -> str:
    return (f"<line x1='{x:.1f}' y1='{y}' x2='{x:.1f}' y2='{y + 4}' stroke='#888'/>"
            f"<text x='{x:.1f}' y='{y + 16}' text-anchor='middle'>{escape(label)}</text>")


# -- latency distributions ------------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """One variant's latency samples in ms, sorted (the raw samples when the
    store has them, else the record's own quantiles)."""

    variant: str
    sorted_ms: tuple[float, ...]

    def q(self, p: float) -> float:
        return quantile(self.sorted_ms, p)


def distribution_chart(dists: Sequence[Distribution], *, device: str) -> str:
    """Per variant: a density strip of every sample (log-binned histogram)
    over a box plot (box p25–p75, whiskers p1–p99, median bar, p90 tick,
    min and max dots). Nothing clipped: the tail is what users feel."""
    dists = [d for d in dists if d.sorted_ms]
    if not dists:
        return ""
    label_w, w, row_h, top = 110, 560, 40, 28
    h = top + row_h * len(dists) + 30
    x = LogAxis.fit([d.sorted_ms[0] for d in dists] + [d.sorted_ms[-1] for d in dists], label_w, w - 20)
    svg = [svg_open(w, h, f"latency distributions on {device}"), svg_title(f"latency distribution per variant on {device} (ms, log scale)")]
    for tick in log_ticks(x.lo, x.hi):
        svg.append(f"<line x1='{x(tick):.1f}' y1='{top}' x2='{x(tick):.1f}' y2='{h - 30}' stroke='#eee'/>")
        svg.append(xtick(x(tick), h - 30, f"{tick:g}"))
    for i, d in enumerate(dists):
        y = top + i * row_h
        c = colour(d.variant)
        tip = (f"{d.variant}: n={len(d.sorted_ms)}, min {fmt_ms(d.sorted_ms[0])}, p25 {fmt_ms(d.q(.25))}, "
               f"p50 {fmt_ms(d.q(.5))}, p75 {fmt_ms(d.q(.75))}, p90 {fmt_ms(d.q(.9))}, p99 {fmt_ms(d.q(.99))}, "
               f"max {fmt_ms(d.sorted_ms[-1])} ms")
        svg.append(f"<g{mark(d.variant, tip)}><text x='0' y='{y + 24}'>{escape(d.variant)}</text>")
        svg.append(_density(d.sorted_ms, x, y + 2, 16, c))
        by = y + 20
        svg.append(f"<line x1='{x(d.q(.01)):.1f}' y1='{by + 6}' x2='{x(d.q(.99)):.1f}' y2='{by + 6}' stroke='{c}'/>")
        svg.append(f"<rect x='{x(d.q(.25)):.1f}' y='{by}' width='{max(1.0, x(d.q(.75)) - x(d.q(.25))):.1f}' height='12' "
                   f"fill='{c}' fill-opacity='.25' stroke='{c}'/>")
        svg.append(f"<line x1='{x(d.q(.5)):.1f}' y1='{by - 2}' x2='{x(d.q(.5)):.1f}' y2='{by + 14}' stroke='{c}' stroke-width='2.5'/>")
        svg.append(f"<line x1='{x(d.q(.9)):.1f}' y1='{by + 1}' x2='{x(d.q(.9)):.1f}' y2='{by + 11}' stroke='{c}' stroke-dasharray='2 1'/>")
        for v in (d.sorted_ms[0], d.sorted_ms[-1]):
            svg.append(f"<circle cx='{x(v):.1f}' cy='{by + 6}' r='2' fill='{c}'/>")
        svg.append("</g>")
    svg.append("</svg>")
    return "".join(svg)


def _density(sorted_ms: Sequence[float], x: LogAxis, y: float, height: float, fill: str, bins: int = 60) -> str:
    lo, hi = math.log10(x.lo), math.log10(x.hi)
    counts = [0] * bins
    for v in sorted_ms:
        counts[min(bins - 1, max(0, int((math.log10(max(v, x.lo)) - lo) / (hi - lo) * bins)))] += 1
    top = max(counts)
    step = (x.end - x.start) / bins
    pts = [f"{x.start:.1f},{y + height:.1f}"]
    for i, n in enumerate(counts):
        py = y + height - height * n / top
        pts += [f"{x.start + i * step:.1f},{py:.1f}", f"{x.start + (i + 1) * step:.1f},{py:.1f}"]
    pts.append(f"{x.end:.1f},{y + height:.1f}")
    return f"<polygon points='{' '.join(pts)}' fill='{fill}' fill-opacity='.45'/>"


# -- bars -----------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    variant: str  # what the toggles key on ("" for a bar that is not a variant)
    label: str
    value: float
    text: str  # printed after the bar
    tip: str
    highlight: bool = False


def bar_chart(bars: Sequence[Bar], *, title: str, reference: tuple[float, str] | None = None) -> str:
    """Horizontal bars from zero; ``reference`` draws a dashed line at a
    value (say, the error rounding alone gives)."""
    if not bars:
        return ""
    w, bar_h, label_w, top = 480, 18, 150, 24
    peak = max([b.value for b in bars] + ([reference[0]] if reference else [])) or 1.0
    length: Callable[[float], float] = lambda v: (w - label_w - 70) * v / peak  # noqa: E731
    h = top + len(bars) * (bar_h + 6) + (18 if reference else 4)
    svg = [svg_open(w, h, title), svg_title(title)]
    for i, b in enumerate(bars):
        y = top + i * (bar_h + 6)
        fill = colour(b.variant) if b.variant else ("#cf222e" if b.highlight else "#8fb8f0")
        label = b.label if len(b.label) <= 22 else b.label[:21] + "…"
        svg.append(
            f"<g{mark(b.variant, b.tip)}><text x='0' y='{y + 13}'>{escape(label)}</text>"
            f"<rect x='{label_w}' y='{y}' width='{length(b.value):.1f}' height='{bar_h}' fill='{fill}' fill-opacity='.8'/>"
            f"<text x='{label_w + length(b.value) + 4:.1f}' y='{y + 13}'>{escape(b.text)}</text></g>"
        )
    if reference:
        rx = label_w + length(reference[0])
        svg.append(f"<line x1='{rx:.1f}' y1='{top - 4}' x2='{rx:.1f}' y2='{h - 14}' stroke='#444' stroke-dasharray='4 3'/>")
        svg.append(f"<text x='{rx:.1f}' y='{h - 3}' text-anchor='middle'>{escape(reference[1])}</text>")
    svg.append("</svg>")
    return "".join(svg)


# -- trends across runs -----------------------------------------------------------


@dataclass(frozen=True)
class Series:
    variant: str
    label: str
    points: tuple[tuple[int, float, str], ...]  # (run index, value, tooltip)
    name: str = ""  # the line's end label, when it is more than the variant


MAX_RUN_LABELS = 12


def trend_chart(series: Sequence[Series], runs: Sequence[str], *, title: str, unit: str) -> str:
    """One line per variant across runs (x: run order, y: the metric)."""
    values = [v for s in series for _, v, _ in s.points]
    if not values or len(runs) < 2:
        return ""
    w, h, left, bottom, top = 600, 280, 56, 70, 28
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
    lo, hi = max(0.0, lo - pad), hi + pad

    def sx(i: int) -> float:
        return left + (i / (len(runs) - 1)) * (w - left - 100)

    def sy(v: float) -> float:
        return h - bottom - (v - lo) / (hi - lo) * (h - bottom - top)

    svg = [svg_open(w, h, title), svg_title(title)] + frame(left, top, w - 100, h - bottom)
    for tick in linear_ticks(lo, hi, 4):
        if lo <= tick <= hi:
            svg.append(f"<text x='{left - 4}' y='{sy(tick) + 4:.1f}' text-anchor='end'>{tick:g}</text>")
    svg.append(f"<text x='12' y='{h / 2}' transform='rotate(-90 12 {h / 2})' text-anchor='middle'>{escape(unit)}</text>")
    # About a dozen run labels fit under the axis; with more runs every
    # k-th is labelled (and the last), the rest are in the points' tooltips.
    step = max(1, math.ceil(len(runs) / MAX_RUN_LABELS))
    for i, run in enumerate(runs):
        if i % step and i != len(runs) - 1:
            continue
        svg.append(f"<text x='{sx(i):.1f}' y='{h - bottom + 14}' transform='rotate(25 {sx(i):.1f} {h - bottom + 14})'>"
                   f"{escape(run)}</text>")
    for s in series:
        c = colour(s.variant)
        path = " ".join(f"{sx(i):.1f},{sy(v):.1f}" for i, v, _ in s.points)
        svg.append(f"<g{mark(s.variant, s.label)}><polyline points='{path}' fill='none' stroke='{c}' stroke-width='1.5'/>")
        for i, v, tip in s.points:
            svg.append(f"<circle cx='{sx(i):.1f}' cy='{sy(v):.1f}' r='3.5' fill='{c}' data-tip='{escape(tip, quote=True)}'/>")
        last_i, last_v, _ = s.points[-1]
        svg.append(f"<text x='{sx(last_i) + 6:.1f}' y='{sy(last_v) + 4:.1f}'>{escape(s.name or s.variant)}</text></g>")
    svg.append("</svg>")
    return "".join(svg)


# -- selective-int8's search curve ----------------------------------------------------


def curve_chart(points: Sequence[CurvePoint], *, device: str) -> str:
    """Calibration mAP of each list the search kept, against its p50 on this
    device (against k when a point was not timed there), joined in k order:
    what each recovered point costs in milliseconds."""
    if not points:
        return ""
    timed = all(p.p50_ms is not None for p in points)
    xs = [float(p.p50_ms) if timed else float(p.k) for p in points]  # type: ignore[arg-type]
    ys = [p.map for p in points]
    w, h, left, bottom, top, right = 480, 260, 56, 40, 28, 60
    x_lo, x_hi = min(xs), max(xs)
    x_pad = (x_hi - x_lo) * 0.1 or abs(x_hi) * 0.1 or 1.0
    y_lo, y_hi = min(ys), max(ys)
    y_pad = (y_hi - y_lo) * 0.1 or 0.01
    x_lo, x_hi, y_lo, y_hi = max(0.0, x_lo - x_pad), x_hi + x_pad, max(0.0, y_lo - y_pad), y_hi + y_pad

    def sx(v: float) -> float:
        return left + (v - x_lo) / (x_hi - x_lo) * (w - left - right)

    def sy(v: float) -> float:
        return h - bottom - (v - y_lo) / (y_hi - y_lo) * (h - bottom - top)

    x_label = f"p50 on {device} (ms)" if timed else "layers kept in float (k)"
    title = f"selective-int8 search on {device}: calibration mAP vs {'latency' if timed else 'k'}"
    svg = [svg_open(w, h, title), svg_title(title)] + frame(left, top, w - right, h - bottom)
    for tick in linear_ticks(x_lo, x_hi, 4):
        if x_lo <= tick <= x_hi:
            svg.append(xtick(sx(tick), h - bottom, f"{tick:g}"))
    for tick in linear_ticks(y_lo, y_hi, 4):
        if y_lo <= tick <= y_hi:
            svg.append(f"<text x='{left - 4}' y='{sy(tick) + 4:.1f}' text-anchor='end'>{tick:g}</text>")
    svg.append(f"<text x='{(left + w - right) / 2}' y='{h - 6}' text-anchor='middle'>{escape(x_label)}</text>")
    svg.append(f"<text x='12' y='{h / 2}' transform='rotate(-90 12 {h / 2})' text-anchor='middle'>calibration mAP</text>")
    c = colour("selective-int8")
    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys))
    svg.append(f"<g{mark('selective-int8', 'selective-int8 search curve')}><polyline points='{path}' fill='none' stroke='{c}'/>")
    for point, x, y in zip(points, xs, ys):
        k, layers, map_text, size, p50 = point.cells
        tip = f"k={k}: calibration mAP {map_text}, {size} MB, p50 {p50} ms on {device}; in float: {layers}"
        svg.append(f"<circle cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='4' fill='{c}' data-tip='{escape(tip, quote=True)}'/>"
                   f"<text x='{sx(x) + 6:.1f}' y='{sy(y) - 6:.1f}'>{escape('k=' + k)}</text>")
    svg.append("</g></svg>")
    return "".join(svg)
