"""`harness history --changes`: the steps in each series (one metric per
(device, model, variant) across runs, harness/results/changes.py), with the
runs and commits on both sides, as a table that fits 80 columns, Markdown,
JSON or CSV."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Sequence

from harness.report.history import METRICS, ResultsReader, Trend, trends
from harness.report.history_render import _table_text
from harness.report.view import md_cell as _md
from harness.report.view import short_commit
from harness.results.changes import Changes, Point, Step, find_changes

CHANGE_COLUMNS = ("device", "model", "variant", "metric", "before_run", "before_commit", "after_run", "after_commit",
                  "step_pct", "step_pct_lo", "step_pct_hi", "absolute", "unit", "before_value", "before_ci_lo",
                  "before_ci_hi", "before_runs", "after_value", "after_ci_lo", "after_ci_hi", "after_runs")


@dataclass(frozen=True)
class SeriesChanges:
    trend: Trend
    changes: Changes

    def rows(self) -> list[dict[str, Any]]:
        return [_row(self.trend, s) for s in self.changes.steps]


def series_changes(trend: Trend) -> SeriesChanges:
    return SeriesChanges(trend, find_changes([Point(p.value, p.ci) for p in trend.points]))


def all_changes(store: ResultsReader, metric: str, *, device: str = "*", model: str = "*", variant: str = "*",
                until_run: str | None = None, since_run: str | None = None) -> list[SeriesChanges]:
    """Every series' steps; with ``since_run``, only the steps whose first run
    after is that run or a later one. The fit still sees the whole history:
    the runs before ``since_run`` are the level a new step is measured from."""
    found = [series_changes(t) for t in trends(store, metric, device=device, model=model, variant=variant,
                                               until_run=until_run)]
    if since_run is None:
        return found
    order = {r.run_id: n for n, r in enumerate(store.runs())}
    first = order[store.resolve_run(since_run)]
    return [SeriesChanges(s.trend, replace(s.changes, steps=tuple(
        step for step in s.changes.steps if order.get(s.trend.points[step.after].run_id, -1) >= first)))
        for s in found]


def _row(trend: Trend, step: Step) -> dict[str, Any]:
    before, after = trend.points[step.before], trend.points[step.after]
    return {
        "device": trend.key[0], "model": trend.key[1], "variant": trend.key[2], "metric": trend.metric,
        "before_run": before.run_id, "before_commit": before.source_commit,
        "after_run": after.run_id, "after_commit": after.source_commit,
        "step_pct": step.pct, "step_pct_lo": step.pct_ci[0], "step_pct_hi": step.pct_ci[1],
        "absolute": step.absolute, "unit": METRICS[trend.metric].unit,
        "before_value": step.level_before.value, "before_ci_lo": step.level_before.ci[0],
        "before_ci_hi": step.level_before.ci[1], "before_runs": step.level_before.runs,
        "after_value": step.level_after.value, "after_ci_lo": step.level_after.ci[0],
        "after_ci_hi": step.level_after.ci[1], "after_runs": step.level_after.runs,
    }


def render_changes(found: Sequence[SeriesChanges], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"series": [
            {"device": s.trend.key[0], "model": s.trend.key[1], "variant": s.trend.key[2], "metric": s.trend.metric,
             "runs": len(s.trend.points), "detectable_pct": s.changes.detectable_pct,
             "outlier_runs": [s.trend.points[i].run_id for i in s.changes.outliers], "steps": s.rows()}
            for s in found]}, indent=1) + "\n"
    rows = [row for s in found for row in s.rows()]
    if fmt == "csv":
        return _table_text(CHANGE_COLUMNS, rows, "csv")
    lines = ["| series | before (run, commit) | after (run, commit) | step | 95% CI | levels |", "|:--|:--|:--|--:|--:|:--|"]
    for s in found:
        for row in s.rows():
            lines.append(f"| {_md(_series(row))} | {_md(row['before_run'])} {_md(short_commit(row['before_commit']))} | "
                         f"{_md(row['after_run'])} {_md(short_commit(row['after_commit']))} | {row['step_pct']:+.1f}% | "
                         f"{row['step_pct_lo']:+.1f}% to {row['step_pct_hi']:+.1f}% | {_md(_levels(row))} |")
    return f"# Steps in {found[0].trend.metric if found else 'p90'} ({len(rows)})\n\n" + "\n".join(lines) + "\n\n" + _quiet_note(found) + "\n"


def _series(row: dict[str, Any]) -> str:
    return f"{row['model']} {row['variant']} on {row['device']}"


def _levels(row: dict[str, Any]) -> str:
    unit = f" {row['unit']}" if row["unit"] else ""
    return (f"{row['before_value']:.4g} [{row['before_ci_lo']:.4g}, {row['before_ci_hi']:.4g}] ({row['before_runs']} runs) -> "
            f"{row['after_value']:.4g} [{row['after_ci_lo']:.4g}, {row['after_ci_hi']:.4g}] ({row['after_runs']} runs){unit}")


def _quiet_note(found: Sequence[SeriesChanges]) -> str:
    """The series with no step, and the smallest step each could have shown:
    a step below it is not detectable in that series, not absent."""
    quiet = [s for s in found if not s.changes.steps]
    if not quiet:
        return ""
    return "No step in: " + "; ".join(
        f"{s.trend.label} ({len(s.trend.points)} runs; steps under {s.changes.detectable_pct:.1f}% not detectable)"
        for s in quiet) + "."


def changes_tables(found: Sequence[SeriesChanges]) -> list[Any]:
    """One table per series with steps, then the note on the quiet ones: a
    step's run ids wrap inside their cell, so it fits 80 columns."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    out: list[Any] = []
    for s in found:
        if not s.changes.steps:
            continue
        m = METRICS[s.trend.metric]
        out.append(Text(f"{m.label} ({m.unit or 'fraction'}) of {s.trend.label}: {len(s.changes.steps)} step(s)",
                        style="italic"))
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for h in ("last run before", "first run after", "step (95% CI)", "before -> after"):
            table.add_column(h, overflow="fold", justify="right" if h.startswith("step") else "left")
        for row in s.rows():
            table.add_row(f"{row['before_run']}\n{short_commit(row['before_commit'])}",
                          f"{row['after_run']}\n{short_commit(row['after_commit'])}",
                          f"{row['step_pct']:+.1f}%\n{row['step_pct_lo']:+.1f} to {row['step_pct_hi']:+.1f}",
                          f"{row['before_value']:.4g} ({row['before_runs']} runs)\n{row['after_value']:.4g} ({row['after_runs']} runs)")
        out.append(table)
    note = _quiet_note(found)
    if note:
        out.append(Text(note))
    return out
