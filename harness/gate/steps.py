"""`max_step_pct`: no fresh step up in a pair's p90 history.

The series is the pair's p90 across the stored runs up to the gated one
(harness/report/history_changes.py); a step up larger than the bound whose
first run after it is among the series' last ``step_runs`` runs fails, with
both commits in the message. A series whose runs are too noisy to show a
step of the bound's size cannot vouch for it: inconclusive, as a latency
bound inside its interval is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.gate.checks import Check, _check, not_measured
from harness.report.view import short_commit
from harness.results.record import Record

if TYPE_CHECKING:
    from harness.report.history_changes import SeriesChanges


def check_step(rule: str, record: Record, series: "SeriesChanges | None", max_pct: float, last_runs: int) -> Check:
    metric, bound = "max_step_pct", f"<= +{max_pct:g}% p90 step, last {last_runs} runs"
    if record.status != "ok":
        return not_measured(rule, record, metric, bound)
    if series is None:
        return _check(rule, record, metric, "skipped", "no stored history", bound,
                      "a step is found in the store's history: gate with `harness gate`, which reads it")
    runs = len(series.trend.points)
    fresh = [row for step, row in zip(series.changes.steps, series.rows())
             if step.after >= runs - last_runs and step.pct > max_pct]
    if fresh:
        row = max(fresh, key=lambda r: r["step_pct"])
        measured = (f"p90 {row['before_value']:.3f} -> {row['after_value']:.3f} ms, {row['step_pct']:+.1f}% "
                    f"[{row['step_pct_lo']:+.1f}%, {row['step_pct_hi']:+.1f}%] (95% CI)")
        why = (f"the step is between run {row['before_run']} (commit {short_commit(row['before_commit'])}) "
               f"and run {row['after_run']} (commit {short_commit(row['after_commit'])})")
        return _check(rule, record, metric, "fail", measured, bound, why)
    detectable = series.changes.detectable_pct
    measured = f"no step over +{max_pct:g}% in {runs} stored runs (steps under {detectable:.1f}% not detectable)"
    if detectable > max_pct:
        return _check(rule, record, metric, "inconclusive", measured, bound,
                      "the runs' intervals are wider than the bound: measure each run longer to see such a step")
    return _check(rule, record, metric, "pass", measured, bound, "")
