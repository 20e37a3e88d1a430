"""Seeded synthetic histories with known truth for change-point tests.

Each run draws its own latency samples (a log-normal body with a 2% slow
tail, as an inference loop on a busy board looks), plus a small run-to-run
shift, and summarises them as the harness does (p90 and its 95% interval,
harness/measure/stats.py). Few samples per run give wide intervals, many
give narrow ones.

With ``noise="measured"`` a run's samples are drawn instead from a real
run's raw samples (tests/fixtures/latency/, resampled with replacement),
rescaled to the run's level, their spread around the median widened by
``spread`` (1 = the measured run's own)."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from harness.measure.stats import quantile, quantile_ci
from harness.results.changes import Point
from harness.results.store import RunInfo, SqliteStore
from tests.store_records import make_record

RUNS = 50


MEASURED_SAMPLES = Path(__file__).parent / "fixtures" / "latency" / "demo-fp32-local-samples-ns.npy"


@lru_cache(maxsize=1)
def measured_relative() -> np.ndarray:
    """The measured run's samples over their median (1.0 = the median)."""
    ns = np.load(MEASURED_SAMPLES).astype(np.float64)
    return ns / np.median(ns)


def history(seed: int, *, step_pct: float = 0.0, step_at: int = RUNS // 2, outlier_at: int | None = None,
            samples: int = 3000, runs: int = RUNS, base_ms: float = 20.0, noise: str = "synthetic",
            spread: float = 1.0) -> list[Point]:
    rng = np.random.default_rng(seed)
    points = []
    for run in range(runs):
        scale = base_ms * (1 + step_pct / 100.0 if run >= step_at else 1.0) * (1 + rng.normal(0, 0.002))
        if run == outlier_at:
            scale *= 1.4
        if noise == "measured":
            relative = 1.0 + spread * (rng.choice(measured_relative(), samples) - 1.0)
        else:
            body = rng.lognormal(0.0, 0.08, samples)
            relative = np.where(rng.random(samples) < 0.02, body * 1.8, body)
        values = sorted((scale * relative).tolist())
        points.append(Point(quantile(values, 0.9), quantile_ci(values, 0.9)))
    return points


STORE_RUNS, STORE_STEP_AT = 30, 20  # the stored histories below


def commit(n: int) -> str:
    return f"{n:02d}" + "c0ffee" * 6 + "ab"


def write_history(path, *, step_pct: float, runs: int = STORE_RUNS, step_at: int = STORE_STEP_AT, seed: int = 4) -> SqliteStore:
    """p90 per run from tests/change_series.py, one int8 pair per run, each
    run on its own commit."""
    store = SqliteStore(path)
    store._db.execute("PRAGMA synchronous = OFF")
    return fill_history(store, step_pct=step_pct, runs=runs, step_at=step_at, seed=seed)


def fill_history(store, *, step_pct: float, runs: int = STORE_RUNS, step_at: int = STORE_STEP_AT, seed: int = 4):
    """write_history's runs into any opened store (SQLite or PostgreSQL)."""
    for n, point in enumerate(history(seed, step_pct=step_pct, runs=runs, step_at=step_at)):
        rid = f"run-{n:03d}"
        store.begin_run(RunInfo(rid, f"2026-02-01T00:{n // 60:02d}:{n % 60:02d}Z", "0.1.0", "running", "run", "/r",
                                source_commit=commit(n), host="ci"))
        record = make_record(rid, "int8", device="pi5-1")
        store.add_record(replace(record, latency_ms=replace(record.latency_ms, p90=point.value, p90_ci=point.ci)), [1])
        store.finish_run(rid, "finished")
    return store


HOSTILE = "<img src=x onerror=alert(1)>"


def add_run(store: SqliteStore, n: int, device: str = "pi5-1") -> None:
    rid = f"run-{n:03d}"
    store.begin_run(RunInfo(rid, f"2026-02-02T00:00:{n % 60:02d}Z", "0.1.0", "running", "run", "/r", source_commit=commit(n)))
    record = make_record(rid, "int8", device=device)
    store.add_record(replace(record, latency_ms=replace(record.latency_ms, p90=24.5, p90_ci=(24.3, 24.7))), [1])
    store.finish_run(rid, "finished")
