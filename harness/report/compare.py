"""Comparisons on the raw samples, decided with the Mann–Whitney test of
harness/measure/stats.py, never by comparing two medians:

- two runs (baseline vs candidate), pair by pair;
- inside one run, every variant against a reference variant on the same
  device (variant vs variant), or every device against a reference device
  for the same variant (device vs device);
- inside a run that swept configurations, every thread count, runtime or
  XNNPACK setting against a reference one, the rest of the configuration
  the same (`--versus threads|runtimes|xnnpack`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, NoReturn, Sequence

from harness.errors import InputError
from harness.measure.stats import compare_samples, ns_to_ms
from harness.report.history import Key, ResultsReader, remeasured_notes
from harness.results.record import Configuration, Record

VERDICTS = ("slower", "faster", "same", "added", "removed", "failed")


@dataclass(frozen=True)
class PairComparison:
    device: str
    model: str
    variant: str
    verdict: str  # slower | faster | same | added | removed | failed
    baseline_p50_ms: float | None = None
    candidate_p50_ms: float | None = None
    ratio: float | None = None
    p_value: float | None = None
    effect: float | None = None
    n_baseline: int | None = None
    n_candidate: int | None = None
    # What this pair is compared with: the baseline run id, the reference
    # variant or the reference device.
    against: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ComparisonReport:
    kind: str  # runs | variants | devices | threads | runtimes | xnnpack
    baseline: str  # run id, reference variant or reference device
    candidate: str  # the (candidate) run id
    rows: tuple[PairComparison, ...]
    # Which measurement was used where a pair was measured again (runs only).
    notes: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        if self.kind == "runs":
            return f"run {self.candidate} vs baseline run {self.baseline}"
        if self.kind == "variants":
            return f"run {self.candidate}: every variant vs {self.baseline} on the same device"
        if self.kind in DIMENSIONS:
            return f"run {self.candidate}: every configuration vs {self.baseline}, the rest of it the same"
        return f"run {self.candidate}: every device vs {self.baseline} for the same variant"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "baseline": self.baseline, "candidate": self.candidate,
                "pairs": [r.to_dict() for r in self.rows], "notes": list(self.notes)}

    def counts(self) -> dict[str, int]:
        return {v: n for v in VERDICTS if (n := sum(1 for r in self.rows if r.verdict == v))}


def _pair(shown: Key, against: str, base_ns: Sequence[int], cand_ns: Sequence[int]) -> PairComparison:
    device, model, variant = shown
    if not base_ns or not cand_ns:
        return PairComparison(device, model, variant, "failed", against=against)
    c = compare_samples(ns_to_ms(base_ns), ns_to_ms(cand_ns))
    return PairComparison(
        device, model, variant, c.verdict, c.baseline_p50, c.candidate_p50, c.ratio, c.p_value, c.effect,
        c.n_baseline, c.n_candidate, against,
    )


def compare_runs(store: ResultsReader, baseline_run: str, candidate_run: str) -> list[PairComparison]:
    baseline = {r.key: r for r in store.records(baseline_run)}
    candidate = {r.key: r for r in store.records(candidate_run)}
    out: list[PairComparison] = []
    for key in sorted(set(baseline) | set(candidate)):
        if key not in baseline or key not in candidate:
            out.append(PairComparison(*key, "added" if key not in baseline else "removed", against=baseline_run))
            continue
        out.append(_pair(key, baseline_run, store.samples_ns(baseline_run, *key), store.samples_ns(candidate_run, *key)))
    return out


def run_comparison(store: ResultsReader, baseline_run: str, candidate_run: str) -> ComparisonReport:
    notes = remeasured_notes(store, baseline_run, "baseline run")
    notes += remeasured_notes(store, candidate_run, "run") if candidate_run != baseline_run else []
    return ComparisonReport("runs", baseline_run, candidate_run, tuple(compare_runs(store, baseline_run, candidate_run)),
                            tuple(notes))


def compare_variants(store: ResultsReader, run_id: str, reference: str = "fp32") -> ComparisonReport:
    """Every variant against ``reference`` on the same device and model."""
    records = store.records(run_id)
    # In a swept run, each configuration's variants against its own reference.
    refs = {(r.device.name, r.model.name, r.configuration): r for r in records if r.model.variant == reference}
    if not refs:
        _no_reference("--reference", reference, sorted({r.model.variant for r in records}), run_id)
    rows = []
    ref_samples = _SamplesOnce(store, run_id)
    for record in records:
        ref = refs.get((record.device.name, record.model.name, record.configuration))
        if ref is None or record is ref:
            continue
        rows.append(_pair(record.key, reference, ref_samples(ref), _samples(store, run_id, record)))
    return ComparisonReport("variants", reference, run_id, tuple(rows))


def compare_devices(store: ResultsReader, run_id: str, reference: str | None = None) -> ComparisonReport:
    """Every device against ``reference`` (default: the run's first device)
    for the same model and variant."""
    records = store.records(run_id)
    devices = list(dict.fromkeys(r.device.name for r in records))
    reference = reference or (devices[0] if devices else "")
    if reference not in devices:
        _no_reference("--reference", reference, devices, run_id)
    refs = {(r.model.name, r.key[2]): r for r in records if r.device.name == reference}
    rows = []
    ref_samples = _SamplesOnce(store, run_id)
    for record in records:
        ref = refs.get((record.model.name, record.key[2]))
        if ref is None or record.device.name == reference:
            continue
        rows.append(_pair(record.key, reference, ref_samples(ref), _samples(store, run_id, record)))
    return ComparisonReport("devices", reference, run_id, tuple(rows))


# --versus NAME: what a dimension's value is on a record, and the rest of its configuration.
DIMENSIONS = ("threads", "runtimes", "xnnpack")


def dimension_value(record: Record, dimension: str) -> str:
    """`2` threads, `tflite-runtime`, XNNPACK `on`/`off` (not switched off is on)."""
    config = record.configuration or Configuration()
    if dimension == "threads":
        return str(record.threads) if record.threads is not None else "default"
    if dimension == "runtimes":
        return record.device.runtime.name if record.device.runtime else config.runtime or "default"
    return "off" if config.xnnpack is False else "on"


def _rest(record: Record, dimension: str) -> tuple[str, str, str, Configuration | None]:
    config = record.configuration
    if config is not None:
        blank = {"threads": "threads", "runtimes": "runtime", "xnnpack": "xnnpack"}[dimension]
        config = replace(config, **{blank: None})
    return (record.device.name, record.model.name, record.model.variant, config)


def compare_configurations(store: ResultsReader, run_id: str, dimension: str, reference: str | None = None) -> ComparisonReport:
    """Every pair against the same pair in the reference value of one
    dimension (default: the fewest threads, the first runtime measured,
    XNNPACK on), the rest of its configuration the same."""
    records = [r for r in store.records(run_id) if r.configuration is not None]
    values = list(dict.fromkeys(dimension_value(r, dimension) for r in records))
    if dimension == "threads":
        values.sort(key=lambda v: int(v) if v.isdigit() else 0)
    if len(values) < 2:
        raise InputError(
            f"run {run_id} measured one {dimension} value or none ({', '.join(values) or 'no sweep'})", source="--versus",
            hint=f"sweep it: `harness run --{dimension} ...` with two or more values",
        )
    reference = reference or ("on" if dimension == "xnnpack" and "on" in values else values[0])
    if reference not in values:
        _no_reference("--reference", reference, values, run_id)
    refs = {_rest(r, dimension): r for r in records if dimension_value(r, dimension) == reference}
    against = f"{ {'threads': 'threads', 'runtimes': 'runtime', 'xnnpack': 'XNNPACK'}[dimension]} {reference}"
    rows = []
    ref_samples = _SamplesOnce(store, run_id)
    for record in records:
        ref = refs.get(_rest(record, dimension))
        if ref is None or record is ref:
            continue
        rows.append(_pair(record.key, against, ref_samples(ref), _samples(store, run_id, record)))
    return ComparisonReport(dimension, against, run_id, tuple(rows))


def _samples(store: ResultsReader, run_id: str, record: Record) -> list[int]:
    return store.samples_ns(run_id, *record.key) if record.status == "ok" else []


class _SamplesOnce:
    """A reference record's samples, read from the store once however many
    records are compared with it (every variant of a device against its fp32)."""

    def __init__(self, store: ResultsReader, run_id: str) -> None:
        self._store, self._run_id = store, run_id
        self._read: dict[Key, list[int]] = {}

    def __call__(self, record: Record) -> list[int]:
        if record.key not in self._read:
            self._read[record.key] = _samples(self._store, self._run_id, record)
        return self._read[record.key]


def _no_reference(flag: str, name: str, known: Sequence[str], run_id: str) -> NoReturn:
    raise InputError(
        f"run {run_id} has no {name!r} to compare with", source=flag,
        hint=f"pass one of: {', '.join(known) or 'none (the run has no records)'}",
    )
