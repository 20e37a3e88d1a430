"""Runs over time: the run list and one metric's trend across runs.

Reads the results store through its public methods only (runs(), records(),
samples_ns()), so any back end with that interface (SQLite, PostgreSQL)
serves it. No rendering here: the terminal, Markdown and HTML layers draw
what this module computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Callable, Sequence

from harness.errors import InputError
from harness.results.record import Record
from harness.results.store import ResultsStore, RunInfo

Key = tuple[str, str, str]  # (device, model, variant)


# Any back end (SQLite, PostgreSQL): the reports read only its public methods.
ResultsReader = ResultsStore


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    created_at: str
    status: str
    command: str
    ok: int
    failed: int
    skipped: int
    devices: tuple[str, ...]
    models: tuple[str, ...]
    source_commit: str | None = None
    host: str | None = None

    @property
    def pairs(self) -> int:
        return self.ok + self.failed + self.skipped


def run_summaries(store: ResultsReader) -> list[RunSummary]:
    """Every run, oldest first, with its pair counts by status."""
    out: list[RunSummary] = []
    for run in store.runs():
        records = store.records(run.run_id)
        count = {status: sum(1 for r in records if r.status == status) for status in ("ok", "failed", "skipped")}
        out.append(RunSummary(
            run.run_id, run.created_at, run.status, run.command, count["ok"], count["failed"], count["skipped"],
            tuple(sorted({r.device.name for r in records})), tuple(sorted({r.model.name for r in records})),
            run.source_commit, run.host,
        ))
    return out


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    unit: str
    value: Callable[[Record], float | None]
    ci: Callable[[Record], tuple[float, float] | None] = lambda record: None


def _lat(field: str) -> Callable[[Record], float | None]:
    return lambda r: getattr(r.latency_ms, field) if r.latency_ms else None


def _lat_ci(field: str) -> Callable[[Record], tuple[float, float] | None]:
    return lambda r: getattr(r.latency_ms, field) if r.latency_ms else None


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("p50", "p50 latency", "ms", _lat("p50"), _lat_ci("p50_ci")),
        Metric("p90", "p90 latency", "ms", _lat("p90"), _lat_ci("p90_ci")),
        Metric("p99", "p99 latency", "ms", _lat("p99"), _lat_ci("p99_ci")),
        Metric("mean", "mean latency", "ms", _lat("mean")),
        Metric("peak_mb", "peak RSS", "MiB", lambda r: r.memory_mb.peak if r.memory_mb else None),
        Metric("size_mb", "model size", "MB", lambda r: r.model.size_bytes / 1e6 if r.model.size_bytes else None),
        Metric("map", "COCO mAP", "", lambda r: r.accuracy.map if r.accuracy else None),
        Metric("map50", "COCO mAP50", "", lambda r: r.accuracy.map50 if r.accuracy else None),
        Metric("load_ms", "model load", "ms", lambda r: r.load_ms),
    )
}


@dataclass(frozen=True)
class TrendPoint:
    run_id: str
    created_at: str
    status: str
    value: float | None
    ci: tuple[float, float] | None = None
    source_commit: str | None = None  # which commit this point measured


@dataclass(frozen=True)
class Trend:
    key: Key
    metric: str
    points: tuple[TrendPoint, ...]  # oldest first; one per run that has the pair

    @property
    def label(self) -> str:
        device, model, variant = self.key
        return f"{model} {variant} on {device}"


def trends(
    store: ResultsReader,
    metric: str,
    *,
    device: str = "*",
    model: str = "*",
    variant: str = "*",
    until_run: str | None = None,
) -> list[Trend]:
    """The metric per run for every (device, model, variant) matching the
    patterns (shell globs), in run order, up to and including ``until_run``."""
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}", source="--trend", hint=f"use one of {', '.join(METRICS)}")
    m = METRICS[metric]
    points: dict[Key, list[TrendPoint]] = {}
    for run in store.runs():
        for record in store.records(run.run_id):
            d, mo, v = record.key
            if fnmatchcase(d, device) and fnmatchcase(mo, model) and fnmatchcase(v, variant):
                value = m.value(record) if record.status == "ok" else None
                ci = m.ci(record) if record.status == "ok" else None
                points.setdefault(record.key, []).append(
                    TrendPoint(run.run_id, run.created_at, record.status, value,
                               tuple(ci) if ci else None, run.source_commit)  # type: ignore[arg-type]
                )
        if run.run_id == until_run:
            break
    return [Trend(key, metric, tuple(p)) for key, p in sorted(points.items())]


def require_trends(found: Sequence[Trend], store: ResultsReader, *, device: str, model: str, variant: str) -> None:
    """No pair matched: say which names the store does know (exit 2)."""
    if found:
        return
    seen: set[Key] = set()
    for run in store.runs():
        seen.update(r.key for r in store.records(run.run_id))
    known = lambda i: ", ".join(sorted({k[i] for k in seen})) or "none"  # noqa: E731
    raise InputError(
        f"no stored result matches --device {device} --model {model} --variant {variant}",
        source="harness history --trend",
        hint=f"devices: {known(0)}; models: {known(1)}; variants: {known(2)}",
    )
