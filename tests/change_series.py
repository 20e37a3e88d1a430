"""Seeded synthetic histories with known truth for change-point tests.

Each run draws its own latency samples (a log-normal body with a 2% slow
tail, as an inference loop on a busy board looks), plus a small run-to-run
shift, and summarises them as the harness does (p90 and its 95% interval,
harness/measure/stats.py). Few samples per run give wide intervals, many
give narrow ones."""

from __future__ import annotations

import numpy as np

from harness.measure.stats import quantile, quantile_ci
from harness.results.changes import Point

RUNS = 50


def history(seed: int, *, step_pct: float = 0.0, step_at: int = RUNS // 2, outlier_at: int | None = None,
            samples: int = 3000, runs: int = RUNS, base_ms: float = 20.0) -> list[Point]:
    rng = np.random.default_rng(seed)
    points = []
    for run in range(runs):
        scale = base_ms * (1 + step_pct / 100.0 if run >= step_at else 1.0) * (1 + rng.normal(0, 0.002))
        if run == outlier_at:
            scale *= 1.4
        body = rng.lognormal(0.0, 0.08, samples)
        tail = rng.random(samples) < 0.02
        values = sorted((scale * np.where(tail, body * 1.8, body)).tolist())
        points.append(Point(quantile(values, 0.9), quantile_ci(values, 0.9)))
    return points
