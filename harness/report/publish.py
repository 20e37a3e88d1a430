"""`harness publish DIR`: a static site of every series' p90 history.

An index of every (device, model, variant) series with its latest value and
its most recent step, and one page per series: the trend chart (each run's
p90 with its 95% interval, steps marked with their commits, a tooltip per
point with run id and commit) and the steps' table. Pages are the HTML
report's shell (harness/report/page.py: inline CSS and script, a CSP that
allows no network), so they work from file:// and any static host; every
name is escaped. Read from the store's summary columns only.

Each point links to its run's own HTML report, DIR/runs/RUN.html (the one
`harness report RUN --format html` writes), rendered once: a run already
published is not rendered again.

Incremental: DIR/publish.json remembers, per series page, the runs it was
rendered from; a page whose series gained no run is not rendered again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Sequence

from harness.errors import InputError
from harness.report.charts import frame, linear_ticks, svg_open, svg_title
from harness.report.history_changes import SeriesChanges, all_changes
from harness.report.page import page
from harness.report.view import short_commit
from harness.results.store import ResultsStore

MANIFEST = "publish.json"
_SITE_VERSION = 2  # bump when the page layout changes: every page is rendered again


@dataclass(frozen=True)
class Published:
    series: int
    rendered: int  # series pages written this time (the others were current)
    run_reports: int = 0  # run reports written this time (runs new to the site)


def publish(store: ResultsStore, out: Path) -> Published:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the site folder: {exc.strerror or exc}", source=out,
                         hint="choose a writable DIR for `harness publish DIR`") from None
    found = all_changes(store, "p90")
    hosts = {r.run_id: r.host for r in store.runs()}
    manifest = _read_manifest(out)
    pages: dict[str, str] = {}
    rendered = 0
    for s in found:
        name, signature = page_name(s), _signature(s)
        pages[name] = signature
        if manifest.get(name) != signature or not (out / name).exists():
            (out / name).write_text(series_page(s, hosts), encoding="utf-8")
            rendered += 1
    reports = _write_run_reports(store, out, {p.run_id for s in found for p in s.trend.points})
    (out / "index.html").write_text(index_page(found), encoding="utf-8")
    (out / MANIFEST).write_text(json.dumps({"version": _SITE_VERSION, "pages": pages}, indent=1), encoding="utf-8")
    return Published(len(found), rendered, reports)


def run_report_name(run_id: str) -> str:
    """runs/RUN.html, safe on any file system, unique per run id."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)[:60]
    return f"runs/{slug}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}.html"


def _write_run_reports(store: ResultsStore, out: Path, run_ids: set[str]) -> int:
    """Each charted run's HTML report, once: a run's records do not change
    after it finished, so a report already on the site is current."""
    from harness.report.context import load_context
    from harness.report.write import render, run_title

    (out / "runs").mkdir(exist_ok=True)
    written = 0
    for run_id in sorted(run_ids):
        target = out / run_report_name(run_id)
        if target.exists():
            continue
        records = store.records(run_id)
        html = render(records, "html", title=f"Edge Harness {run_title(store, run_id)}",
                      context=load_context(store, run_id, records, None))
        target.write_text(html, encoding="utf-8")
        written += 1
    return written


def _read_manifest(out: Path) -> dict[str, str]:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("pages", {}) if isinstance(data, dict) and data.get("version") == _SITE_VERSION else {}


def _signature(s: SeriesChanges) -> str:
    """The runs a page shows: the same runs, the same page."""
    points = s.trend.points
    return f"{len(points)}:{points[-1].run_id}:{points[-1].value!r}" if points else "0"


def page_name(s: SeriesChanges) -> str:
    """A file name safe on any file system and host, unique per series."""
    label = "-".join(s.trend.key)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", label)[:60]
    return f"{slug}-{hashlib.sha256(label.encode()).hexdigest()[:10]}.html"


def index_page(found: Sequence[SeriesChanges]) -> str:
    rows = []
    for s in found:
        device, model, variant = s.trend.key
        last = next((p for p in reversed(s.trend.points) if p.value is not None), None)
        step = s.changes.steps[-1] if s.changes.steps else None
        step_text = (f"{step.pct:+.1f}% at {s.trend.points[step.after].run_id} "
                     f"({short_commit(s.trend.points[step.after].source_commit)})") if step else "none"
        rows.append(f"<tr><td class='l'><a href='{escape(page_name(s), quote=True)}'>{escape(model)}</a></td>"
                    f"<td class='l'>{escape(variant)}</td><td class='l'>{escape(device)}</td>"
                    f"<td>{len(s.trend.points)}</td><td>{f'{last.value:.3f}' if last else '—'}</td>"
                    f"<td class='l'>{escape(step_text)}</td></tr>")
    table = ("<table><tr><th class='l'>model</th><th class='l'>variant</th><th class='l'>device</th><th>runs</th>"
             "<th>latest p90 (ms)</th><th class='l'>latest step</th></tr>" + "".join(rows) + "</table>")
    return page("p90 latency history", [table])


def series_page(s: SeriesChanges, hosts: dict[str, str | None] | None = None) -> str:
    steps = "".join(
        f"<tr><td class='l'>{escape(r['before_run'])} ({escape(short_commit(r['before_commit']))})</td>"
        f"<td class='l'>{escape(r['after_run'])} ({escape(short_commit(r['after_commit']))})</td>"
        f"<td>{r['step_pct']:+.1f}% [{r['step_pct_lo']:+.1f}, {r['step_pct_hi']:+.1f}]</td>"
        f"<td>{r['before_value']:.3f} → {r['after_value']:.3f}</td></tr>" for r in s.rows())
    table = ("<table><tr><th class='l'>last run before</th><th class='l'>first run after</th><th>step (95% CI)</th>"
             f"<th>p90 (ms)</th></tr>{steps}</table>" if steps else
             f"<p class='note'>No step; steps under {s.changes.detectable_pct:.1f}% are not detectable here.</p>")
    return page(f"p90 of {s.trend.label}", ["<p><a href='index.html'>all series</a></p>", step_chart(s, hosts or {}), table])


def step_chart(s: SeriesChanges, hosts: dict[str, str | None] | None = None) -> str:
    """Each run's p90 with its interval as a whisker, steps as dashed lines."""
    pts = [(i, p) for i, p in enumerate(s.trend.points) if p.value is not None]
    if not pts:
        return "<p class='note'>No ok run to chart.</p>"
    w, h, left, bottom, top = 760, 300, 56, 40, 28
    lows = [p.ci[0] if p.ci else p.value for _, p in pts]
    highs = [p.ci[1] if p.ci else p.value for _, p in pts]
    lo, hi = min(lows), max(highs)  # type: ignore[type-var]
    pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
    lo, hi = max(0.0, lo - pad), hi + pad
    n = max(1, len(s.trend.points) - 1)

    def sx(i: float) -> float:
        return left + i / n * (w - left - 20)

    def sy(v: float) -> float:
        return h - bottom - (v - lo) / (hi - lo) * (h - bottom - top)

    title = f"p90 (ms) of {s.trend.label}"
    svg = [svg_open(w, h, title), svg_title(title)] + frame(left, top, w - 20, h - bottom)
    for tick in linear_ticks(lo, hi, 4):
        if lo <= tick <= hi:
            svg.append(f"<text x='{left - 4}' y='{sy(tick) + 4:.1f}' text-anchor='end'>{tick:g}</text>")
    for step in s.changes.steps:
        x = sx((step.before + step.after) / 2)
        before, after = s.trend.points[step.before], s.trend.points[step.after]
        tip = (f"step {step.pct:+.1f}% between {before.run_id} ({short_commit(before.source_commit)}) "
               f"and {after.run_id} ({short_commit(after.source_commit)})")
        svg.append(f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{h - bottom}' stroke='#cf222e' "
                   f"stroke-dasharray='4 3' data-tip='{escape(tip, quote=True)}'/>")
        svg.append(f"<text x='{x + 3:.1f}' y='{top + 10}' fill='#cf222e'>{escape(short_commit(after.source_commit))}</text>")
    for i, p in pts:
        ci = p.ci or (p.value, p.value)
        host = (hosts or {}).get(p.run_id) or "—"
        tip = (f"run {p.run_id}, commit {p.source_commit or '—'}, host {host}: "
               f"p90 {p.value:.3f} ms [{ci[0]:.3f}, {ci[1]:.3f}]")
        svg.append(f"<a href='{escape(run_report_name(p.run_id), quote=True)}'>"
                   f"<g data-tip='{escape(tip, quote=True)}'><line x1='{sx(i):.1f}' y1='{sy(ci[0]):.1f}' "
                   f"x2='{sx(i):.1f}' y2='{sy(ci[1]):.1f}' stroke='#8c959f'/>"
                   f"<circle class='point' cx='{sx(i):.1f}' cy='{sy(p.value):.1f}' r='3' fill='#1f6feb'/></g></a>")
    svg.append("</svg>")
    return "".join(svg)
