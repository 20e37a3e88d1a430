"""One bound against one pair: pure decisions, no I/O.

A latency bound is judged on the confidence interval of the quantile, not on
the point estimate, because a p90 that lands 1% under the bound on a noisy
device passes today and fails tomorrow with no change at all:

- fail          the whole interval is above the bound (the device is slower);
- pass          the whole interval is at or below it;
- inconclusive  the bound lies inside the interval: measure longer.

A regression against a baseline fails only when the Mann–Whitney test says
the candidate is slower (p < alpha) AND its median is more than the allowed
percentage above the baseline's (harness/measure/stats.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Sequence

from harness.measure.stats import DEFAULT_ALPHA, MIN_SAMPLES_P90, MIN_SAMPLES_P99, compare_samples, ns_to_ms, summarize_ns
from harness.results.record import LatencyMs, Record

Outcome = Literal["pass", "fail", "inconclusive", "skipped"]

# Below any mAP difference COCO evaluation can produce; absorbs float rounding.
MAP_FLOAT_SLACK = 1e-9

# Samples a quantile needs before its 95% interval has both ends.
_MIN_SAMPLES = {"p50": 6, "p90": MIN_SAMPLES_P90, "p99": MIN_SAMPLES_P99}


@dataclass(frozen=True)
class Check:
    rule: str
    device: str
    model: str
    variant: str
    metric: str  # a budget key: p90_ms, peak_memory_mb, max_map_drop, ...
    outcome: Outcome
    measured: str  # e.g. "p90 12.31 ms [12.10, 12.52]"
    bound: str  # e.g. "<= 45 ms"
    message: str

    @property
    def pair(self) -> str:
        return f"{self.device}/{self.model}/{self.variant}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pair": self.pair}


def _check(rule: str, record: Record, metric: str, outcome: Outcome, measured: str, bound: str, why: str) -> Check:
    device, model, variant = record.key
    verdict = {"pass": "passes", "fail": "FAILS", "inconclusive": "is INCONCLUSIVE", "skipped": "skipped"}[outcome]
    message = f"budget {rule!r} {verdict} on {device}/{model}/{variant}: {metric} {bound}; measured {measured}"
    if why:
        message += f" — {why}"
    return Check(rule, device, model, variant, metric, outcome, measured, bound, message)


def not_measured(rule: str, record: Record, metric: str, bound: str) -> Check:
    """The pair has no result to judge: it failed (the gate cannot vouch for
    it) or was skipped as impossible on this device (nothing to gate)."""
    if record.status == "skipped":
        reason = record.error.message if record.error else "skipped"
        return _check(rule, record, metric, "skipped", "nothing (pair skipped)", bound, reason)
    reason = f"{record.error.kind}: {record.error.message}" if record.error else "the pair failed"
    return _check(rule, record, metric, "fail", "nothing (pair failed)", bound, f"{reason}; fix the pair and run again")


def check_latency(rule: str, record: Record, samples_ns: Sequence[int], quantile_name: str, bound_ms: float) -> Check:
    metric = f"{quantile_name}_ms"
    bound = f"<= {bound_ms:g} ms"
    if record.status != "ok":
        return not_measured(rule, record, metric, bound)
    summary = _summary(record, samples_ns)
    if summary is None:
        return _check(rule, record, metric, "fail", "no latency samples", bound, "the record holds no latency; run the pair again")
    return _quantile_check(rule, record, summary, quantile_name, bound_ms, metric)


def check_frame_latency(rule: str, record: Record, quantile_name: str, bound_ms: float) -> Check:
    """A bound on the app's whole frame per stage sum (`frame_p90_ms`),
    decided on its interval as invoke latency is."""
    metric = f"frame_{quantile_name}_ms"
    if record.status != "ok":
        return not_measured(rule, record, metric, f"<= {bound_ms:g} ms")
    if record.app is None:
        return _check(rule, record, metric, "fail", "no app latency", f"<= {bound_ms:g} ms",
                      "measure the app's frame: `measurement: {app_latency: true}` in the device profile, "
                      "on a model with an eval dataset")
    return _quantile_check(rule, record, record.app.frame, quantile_name, bound_ms, metric)


def _quantile_check(rule: str, record: Record, summary: LatencyMs, quantile_name: str, bound_ms: float, metric: str) -> Check:
    bound = f"<= {bound_ms:g} ms"
    point, interval, n = getattr(summary, quantile_name), getattr(summary, f"{quantile_name}_ci"), summary.n
    if interval is None:
        need = _MIN_SAMPLES[quantile_name]
        return _check(
            rule, record, metric, "inconclusive", f"{quantile_name} {point:.3f} ms from {n} samples, no 95% interval", bound,
            f"a {quantile_name} interval needs at least {need} samples: measure longer",
        )
    lo, hi = interval
    measured = f"{quantile_name} {point:.3f} ms [{lo:.3f}, {hi:.3f}] (95% CI, n={n})"
    if lo > bound_ms:
        return _check(rule, record, metric, "fail", measured, bound, "the whole interval is above the bound")
    if hi <= bound_ms:
        return _check(rule, record, metric, "pass", measured, bound, "")
    return _check(
        rule, record, metric, "inconclusive", measured, bound,
        "the bound lies inside the interval: measure longer (harness gate --remeasure) to decide",
    )


def _summary(record: Record, samples_ns: Sequence[int]) -> LatencyMs | None:
    """The pair's summary, remade from the raw samples when the store has
    them (by the function that made the record's), else the record's own."""
    return summarize_ns(samples_ns) if samples_ns else record.latency_ms


def check_max(rule: str, record: Record, metric: str, measured: float | None, bound: float, unit: str) -> Check:
    """A plain upper bound on a deterministic-enough number (memory, size)."""
    text_bound = f"<= {bound:g} {unit}"
    if record.status != "ok":
        return not_measured(rule, record, metric, text_bound)
    if measured is None:
        return _check(rule, record, metric, "fail", "not measured", text_bound, "the device did not report it; see `harness devices check`")
    text = f"{measured:.2f} {unit}"
    if measured > bound:
        return _check(rule, record, metric, "fail", text, text_bound, f"{measured - bound:.2f} {unit} over")
    return _check(rule, record, metric, "pass", text, text_bound, "")


def check_min_map(rule: str, record: Record, bound: float) -> Check:
    metric, text_bound = "min_map", f">= {bound:.3f}"
    if record.status != "ok":
        return not_measured(rule, record, metric, text_bound)
    if record.accuracy is None:
        return _check(
            rule, record, metric, "fail", "no mAP", text_bound,
            "this pair was measured without an eval dataset (a bare .tflite?): run it from a recipe with `eval:`",
        )
    measured = f"mAP {record.accuracy.map:.3f} on {record.accuracy.n_images} images"
    outcome: Outcome = "pass" if record.accuracy.map >= bound else "fail"
    return _check(rule, record, metric, outcome, measured, text_bound, "")


def check_map_drop(rule: str, record: Record, fp32_record: Record | None, bound: float) -> Check:
    metric, text_bound = "max_map_drop", f"<= {bound:.3f} below fp32"
    if record.status != "ok":
        return not_measured(rule, record, metric, text_bound)
    if fp32_record is None or fp32_record.status != "ok" or fp32_record.accuracy is None:
        return _check(
            rule, record, metric, "fail", "no fp32 reference", text_bound,
            f"the drop is measured against fp32 of {record.model.name} on {record.device.name} in the same run: "
            "include fp32 in --variants",
        )
    if record.accuracy is None:
        return _check(rule, record, metric, "fail", "no mAP", text_bound, "this pair was measured without an eval dataset")
    drop = fp32_record.accuracy.map - record.accuracy.map
    measured = f"drop {drop:+.3f} (mAP {record.accuracy.map:.3f} vs fp32 {fp32_record.accuracy.map:.3f})"
    # A drop equal to the bound meets it: 0.359 - 0.354 is 0.0050000000000000044
    # in binary floats, and mAPs are fractions far coarser than this slack.
    outcome: Outcome = "pass" if drop <= bound + MAP_FLOAT_SLACK else "fail"
    return _check(rule, record, metric, outcome, measured, text_bound, "")


def check_regression(
    rule: str,
    record: Record,
    baseline_record: Record | None,
    baseline_ns: Sequence[int],
    candidate_ns: Sequence[int],
    max_pct: float,
) -> Check:
    metric, text_bound = "max_regression_pct", f"<= +{max_pct:g}% vs baseline p50"
    if record.status != "ok":
        return not_measured(rule, record, metric, text_bound)
    if baseline_record is None or baseline_record.status != "ok" or not baseline_ns:
        return _check(rule, record, metric, "skipped", "no baseline", text_bound, "the baseline run has no ok result for this pair")
    if not candidate_ns:
        return _check(rule, record, metric, "fail", "no samples", text_bound, "the candidate record has no raw samples")
    c = compare_samples(ns_to_ms(baseline_ns), ns_to_ms(candidate_ns), min_effect_ratio=max_pct / 100.0)
    change = (c.ratio - 1.0) * 100.0
    measured = f"p50 {c.baseline_p50:.3f} -> {c.candidate_p50:.3f} ms ({change:+.1f}%, p={c.p_value:.2g})"
    if c.verdict == "slower":
        return _check(
            rule, record, metric, "fail", measured, text_bound,
            f"slower by more than {max_pct:g}% and significant (Mann–Whitney p < {DEFAULT_ALPHA})",
        )
    why = "" if change <= max_pct else f"the {change:+.1f}% is not statistically significant (p={c.p_value:.2g})"
    return _check(rule, record, metric, "pass", measured, text_bound, why)
