"""Runs over time: the run list and one metric's trend across runs.

Both are answered by the store from its summary columns (store.pairs(),
store.trend(): harness/results/trend.py), never by parsing every record of
every run, so any back end with that interface (SQLite, PostgreSQL) serves
them at the same cost. No rendering here: the terminal, Markdown and HTML
layers draw what this module assembles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from harness.errors import InputError
from harness.results.store import PairStatus, ResultsStore
from harness.results.trend import METRICS, Key, TrendPoint

__all__ = ["METRICS", "Key", "ResultsReader", "RunSummary", "Trend", "TrendPoint", "remeasured_notes", "require_trends",
           "run_summaries", "trends"]

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
    by_run: dict[str, list[PairStatus]] = {}
    for pair in store.pairs():
        by_run.setdefault(pair.run_id, []).append(pair)
    out: list[RunSummary] = []
    for run in store.runs():
        pairs = by_run.get(run.run_id, [])
        count = {status: sum(1 for p in pairs if p.status == status) for status in ("ok", "failed", "skipped")}
        out.append(RunSummary(
            run.run_id, run.created_at, run.status, run.command, count["ok"], count["failed"], count["skipped"],
            tuple(sorted({p.device for p in pairs})), tuple(sorted({p.model for p in pairs})),
            run.source_commit, run.host,
        ))
    return out


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
    points: dict[Key, list[TrendPoint]] = {}
    for point in store.trend(metric, device=device, model=model, variant=variant, until_run=until_run):
        points.setdefault(point.key, []).append(point)
    return [Trend(key, metric, tuple(p)) for key, p in sorted(points.items())]


def require_trends(found: Sequence[Trend], store: ResultsReader, *, device: str, model: str, variant: str) -> None:
    """No pair matched: say which names the store does know (exit 2)."""
    if found:
        return
    seen = {p.key for p in store.pairs()}
    known = lambda i: ", ".join(sorted({k[i] for k in seen})) or "none"  # noqa: E731
    raise InputError(
        f"no stored result matches --device {device} --model {model} --variant {variant}",
        source="harness history --trend",
        hint=f"devices: {known(0)}; models: {known(1)}; variants: {known(2)}",
    )


def remeasured_notes(store: ResultsReader, run_id: str, role: str = "run") -> list[str]:
    """Which measurement a comparison or gate used, for each pair of the run
    measured again (`harness gate --remeasure`): the re-measurement; the
    first one is kept in the store, superseded. ``role`` names the run
    ("run", "baseline run")."""
    superseded = store.superseded(run_id)
    if not superseded:
        return []
    current = {r.key: r for r in store.records(run_id)}
    earlier: dict[Key, list[str]] = {}
    for old in superseded:
        earlier.setdefault(old.record.key, []).append(old.record.created_at)
    notes = []
    for key, measured_at in earlier.items():
        now = current.get(key)
        used = f"the re-measurement of {now.created_at}" if now else "no current record"
        notes.append(f"{role} {run_id}, {'/'.join(key)}: remeasured; this uses {used}, "
                     f"not the superseded measurement of {', '.join(measured_at)} (kept in the store)")
    return notes
