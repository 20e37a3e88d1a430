"""Pure statistics over raw latency samples. No I/O, no numpy needed.

Samples are measured in nanoseconds (``time.perf_counter_ns``) and shown in
milliseconds; ``ns_to_ms`` is the one conversion.

Quantiles use linear interpolation between order statistics (Hyndman & Fan
type 7, numpy's default): with sorted x_1..x_n and h = (n - 1) q,
Q(q) = x_floor(h)+1 + (h - floor(h)) (x_floor(h)+2 - x_floor(h)+1).

Confidence intervals for a quantile are distribution-free (order-statistic,
binomial): the number B of samples below the true q-quantile is
Binomial(n, q), so P(x_(l) <= xi_q <= x_(u)) = P(l <= B <= u - 1). We take
the largest l with P(B < l) <= alpha/2 and the smallest u with
P(B >= u) <= alpha/2, which covers at least 1 - alpha. When n is too small
for such an l or u to exist, that side is unbounded and the interval is
reported as ``None`` (MLPerf's rule of thumb: p90 needs >= 64 samples,
p99 >= 662 for a tight bound).

``quantile_ci`` is the one interval: the record's ``p50_ci``/``p90_ci``/
``p99_ci``, the gate's latency checks (through ``summarize_ns``) and the
agent's early stop (``interval_is_tight``; devices/agent.py keeps a copy,
which tests/unit/test_agent_units.py holds to the same decisions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from harness.results.record import LatencyMs

# MLPerf's minimum sample counts for a percentile to be reported as reliable.
MIN_SAMPLES_P90 = 64
MIN_SAMPLES_P99 = 662
NS_PER_MS = 1e6
# Binomial terms below e**-60 (1e-26) are left out of the CDF: together they
# weigh less than n * 1e-26, far under a float step at alpha/2 (3e-18), so the
# ranks are those of the full sum (tests/unit/test_stats.py), found in
# O(sqrt(n)) instead of O(n) steps: the agent asks every 32 samples.
_LOG_NEGLIGIBLE = -60.0


def ns_to_ms(samples_ns: Iterable[int]) -> list[float]:
    """Nanosecond samples as milliseconds, in their order."""
    return [v / NS_PER_MS for v in samples_ns]


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Type-7 quantile of already sorted values."""
    if not sorted_values:
        raise ValueError("quantile of no samples")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    h = (len(sorted_values) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def quantile_ci_ranks(n: int, q: float, confidence: float = 0.95) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) of the order statistics bounding the q-quantile.

    cdf(j) = P(B <= j) is summed upwards from the first non-negligible term
    (the pmf is unimodal, so a bisection below the mode finds it); rank r
    reads cdf(r - 1), and the walk ends at u."""
    half_alpha = (1.0 - confidence) / 2.0
    log_p, log_q, log_n_fact = math.log(q), math.log1p(-q), math.lgamma(n + 1)

    def log_pmf(i: int) -> float:
        return log_n_fact - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q

    first, below_mode = 0, min(n, int(n * q))
    while first < below_mode:
        middle = (first + below_mode) // 2
        if log_pmf(middle) < _LOG_NEGLIGIBLE:
            first = middle + 1
        else:
            below_mode = middle
    lower: int | None = first if first >= 1 else None  # cdf(first - 1) is 0
    running = 0.0
    for i in range(first, n):
        running += math.exp(log_pmf(i))
        cdf = min(1.0, running)
        if cdf <= half_alpha:  # P(B < i + 1)
            lower = i + 1
        if 1.0 - cdf <= half_alpha:  # P(B >= i + 1)
            return lower, i + 1
    return lower, None


def quantile_ci(sorted_values: Sequence[float], q: float, confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free confidence interval of the q-quantile, or None."""
    lower, upper = quantile_ci_ranks(len(sorted_values), q, confidence)
    if lower is None or upper is None:
        return None
    return sorted_values[lower - 1], sorted_values[upper - 1]


def interval_is_tight(sorted_values: Sequence[float], q: float, rel_tol: float) -> bool:
    """The agent's early stop: the q-quantile's 95% interval has a half-width
    of at most ``rel_tol`` times the quantile. Unit-free (ns or ms alike)."""
    interval = quantile_ci(sorted_values, q)
    if interval is None:
        return False
    point = quantile(sorted_values, q)
    return point > 0 and (interval[1] - interval[0]) / 2.0 <= rel_tol * point


def summarize_ns(samples_ns: Sequence[int], *, stop_reason: str | None = None, rounds: int = 1) -> LatencyMs:
    """The record's latency summary. Every sample counts: no clipping, no
    outlier rejection."""
    if not samples_ns:
        raise ValueError("no latency samples")
    values_ms = sorted(ns_to_ms(samples_ns))
    n = len(values_ms)
    mean = math.fsum(values_ms) / n
    var = math.fsum((v - mean) ** 2 for v in values_ms) / (n - 1) if n > 1 else 0.0
    return LatencyMs(
        n=n,
        min=values_ms[0],
        p50=quantile(values_ms, 0.5),
        p90=quantile(values_ms, 0.9),
        p99=quantile(values_ms, 0.99),
        max=values_ms[-1],
        mean=mean,
        std=math.sqrt(var),
        p50_ci=quantile_ci(values_ms, 0.5),
        p90_ci=quantile_ci(values_ms, 0.9),
        p99_ci=quantile_ci(values_ms, 0.99),
        p90_reliable=n >= MIN_SAMPLES_P90,
        p99_reliable=n >= MIN_SAMPLES_P99,
        stop_reason=stop_reason,
        rounds=rounds,
    )


@dataclass(frozen=True)
class Comparison:
    """Is the candidate slower than the baseline?

    ``ratio`` is median(candidate) / median(baseline). ``p_value`` is the
    two-sided Mann–Whitney U test. ``effect`` is the rank-biserial
    correlation r = 2 U_c / (n_b n_c) - 1 in [-1, 1]: the probability that
    a random candidate sample is slower than a random baseline sample, minus
    the reverse (0: no difference; 1: every candidate sample slower).
    """

    n_baseline: int
    n_candidate: int
    baseline_p50: float
    candidate_p50: float
    ratio: float
    u_statistic: float
    p_value: float
    effect: float
    verdict: str  # slower | faster | same


# Defaults for calling a difference: statistically clear AND large enough to
# matter. With thousands of samples a 0.5% drift is "significant"; nobody
# should fail a release for it.
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_EFFECT_RATIO = 0.03


def mann_whitney_u(baseline: Sequence[float], candidate: Sequence[float]) -> tuple[float, float]:
    """U of the candidate and its two-sided p-value (normal approximation
    with tie correction and continuity correction).

    U_c = R_c - n_c (n_c + 1) / 2, with R_c the candidate's rank sum over
    the pooled samples (ties get their mean rank), which is the number of
    (candidate, baseline) pairs where the candidate is larger, ties counted
    as 1/2: computed that way, by searching the sorted baseline, because
    ranking the pooled samples in Python took most of a 200-pair run's
    report. Under H0 U has mean n_b n_c / 2 and variance
    n_b n_c / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1))), with t the size
    of each tie group and n = n_b + n_c.
    """
    # numpy's searchsorted and unique do the per-sample work (the Python
    # bisect loop and Counter still took ~45 ms a pair at 8000 x 8000, most
    # of a 200-pair report); the counts are the same integers.
    import numpy as np

    n_b, n_c = len(baseline), len(candidate)
    if n_b == 0 or n_c == 0:
        raise ValueError("both samples need values")
    base_sorted = np.sort(np.asarray(baseline, dtype=np.float64))
    cand = np.asarray(candidate, dtype=np.float64)
    below = int(np.searchsorted(base_sorted, cand, side="left").sum())
    below_or_tied = int(np.searchsorted(base_sorted, cand, side="right").sum())
    u_c = (below + below_or_tied) / 2.0  # exact: a count of halves
    n = n_b + n_c
    _, group_sizes = np.unique(np.concatenate((base_sorted, cand)), return_counts=True)
    tie_term = float(sum(t**3 - t for t in group_sizes[group_sizes > 1].tolist()))  # Python ints: no overflow
    mean_u = n_b * n_c / 2.0
    var_u = n_b * n_c / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var_u <= 0:
        return u_c, 1.0
    z = (abs(u_c - mean_u) - 0.5) / math.sqrt(var_u)
    p_value = math.erfc(max(z, 0.0) / math.sqrt(2.0))
    return u_c, min(1.0, p_value)


def compare_samples(
    baseline_ms: Sequence[float],
    candidate_ms: Sequence[float],
    *,
    alpha: float = DEFAULT_ALPHA,
    min_effect_ratio: float = DEFAULT_MIN_EFFECT_RATIO,
) -> Comparison:
    """Verdict `slower`/`faster` only when p < alpha and the medians differ
    by more than ``min_effect_ratio``; otherwise `same`."""
    base_sorted, cand_sorted = sorted(baseline_ms), sorted(candidate_ms)
    base_p50, cand_p50 = quantile(base_sorted, 0.5), quantile(cand_sorted, 0.5)
    u_c, p_value = mann_whitney_u(base_sorted, cand_sorted)
    effect = 2.0 * u_c / (len(base_sorted) * len(cand_sorted)) - 1.0
    ratio = cand_p50 / base_p50 if base_p50 > 0 else math.inf
    verdict = "same"
    if p_value < alpha and abs(ratio - 1.0) > min_effect_ratio:
        verdict = "slower" if ratio > 1.0 else "faster"
    return Comparison(
        n_baseline=len(base_sorted),
        n_candidate=len(cand_sorted),
        baseline_p50=base_p50,
        candidate_p50=cand_p50,
        ratio=ratio,
        u_statistic=u_c,
        p_value=p_value,
        effect=effect,
        verdict=verdict,
    )
