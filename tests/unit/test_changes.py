"""Change points over seeded synthetic histories with known truth
(tests/change_series.py): steps found at the right run, none invented."""

from __future__ import annotations

import pytest

from harness.results.changes import MIN_STEP_PCT, Point, find_changes
from tests.change_series import RUNS, history

SEEDS = range(10)
STEP_AT = RUNS // 2
# (case, generator arguments, the step that is there or None)
CASES = {
    "10%": (dict(step_pct=10), 10),
    "30%": (dict(step_pct=30), 30),
    "-10%": (dict(step_pct=-10), -10),
    "flat": ({}, None),
    "outlier": (dict(outlier_at=30), None),
    "3% narrow": (dict(step_pct=3), 3),
    "3% wide": (dict(step_pct=3, samples=80), None),  # intervals wider than the step: not detectable
    "fresh 10%": (dict(step_pct=10, step_at=RUNS - 2), 10),
    # a real run's own samples (tests/fixtures/latency/), rescaled: as many as it had
    "10% measured": (dict(step_pct=10, noise="measured", samples=1088), 10),
    "30% measured": (dict(step_pct=30, noise="measured", samples=1088), 30),
    "flat measured": (dict(noise="measured", samples=1088), None),
    "outlier measured": (dict(outlier_at=30, noise="measured", samples=1088), None),
    # the measured spread widened 10x (a busy board), few samples: 3% inside the intervals
    "3% measured, noisy board": (dict(step_pct=3, noise="measured", samples=100, spread=10.0), None),
}
# 3% in the measured run's own noise: found where the runs' intervals are
# narrower than 3%, and otherwise reported as not detectable (checked apart).
MEASURED_3PCT = dict(step_pct=3, noise="measured", samples=1088)


def _tally(case: str) -> tuple[int, int, int]:
    """(detections at the right run ±1, misses, false steps) over SEEDS."""
    kwargs, truth = CASES[case]
    at = kwargs.get("step_at", STEP_AT)
    found = missed = false = 0
    for seed in SEEDS:
        steps = find_changes(history(seed, **kwargs)).steps
        right = [s for s in steps if truth is not None and abs(s.after - at) <= 1]
        found += bool(right)
        missed += truth is not None and not right
        false += len(steps) - len(right[:1])
    return found, missed, false


@pytest.mark.parametrize("case", CASES)
def test_steps_found_at_the_right_run_and_never_invented(case):
    found, missed, false = _tally(case)
    print(f"{case}: {found} found, {missed} missed, {false} false over {len(SEEDS)} seeds")
    assert false == 0
    assert (found, missed) == ((len(SEEDS), 0) if CASES[case][1] is not None else (0, 0))


def test_a_step_inside_the_intervals_is_reported_as_not_detectable():
    changes = find_changes(history(1, step_pct=3, samples=80))
    assert changes.detectable_pct > 3 and not changes.steps


def test_the_step_carries_its_size_interval_and_evidence():
    step = find_changes(history(3, step_pct=10)).steps[0]
    assert (step.before, step.after) == (STEP_AT - 1, STEP_AT)
    assert step.pct_ci[0] < step.pct < step.pct_ci[1] and 8 < step.pct < 12
    assert step.level_before.ci[1] < step.level_after.ci[0]
    assert step.level_before.runs == STEP_AT and step.level_after.runs == RUNS - STEP_AT
    assert step.absolute == pytest.approx(step.level_after.value - step.level_before.value)


def test_failed_runs_and_missing_intervals_are_tolerated():
    points = [Point(10.0 if i < 6 else 13.0) for i in range(12)]
    points[3] = Point(None)
    changes = find_changes(points)
    assert [(s.before, s.after) for s in changes.steps] == [(5, 6)]
    assert changes.detectable_pct == MIN_STEP_PCT
    assert find_changes([Point(1.0), Point(2.0)]).steps == ()


def test_a_3pct_step_in_measured_noise_is_found_or_said_to_be_undetectable():
    found = undetectable = 0
    for seed in SEEDS:
        changes = find_changes(history(seed, **MEASURED_3PCT))
        right = [s for s in changes.steps if abs(s.after - STEP_AT) <= 1]
        assert len(changes.steps) == len(right[:1]), f"seed {seed}: a false step {changes.steps}"
        if changes.detectable_pct < 3:
            found += bool(right)
            assert right, f"seed {seed}: detectable from {changes.detectable_pct:.2f}%, but missed"
        else:
            undetectable += 1
            assert not changes.steps
    print(f"3% measured: {found} found, {undetectable} not detectable over {len(SEEDS)} seeds")
    assert found + undetectable == len(SEEDS)
