"""Change points in one metric's series across runs (`harness history --changes`).

Pure: a series is a list of (value, 95% interval or None) in run order; no
store, no I/O. The method, in log space so a step is a ratio (a percentage):

1. Each run's own uncertainty is its interval: sd_i = half-width / 1.96.
   Runs vary more than their own intervals say (thermal state, other load),
   so a between-run spread tau is estimated from successive differences
   (median-based, so one step or outlier barely moves it) and added:
   var_i = sd_i^2 + tau^2.
2. Outliers: a run far (> OUTLIER_Z sd) from the median of the two runs
   before it AND of the two after it, in the same direction, is an outlier
   and takes no part in the fit (a step moves only one side).
3. Binary segmentation: in a segment, the split with the largest z of the
   difference of the two sides' weighted means is a step when z >= MIN_Z,
   both sides hold >= MIN_RUNS runs (one run cannot be told from an
   outlier) and the step is at least the series' detectable size; then
   both halves are searched again.
4. Detectable size: max(MIN_STEP_PCT, the median run's interval half-width
   in %): a change inside one run's own measurement error is never a step;
   a series whose intervals are wider than a step says so ("smallest
   detectable step") instead of guessing.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

MIN_STEP_PCT = 1.0  # below this a step is never reported, however narrow the intervals
MIN_Z = 5.0  # the step's difference over its standard error
MIN_RUNS = 2  # runs on each side of a step
OUTLIER_Z = 6.0
_Z95 = 1.959964


@dataclass(frozen=True)
class Point:
    value: float | None  # None: the run has no value (failed pair): skipped
    ci: tuple[float, float] | None = None


@dataclass(frozen=True)
class Level:
    """A stretch of runs between steps: its weighted mean and 95% interval."""

    value: float
    ci: tuple[float, float]
    runs: int


@dataclass(frozen=True)
class Step:
    before: int  # index (into the series) of the last run before the step
    after: int  # index of the first run after it
    pct: float  # size in %, after vs before
    pct_ci: tuple[float, float]  # its 95% interval in %
    absolute: float  # after - before, in the metric's unit
    level_before: Level
    level_after: Level


@dataclass(frozen=True)
class Changes:
    steps: tuple[Step, ...]
    detectable_pct: float  # no smaller step can be told from the runs' noise
    outliers: tuple[int, ...]  # indices left out of the fit


def find_changes(series: Sequence[Point]) -> Changes:
    index = [i for i, p in enumerate(series) if p.value is not None and p.value > 0]
    x = [math.log(series[i].value) for i in index]  # type: ignore[arg-type]
    sd = _own_sd(series, index, x)
    detectable = _detectable_pct(series, index)
    if len(x) < 2 * MIN_RUNS:
        return Changes((), detectable, ())
    keep = _without_outliers(x, sd)
    outliers = tuple(index[j] for j in range(len(x)) if j not in keep)
    xs, sds = [x[j] for j in keep], [sd[j] for j in keep]
    tau2 = _between_run_var(xs, sds)
    w = [1.0 / (s * s + tau2) if s * s + tau2 > 0 else 1e12 for s in sds]
    splits = sorted(_segment(xs, w, 0, len(xs), math.log1p(detectable / 100.0)))
    bounds = [0, *splits, len(xs)]
    steps = []
    for k, split in enumerate(splits):
        lo, hi = bounds[k], bounds[k + 2]
        left, right = _level(xs, w, lo, split), _level(xs, w, split, hi)
        diff, se = right[0] - left[0], math.sqrt(left[1] ** 2 + right[1] ** 2)
        before, after = index[keep[split - 1]], index[keep[split]]
        steps.append(Step(
            before, after, _pct(diff), (_pct(diff - _Z95 * se), _pct(diff + _Z95 * se)),
            math.exp(right[0]) - math.exp(left[0]), _as_level(left, split - lo), _as_level(right, hi - split),
        ))
    return Changes(tuple(steps), detectable, outliers)


def _pct(log_ratio: float) -> float:
    return math.expm1(log_ratio) * 100.0


def _own_sd(series: Sequence[Point], index: list[int], x: list[float]) -> list[float]:
    """Each run's sd in log space from its interval; a run without one gets
    the median of the others (or 0: then tau carries all the noise)."""
    sds: list[float | None] = []
    for i, xi in zip(index, x):
        ci = series[i].ci
        if ci and ci[0] > 0 and ci[1] >= ci[0]:
            sds.append((math.log(ci[1]) - math.log(ci[0])) / (2 * _Z95))
        else:
            sds.append(None)
    known = [s for s in sds if s is not None]
    fill = statistics.median(known) if known else 0.0
    return [fill if s is None else s for s in sds]


def _detectable_pct(series: Sequence[Point], index: list[int]) -> float:
    half = [(p.ci[1] - p.ci[0]) / 2 / p.value * 100.0 for p in (series[i] for i in index)
            if p.ci and p.value]  # type: ignore[operator]
    return max(MIN_STEP_PCT, statistics.median(half)) if half else MIN_STEP_PCT


def _without_outliers(x: list[float], sd: list[float]) -> list[int]:
    spread = statistics.median(sd) or 1e-9
    keep = []
    for j, xj in enumerate(x):
        before, after = x[max(0, j - 2):j], x[j + 1:j + 3]
        if len(before) == 2 and len(after) == 2:
            db, da = xj - statistics.median(before), xj - statistics.median(after)
            limit = OUTLIER_Z * max(spread, sd[j])
            if abs(db) > limit and abs(da) > limit and (db > 0) == (da > 0):
                continue
        keep.append(j)
    return keep


def _between_run_var(x: list[float], sd: list[float]) -> float:
    """Run-to-run variance beyond the runs' own intervals, from the median
    absolute successive difference (a step adds one large difference only)."""
    if len(x) < 3:
        return 0.0
    diffs = [abs(b - a) for a, b in zip(x, x[1:])]
    sd_diff = 1.4826 * statistics.median(diffs)
    own = statistics.median(a * a + b * b for a, b in zip(sd, sd[1:]))
    return max(0.0, (sd_diff * sd_diff - own) / 2.0)


def _level(x: list[float], w: list[float], lo: int, hi: int) -> tuple[float, float]:
    """Weighted mean of x[lo:hi] in log space and its standard error."""
    total = math.fsum(w[lo:hi])
    return math.fsum(wi * xi for wi, xi in zip(w[lo:hi], x[lo:hi])) / total, math.sqrt(1.0 / total)


def _as_level(level: tuple[float, float], runs: int) -> Level:
    mean, se = level
    return Level(math.exp(mean), (math.exp(mean - _Z95 * se), math.exp(mean + _Z95 * se)), runs)


def _segment(x: list[float], w: list[float], lo: int, hi: int, min_log_step: float) -> list[int]:
    best, best_z = None, MIN_Z
    for k in range(lo + MIN_RUNS, hi - MIN_RUNS + 1):
        left, right = _level(x, w, lo, k), _level(x, w, k, hi)
        diff = right[0] - left[0]
        z = abs(diff) / math.sqrt(left[1] ** 2 + right[1] ** 2)
        if abs(diff) >= min_log_step and z > best_z:
            best, best_z = k, z
    if best is None:
        return []
    return [*_segment(x, w, lo, best, min_log_step), best, *_segment(x, w, best, hi, min_log_step)]
