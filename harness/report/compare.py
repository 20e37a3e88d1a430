"""Two runs side by side: per (device, model, variant), is the candidate
slower than the baseline? Decided on the raw samples with the Mann–Whitney
test of harness/measure/stats.py, never by comparing two medians."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.measure.stats import compare_samples
from harness.results.store import ResultsStore


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_runs(store: ResultsStore, baseline_run: str, candidate_run: str) -> list[PairComparison]:
    baseline = {r.key: r for r in store.records(baseline_run)}
    candidate = {r.key: r for r in store.records(candidate_run)}
    out: list[PairComparison] = []
    for key in sorted(set(baseline) | set(candidate)):
        device, model, variant = key
        if key not in baseline:
            out.append(PairComparison(device, model, variant, "added"))
            continue
        if key not in candidate:
            out.append(PairComparison(device, model, variant, "removed"))
            continue
        base_ns = store.samples_ns(baseline_run, *key)
        cand_ns = store.samples_ns(candidate_run, *key)
        if not base_ns or not cand_ns:
            out.append(PairComparison(device, model, variant, "failed"))
            continue
        c = compare_samples([v / 1e6 for v in base_ns], [v / 1e6 for v in cand_ns])
        out.append(
            PairComparison(
                device, model, variant, c.verdict, c.baseline_p50, c.candidate_p50, c.ratio, c.p_value, c.effect,
                c.n_baseline, c.n_candidate,
            )
        )
    return out
