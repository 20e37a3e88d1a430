"""Trends across runs, answered from the store's summary columns.

Each metric `harness history --trend` knows is one query column (and, for
the latency quantiles, the two columns of its interval), filled when a
record is written (harness/results/schema.py). A trend therefore reads a
few numbers per stored pair and never a record's JSON or its raw samples,
so its cost grows with the number of pairs stored, not of samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from harness.results.store import RunInfo, SqlStore

Key = tuple[str, str, str]  # (device, model, variant)


@dataclass(frozen=True)
class TrendMetric:
    name: str
    label: str
    unit: str
    column: str  # the query column holding it (schema.QUERY_FIELDS)
    ci_columns: tuple[str, str] | None = None  # its interval's bounds
    divisor: float | None = None  # the column's unit per metric unit; a zero stays "none"

    def value(self, stored: Any) -> float | None:
        if self.divisor is None:
            return stored
        return stored / self.divisor if stored else None


def _quantile(name: str) -> TrendMetric:
    return TrendMetric(name, f"{name} latency", "ms", f"{name}_ms", (f"{name}_ci_lo_ms", f"{name}_ci_hi_ms"))


# The names are the CLI's (`--trend METRIC`); the labels and units the reports'.
METRICS: dict[str, TrendMetric] = {
    m.name: m
    for m in (
        _quantile("p50"),
        _quantile("p90"),
        _quantile("p99"),
        TrendMetric("mean", "mean latency", "ms", "mean_ms"),
        TrendMetric("peak_mb", "peak RSS", "MiB", "peak_memory_mb"),
        TrendMetric("size_mb", "model size", "MB", "size_bytes", divisor=1e6),
        TrendMetric("map", "COCO mAP", "", "map"),
        TrendMetric("map50", "COCO mAP50", "", "map50"),
        TrendMetric("load_ms", "model load", "ms", "load_ms"),
    )
}


@dataclass(frozen=True)
class TrendPoint:
    """One pair in one run: the metric's value (None unless the pair is ok)."""

    run_id: str
    created_at: str  # the run's
    device: str
    model: str
    variant: str
    status: str  # ok | failed | skipped
    value: float | None
    ci: tuple[float, float] | None = None
    source_commit: str | None = None  # which commit the run measured

    @property
    def key(self) -> Key:
        return (self.device, self.model, self.variant)


def trend_points(store: "SqlStore", metric: TrendMetric, patterns: Mapping[str, str], until: "RunInfo | None") -> list[TrendPoint]:
    """The metric of every current record whose device, model and variant
    match ``patterns`` (shell globs by column), oldest run first, up to and
    including the run ``until``."""
    where, params = ["r.superseded_at IS NULL"], []
    for column, pattern in patterns.items():
        if not _is_glob(pattern):  # an exact name: let the index find it
            where.append(f"r.{column} = ?")
            params.append(pattern)
    if until is not None:  # runs are ordered by (created_at, run_id)
        where.append("(u.created_at < ? OR (u.created_at = ? AND u.run_id <= ?))")
        params += [until.created_at, until.created_at, until.run_id]
    ci = ", ".join(f"r.{c}" for c in metric.ci_columns) if metric.ci_columns else "NULL, NULL"
    rows = store._execute(
        f"SELECT u.run_id, u.created_at, r.device, r.model, r.variant, r.status, r.{metric.column}, {ci},"
        " u.source_commit FROM records r JOIN runs u ON u.run_id = r.run_id"
        f" WHERE {' AND '.join(where)} ORDER BY u.created_at, u.run_id, r.id",
        params,
    ).fetchall()
    names = ("device", "model", "variant")
    return [
        _point(metric, row)
        for row in rows
        if all(fnmatchcase(name, patterns.get(column, "*")) for column, name in zip(names, row[2:5]))
    ]


def _point(metric: TrendMetric, row: Any) -> TrendPoint:
    run_id, created_at, device, model, variant, status, stored, lo, hi, commit = row
    ok = status == "ok"
    value = metric.value(stored) if ok else None
    ci = (lo, hi) if ok and lo is not None and hi is not None else None
    return TrendPoint(run_id, created_at, device, model, variant, status, value, ci, commit)


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")
