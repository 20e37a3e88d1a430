"""Pure statistics over raw latency samples. No I/O, no numpy needed.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# MLPerf's minimum sample counts for a percentile to be reported as reliable.
MIN_SAMPLES_P90 = 64
MIN_SAMPLES_P99 = 662


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
    """1-based ranks (l, u) of the order statistics bounding the q-quantile."""
    alpha = 1.0 - confidence
    # cdf[j] = P(B <= j), built once; O(n).
    cdf: list[float] = []
    running = 0.0
    log_p, log_q = math.log(q), math.log1p(-q)
    log_n_fact = math.lgamma(n + 1)
    for i in range(n + 1):
        running += math.exp(log_n_fact - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
        cdf.append(min(1.0, running))
    lower: int | None = None
    for rank in range(1, n + 1):  # P(B < rank) = cdf[rank - 1]
        if cdf[rank - 1] <= alpha / 2:
            lower = rank
        else:
            break
    upper: int | None = None
    for rank in range(1, n + 1):  # P(B >= rank) = 1 - cdf[rank - 1]
        if 1.0 - cdf[rank - 1] <= alpha / 2:
            upper = rank
            break
    return lower, upper


def quantile_ci(sorted_values: Sequence[float], q: float, confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free confidence interval of the q-quantile, or None."""
    lower, upper = quantile_ci_ranks(len(sorted_values), q, confidence)
    if lower is None or upper is None:
        return None
    return sorted_values[lower - 1], sorted_values[upper - 1]


@dataclass(frozen=True)
class LatencySummary:
    """Summary of one timed loop, in milliseconds."""

    n: int
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    std: float
    p50_ci: tuple[float, float] | None
    p90_ci: tuple[float, float] | None
    p99_ci: tuple[float, float] | None
    p90_reliable: bool
    p99_reliable: bool


def summarize_ns(samples_ns: Sequence[int]) -> LatencySummary:
    """Every sample counts: no clipping, no outlier rejection."""
    if not samples_ns:
        raise ValueError("no latency samples")
    values_ms = sorted(s / 1e6 for s in samples_ns)
    n = len(values_ms)
    mean = math.fsum(values_ms) / n
    var = math.fsum((v - mean) ** 2 for v in values_ms) / (n - 1) if n > 1 else 0.0
    return LatencySummary(
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
    )
