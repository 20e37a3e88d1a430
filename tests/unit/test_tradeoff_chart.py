"""The latency-vs-mAP chart: a front that ignores mAP noise, labels that
stay with their markers, front segments that hide with their variants."""

from __future__ import annotations

import math
import re
from html import escape

from harness.report.pareto import CAPTION, MAP_TIE, TradeOff, pareto_front, tradeoff_chart


def test_a_slower_variant_within_the_map_noise_is_dominated():
    # int16x8: 19x slower than dynamic-int8 and "better" by 0.00015 mAP.
    pts = [TradeOff("dynamic-int8", 0.5, 0.36), TradeOff("int16x8", 9.5, 0.36015), TradeOff("fp32", 0.9, 0.3598)]
    assert [p.variant for p in pareto_front(pts)] == ["dynamic-int8"]
    better = TradeOff("qat-int8", 0.7, 0.36 + MAP_TIE * 2)  # beyond the noise: worth its latency
    assert [p.variant for p in pareto_front([*pts, better])] == ["dynamic-int8", "qat-int8"]


def test_the_caption_names_the_tolerance():
    svg = tradeoff_chart([TradeOff("fp32", 1.0, 0.3), TradeOff("int8", 0.5, 0.29)], device="local")
    assert escape(CAPTION) in svg and f"{MAP_TIE:g} mAP" in CAPTION


def groups(svg: str) -> dict[str, str]:
    return dict(re.findall(r"<g data-variant='([^']*)'[^>]*>(.*?)</g>", svg))


def test_front_segments_name_both_ends_so_they_hide_with_either():
    pts = [TradeOff("int8", 0.5, 0.30), TradeOff("fp16", 0.8, 0.33), TradeOff("fp32", 0.9, 0.36)]
    svg = tradeoff_chart(pts, device="local")
    segments = re.findall(r"<(?:line|polyline)[^>]*class='front[^']*'[^>]*>", svg)
    ends = [re.search(r"data-from='([^']*)' data-to='([^']*)'", s) for s in segments]
    assert segments and all(ends), segments
    assert [(m.group(1), m.group(2)) for m in ends if m] == [("int8", "fp16"), ("fp16", "fp32")]


def test_labels_in_a_sub_millisecond_cluster_stay_with_their_markers():
    names = ("fp32", "fp16", "dynamic-int8", "int8", "uint8", "qat-int8", "selective-int8")
    pts = [TradeOff(n, 0.40 + 0.01 * i, 0.360 + 0.0004 * i) for i, n in enumerate(names)]
    pts.append(TradeOff("int16x8", 9.0, 0.3601))
    svg = tradeoff_chart(pts, device="local")
    boxes = []
    for variant, body in groups(svg).items():
        cx, cy = (float(v) for v in re.search(r"<circle cx='([\d.]+)' cy='([\d.]+)'", body).groups())
        tx, ty = (float(v) for v in re.search(r"<text x='([\d.]+)' y='([\d.]+)'", body).groups())
        anchor = m.group(1) if (m := re.search(r"<text [^>]*text-anchor='(\w+)'", body)) else "start"
        width = 6.2 * len(variant)
        x0 = tx - width if anchor == "end" else tx - width / 2 if anchor == "middle" else tx
        near = math.dist((cx, cy), (min(max(cx, x0), x0 + width), min(max(cy, ty - 9), ty + 3))) <= 12
        assert near or "class='leader'" in body, (variant, body)  # beside its marker, or joined to it
        boxes.append((variant, x0, ty - 9, x0 + width, ty + 3))
    for i, (a, *ra) in enumerate(boxes):  # and no two labels on top of each other
        for b, *rb in boxes[i + 1:]:
            assert not (ra[0] < rb[2] and rb[0] < ra[2] and ra[1] < rb[3] and rb[1] < ra[3]), (a, b)
