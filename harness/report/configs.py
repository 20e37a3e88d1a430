"""The views of a run that sweeps configurations (issue 17), computed once
from stored records (no I/O): every renderer formats these rows.

- Scaling: per device, model and variant (and runtime, XNNPACK setting),
  latency against threads, with the speed-up over the fewest threads
  measured (p50 there / p50 here) and the parallel efficiency (speed-up /
  threads ratio: 1.0 is perfect scaling, 0.5 means half the added cores
  were wasted).
- Runtimes: per device, model, variant and thread count, each runtime (and
  XNNPACK setting) the run measured, with its p50 against the first one's.

A view appears only when the run has more than one configuration of a
pair; a run without a sweep shows neither.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

from harness.report.view import RUNTIME_LABELS, fmt_ms
from harness.results.record import Record


Key = tuple[str, str, str]  # a record's (device, model, slot)


@dataclass(frozen=True)
class ScalingPoint:
    key: Key
    threads: int
    p50_ms: float | None
    p90_ms: float | None
    speedup: float | None  # p50 at the fewest threads / p50 here
    efficiency: float | None  # speedup / (threads / fewest threads)
    status: str


@dataclass(frozen=True)
class ScalingLine:
    device: str
    model: str
    variant: str
    setting: str  # the rest of the configuration: runtime, XNNPACK
    points: tuple[ScalingPoint, ...]  # fewest threads first


@dataclass(frozen=True)
class RuntimeEntry:
    key: Key
    runtime: str  # name and version, with XNNPACK off when it was
    p50_ms: float | None
    p90_ms: float | None
    ratio: float | None  # p50 / the first runtime's p50
    map: float | None
    status: str
    why: str = ""  # a skipped or failed pair's reason


@dataclass(frozen=True)
class RuntimeGroup:
    device: str
    model: str
    variant: str
    threads: int | None
    entries: tuple[RuntimeEntry, ...]  # in the sweep's order
    reference: str  # the runtime the ratios are against: the first measured


@dataclass(frozen=True)
class ConfigViews:
    scaling: tuple[ScalingLine, ...]
    runtimes: tuple[RuntimeGroup, ...]

    def __bool__(self) -> bool:
        return bool(self.scaling or self.runtimes)

    def to_dict(self) -> dict[str, Any]:
        return {"scaling": [asdict(line) for line in self.scaling], "runtimes": [asdict(g) for g in self.runtimes]}


def _p(record: Record, name: str) -> float | None:
    return getattr(record.latency_ms, name) if record.status == "ok" and record.latency_ms else None


def _runtime_name(record: Record) -> str | None:
    if record.device.runtime is not None:
        return record.device.runtime.name
    return record.configuration.runtime if record.configuration else None


def _runtime_label(record: Record) -> str:
    runtime = record.device.runtime
    name = f"{runtime.name} {runtime.version}" if runtime else (_runtime_name(record) or "?")
    xnnpack = record.configuration.xnnpack if record.configuration else None
    return f"{name} · XNNPACK off" if xnnpack is False else name


def _setting(record: Record) -> str:
    xnnpack = record.configuration.xnnpack if record.configuration else None
    parts = [_runtime_name(record) or "", "XNNPACK off" if xnnpack is False else ""]
    return " · ".join(p for p in parts if p) or "default"


def config_views(records: Sequence[Record]) -> ConfigViews:
    swept = [r for r in records if r.configuration is not None]
    if len({r.configuration for r in swept}) < 2:
        return ConfigViews((), ())
    return ConfigViews(tuple(scaling_lines(swept)), tuple(runtime_groups(swept)))


def scaling_lines(records: Sequence[Record]) -> list[ScalingLine]:
    groups: dict[tuple[str, str, str, str | None, bool | None], list[Record]] = {}
    for r in records:
        if r.threads is None:
            continue
        xnnpack = r.configuration.xnnpack if r.configuration else None
        groups.setdefault((r.device.name, r.model.name, r.model.variant, _runtime_name(r), xnnpack), []).append(r)
    lines = []
    for (device, model, variant, _, _), group in groups.items():
        group.sort(key=lambda r: r.threads or 0)
        if len({r.threads for r in group}) < 2:
            continue
        base = group[0]
        base_p50 = _p(base, "p50")
        points = []
        for r in group:
            p50 = _p(r, "p50")
            speedup = base_p50 / p50 if base_p50 and p50 else None
            ratio = (r.threads or 1) / (base.threads or 1)
            points.append(ScalingPoint(r.key, r.threads or 0, p50, _p(r, "p90"), speedup,
                                       speedup / ratio if speedup is not None else None, r.status))
        lines.append(ScalingLine(device, model, variant, _setting(base), tuple(points)))
    return lines


def runtime_groups(records: Sequence[Record]) -> list[RuntimeGroup]:
    groups: dict[tuple[str, str, str, int | None], list[Record]] = {}
    for r in records:
        groups.setdefault((r.device.name, r.model.name, r.model.variant, r.threads), []).append(r)
    out = []
    for (device, model, variant, threads), group in groups.items():
        if len({(_runtime_name(r), r.configuration.xnnpack if r.configuration else None) for r in group}) < 2:
            continue
        ref = next((r for r in group if _p(r, "p50")), None)
        ref_p50 = _p(ref, "p50") if ref else None
        entries = tuple(
            RuntimeEntry(
                r.key, _runtime_label(r), _p(r, "p50"), _p(r, "p90"),
                (p50 / ref_p50) if (p50 := _p(r, "p50")) and ref_p50 else None,
                r.accuracy.map if r.accuracy else None, r.status,
                f"{r.error.kind}: {r.error.message}" if r.error else "",
            )
            for r in group
        )
        out.append(RuntimeGroup(device, model, variant, threads, entries, _runtime_label(ref) if ref else "—"))
    return out


def per_record(views: ConfigViews) -> dict[Key, dict[str, Any]]:
    """Each swept record's place in the views, for the JSON and CSV exports:
    its speed-up and efficiency over the fewest threads, its p50 against the
    first runtime's."""
    out: dict[Key, dict[str, Any]] = {}
    for line in views.scaling:
        base = line.points[0].threads
        for p in line.points:
            out.setdefault(p.key, {}).update(speedup=p.speedup, efficiency=p.efficiency, speedup_base_threads=base)
    for group in views.runtimes:
        for e in group.entries:
            out.setdefault(e.key, {}).update(vs_runtime=e.ratio, runtime_reference=group.reference)
    return out


SCALING_HEADERS = ("variant", "runtime", "threads", "p50 ms", "p90 ms", "speed-up", "efficiency")
RUNTIME_HEADERS = ("variant", "threads", "runtime", "p50 ms", "p90 ms", "vs first", "mAP")


def scaling_cells(line: ScalingLine) -> list[tuple[str, ...]]:
    """A scaling line as display rows (the variant named on its first)."""
    return [
        (line.variant if i == 0 else "", line.setting if i == 0 else "", str(p.threads), fmt_ms(p.p50_ms),
         fmt_ms(p.p90_ms), fmt_x(p.speedup) if p.status == "ok" else p.status, fmt_eff(p.efficiency))
        for i, p in enumerate(line.points)
    ]


def runtime_cells(group: RuntimeGroup) -> list[tuple[str, ...]]:
    return [
        (group.variant if i == 0 else "", str(group.threads) if i == 0 and group.threads else "", e.runtime,
         fmt_ms(e.p50_ms), fmt_ms(e.p90_ms), fmt_x(e.ratio) if e.status == "ok" else e.status,
         "—" if e.map is None else f"{e.map:.3f}")
        for i, e in enumerate(group.entries)
    ]


@dataclass(frozen=True)
class ConfigTable:
    """One view as display rows, the same in every renderer."""

    name: str  # Scaling | Runtimes
    explain: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def narrow(cell: str) -> str:
    """A runtime or setting cell for an 80-column terminal: `tflite-rt 2.14.0 -xnn`."""
    for name, short in RUNTIME_LABELS.items():
        cell = cell.replace(name, short)
    return cell.replace(" · XNNPACK off", " -xnn").replace("XNNPACK off", "-xnn")


def tables(views: ConfigViews, *, short: bool = False) -> list[ConfigTable]:
    """The views' tables; `short` shortens the runtime names (the terminal)."""
    out = [
        ConfigTable("Scaling", "speed-up = p50 at the fewest threads / p50; efficiency = speed-up / thread ratio",
                    SCALING_HEADERS, tuple(row for line in views.scaling for row in scaling_cells(line))),
        ConfigTable("Runtimes", "p50 against the first runtime measured", RUNTIME_HEADERS,
                    tuple(row for group in views.runtimes for row in runtime_cells(group))),
    ]
    if short:
        out = [replace(t, rows=tuple(tuple(narrow(c) for c in row) for row in t.rows)) for t in out]
    return [t for t in out if t.rows]


def skipped_notes(views: ConfigViews) -> list[str]:
    """Why a swept pair was not measured (a runtime the device lacks), once each."""
    return list(dict.fromkeys(f"{e.runtime}: {e.why}" for g in views.runtimes for e in g.entries if e.why))


def fmt_x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def fmt_eff(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"
