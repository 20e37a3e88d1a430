"""The latency-vs-mAP chart and its Pareto front: the variants worth shipping.

COCO mAP on a few hundred images moves by a few thousandths between
variants that detect the same boxes, so a variant counts as more accurate
only beyond MAP_TIE: a slower variant is on the front only when it buys
more accuracy than that. The chart's caption says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Sequence

from harness.gate.ship import MAP_TIE
from harness.report.charts import LogAxis, colour, frame, linear_ticks, log_ticks, mark, svg_open, svg_title, xtick
from harness.report.view import fmt_ms

# mAP differences up to MAP_TIE (absolute) are ties, here and in the "what to
# ship" answer: one constant, said why where it is defined.
CAPTION = f"on the front: more accurate than every faster variant by > {MAP_TIE:g} mAP"


@dataclass(frozen=True)
class TradeOff:
    variant: str
    latency_ms: float
    map: float


def pareto_front(points: Sequence[TradeOff], tie: float = MAP_TIE) -> list[TradeOff]:
    """Fastest first, each point more accurate than every faster point on
    the front by more than `tie`; the rest are dominated (another variant is
    faster and not worse beyond the noise)."""
    front: list[TradeOff] = []
    for p in sorted(points, key=lambda p: (p.latency_ms, -p.map)):
        if not front or p.map > max(q.map for q in front) + tie:
            front.append(p)
    return front


@dataclass(frozen=True)
class _Box:
    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: _Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1


@dataclass(frozen=True)
class Label:
    x: float
    y: float  # the text's baseline
    anchor: str  # start | end | middle
    leader: bool  # too crowded to sit beside its marker: a line joins them


CHAR_PX, TEXT_UP, TEXT_DOWN, RADIUS = 6.2, 9.0, 3.0, 5.0


def _box(x: float, y: float, anchor: str, width: float) -> _Box:
    x0 = x - width if anchor == "end" else x - width / 2 if anchor == "middle" else x
    return _Box(x0, y - TEXT_UP, x0 + width, y + TEXT_DOWN)


def place_label(cx: float, cy: float, width: float, taken: list[_Box], area: _Box) -> Label:
    """Right, left, above or below the marker, wherever nothing sits yet;
    in a crowd, the nearest free row to the right with a leader line."""
    candidates = [(cx + 8, cy + 4, "start"), (cx - 8, cy + 4, "end"), (cx, cy - 9, "middle"), (cx, cy + 17, "middle"),
                  (cx + 7, cy - 7, "start"), (cx + 7, cy + 15, "start"), (cx - 7, cy - 7, "end"), (cx - 7, cy + 15, "end")]
    for x, y, anchor in candidates:
        box = _box(x, y, anchor, width)
        inside = area.x0 <= box.x0 and box.x1 <= area.x1 and area.y0 <= box.y0 and box.y1 <= area.y1
        if inside and not any(box.overlaps(t) for t in taken):
            taken.append(box)
            return Label(x, y, anchor, leader=False)
    x = min(cx + 14, area.x1 - width)
    for step in range(1, 40):
        for y in (cy + 4 + 12 * step, cy + 4 - 12 * step):
            box = _box(x, y, "start", width)
            if area.y0 <= box.y0 and box.y1 <= area.y1 and not any(box.overlaps(t) for t in taken):
                taken.append(box)
                return Label(x, y, "start", leader=True)
    return Label(cx + 8, cy + 4, "start", leader=False)  # nowhere free: beside the marker, overlapping


def tradeoff_chart(points: Sequence[TradeOff], *, device: str) -> str:
    """p50 latency (log x) against mAP (y); the Pareto front joined and
    filled, dominated variants hollow. Each front segment names both its
    ends, so hiding either variant hides it."""
    if not points:
        return ""
    w, h, left, bottom, top, right = 480, 310, 50, 45, 40, 90
    x = LogAxis.fit([p.latency_ms for p in points], left, w - right)
    ys = [p.map for p in points]
    y0, y1 = max(0.0, min(ys) - 0.05), min(1.0, max(ys) + 0.05)
    y1 = y1 if y1 > y0 else y0 + 0.1

    def sy(v: float) -> float:
        return h - bottom - (v - y0) / (y1 - y0) * (h - bottom - top)

    front = pareto_front(points)
    svg = [svg_open(w, h, f"p50 latency versus mAP on {device}"), svg_title(f"latency vs mAP on {device} (Pareto front joined)"),
           f"<text x='0' y='27' class='caption'>{escape(CAPTION)}</text>"]
    svg += frame(left, top, w - right, h - bottom)
    svg.append(f"<text x='{(left + w - right) / 2}' y='{h - 8}' text-anchor='middle'>p50 latency (ms, log scale)</text>")
    svg.append(f"<text x='12' y='{h / 2}' transform='rotate(-90 12 {h / 2})' text-anchor='middle'>COCO mAP</text>")
    svg += [xtick(x(tick), h - bottom, f"{tick:g}") for tick in log_ticks(x.lo, x.hi)]
    svg += [f"<text x='{left - 4}' y='{sy(t) + 4:.1f}' text-anchor='end'>{t:.2f}</text>" for t in linear_ticks(y0, y1, 4) if y0 <= t <= y1]
    for a, b in zip(front, front[1:]):
        svg.append(f"<line class='front-segment' data-from='{escape(a.variant, quote=True)}' data-to='{escape(b.variant, quote=True)}' "
                   f"x1='{x(a.latency_ms):.1f}' y1='{sy(a.map):.1f}' x2='{x(b.latency_ms):.1f}' y2='{sy(b.map):.1f}' "
                   "stroke='#1a7f37' stroke-width='1.5' stroke-dasharray='4 3'/>")
    ordered = sorted(points, key=lambda p: (-p.map, p.latency_ms))
    # Labels keep clear of every marker, not just their own, so none reads as another's.
    clear = RADIUS + 2
    taken = [_Box(x(p.latency_ms) - clear, sy(p.map) - clear, x(p.latency_ms) + clear, sy(p.map) + clear) for p in ordered]
    area = _Box(left + 2, top, w, h - bottom - 2)
    for p in ordered:
        svg.append(_point(p, p in front, x(p.latency_ms), sy(p.map), taken, area))
    svg.append("</svg>")
    return "".join(svg)


def _point(p: TradeOff, on_front: bool, cx: float, cy: float, taken: list[_Box], area: _Box) -> str:
    tip = f"{p.variant}: p50 {fmt_ms(p.latency_ms)} ms, mAP {p.map:.3f}" + (" (Pareto front)" if on_front else " (dominated)")
    label = place_label(cx, cy, CHAR_PX * len(p.variant), taken, area)
    leader = (f"<line x1='{cx:.1f}' y1='{cy:.1f}' x2='{label.x - 2:.1f}' y2='{label.y - 4:.1f}' stroke='#8c959f' "
              "stroke-width='.8' class='leader'/>") if label.leader else ""
    return (f"<g{mark(p.variant, tip)}>{leader}<circle cx='{cx:.1f}' cy='{cy:.1f}' r='{RADIUS:g}' "
            f"fill='{colour(p.variant) if on_front else '#fff'}' stroke='{colour(p.variant)}' stroke-width='2' "
            f"class='{'front' if on_front else 'dominated'}'/>"
            f"<text x='{label.x:.1f}' y='{label.y:.1f}' text-anchor='{label.anchor}' style='fill:{colour(p.variant)}'>"
            f"{escape(p.variant)}</text></g>")
