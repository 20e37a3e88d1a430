import itertools
import math

import pytest

from harness.measure.stats import ns_to_ms, quantile, quantile_ci, quantile_ci_ranks, summarize_ns
from harness.results.record import LatencyMs


def test_quantile_type7_matches_hand_values():
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert quantile(values, 0.0) == 1.0
    assert quantile(values, 0.5) == 3.0
    assert quantile(values, 1.0) == 10.0
    # h = 4 * 0.9 = 3.6 -> 4 + 0.6 * (10 - 4)
    assert quantile(values, 0.9) == pytest.approx(7.6)
    assert quantile([5.0], 0.99) == 5.0


def test_quantile_rejects_bad_arguments():
    with pytest.raises(ValueError):
        quantile([], 0.5)
    with pytest.raises(ValueError):
        quantile([1.0], 1.5)


def test_median_interval_ranks_match_the_binomial_table():
    # Classic table: n=10 -> (x2, x9) covers 97.9%; n=20 -> (x6, x15) covers 95.9%.
    assert quantile_ci_ranks(10, 0.5) == (2, 9)
    assert quantile_ci_ranks(20, 0.5) == (6, 15)


def _ranks_from_every_term(n: int, q: float, confidence: float = 0.95) -> tuple[int | None, int | None]:
    """The definition read literally: the binomial CDF summed over all n + 1 terms."""
    half_alpha = (1.0 - confidence) / 2.0
    cdf = list(itertools.accumulate(math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(n + 1)))
    lower = [rank for rank in range(1, n + 1) if cdf[rank - 1] <= half_alpha]
    upper = [rank for rank in range(1, n + 1) if 1.0 - min(1.0, cdf[rank - 1]) <= half_alpha]
    return (lower[-1] if lower else None), (upper[0] if upper else None)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_ranks_skip_only_terms_too_small_to_count(q):
    sizes = [*range(1, 200), 331, 662, 1000]
    assert [quantile_ci_ranks(n, q) for n in sizes] == [_ranks_from_every_term(n, q) for n in sizes]


def test_interval_is_unbounded_with_too_few_samples():
    # With 20 samples, nothing bounds the p99 from above.
    assert quantile_ci_ranks(20, 0.99)[1] is None
    assert quantile_ci(list(range(20)), 0.99) is None


def test_p90_interval_contains_the_estimate_and_narrows_with_n():
    small = sorted(float(i % 97) for i in range(200))
    large = sorted(float(i % 97) for i in range(5000))
    lo_s, hi_s = quantile_ci(small, 0.9)
    lo_l, hi_l = quantile_ci(large, 0.9)
    assert lo_s <= quantile(small, 0.9) <= hi_s
    assert lo_l <= quantile(large, 0.9) <= hi_l
    assert (hi_l - lo_l) <= (hi_s - lo_s)


def test_summary_keeps_the_tail():
    samples_ns = [1_000_000] * 99 + [50_000_000]  # one 50 ms outlier
    s = summarize_ns(samples_ns)
    assert s.n == 100
    assert s.max == 50.0  # never clipped
    assert s.p50 == 1.0
    assert s.mean == pytest.approx((99 * 1.0 + 50.0) / 100)
    assert s.std == pytest.approx(math.sqrt(((1.0 - s.mean) ** 2 * 99 + (50.0 - s.mean) ** 2) / 99))
    assert s.p90_reliable and not s.p99_reliable


def test_the_summary_is_the_records_latency_type():
    s = summarize_ns([2_000_000 + i for i in range(100)], stop_reason="ci-tight", rounds=2)
    assert isinstance(s, LatencyMs) and (s.stop_reason, s.rounds) == ("ci-tight", 2)
    assert s.p90_ci == quantile_ci(sorted(ns_to_ms(2_000_000 + i for i in range(100))), 0.9)


def test_ns_to_ms_keeps_order_and_exact_values():
    assert ns_to_ms([1_500_000, 1, 0]) == [1.5, 1e-6, 0.0]


def test_summary_needs_samples():
    with pytest.raises(ValueError):
        summarize_ns([])


# --- two-sample comparison -------------------------------------------------

from harness.measure.stats import compare_samples, mann_whitney_u  # noqa: E402


def test_mann_whitney_u_by_hand():
    # Count candidate > baseline pairs, ties as 1/2: 2.5 + 3.5 + 4.5 + 5 + 5.
    u, p = mann_whitney_u([1, 2, 3, 4, 5], [3, 4, 5, 6, 7])
    assert u == 20.5
    # z = (|20.5 - 12.5| - 0.5) / sqrt(25/12 * (11 - 18/90)) = 7.5 / 4.7434 = 1.5811
    assert p == pytest.approx(math.erfc(7.5 / math.sqrt(25 / 12 * (11 - 18 / 90)) / math.sqrt(2)))
    assert p == pytest.approx(0.113846, abs=1e-6)


def _u_from_pooled_ranks(baseline: list[float], candidate: list[float]) -> float:
    """U_c = R_c - n_c (n_c + 1) / 2 with mean ranks for ties, the textbook way."""
    pooled = sorted(baseline + candidate)
    first = {v: pooled.index(v) + 1 for v in reversed(pooled)}
    mean_rank = {v: first[v] + (pooled.count(v) - 1) / 2 for v in first}
    return sum(mean_rank[v] for v in candidate) - len(candidate) * (len(candidate) + 1) / 2


def test_mann_whitney_u_counts_pairs_as_the_pooled_ranks_do():
    # Heavy ties (values on a 0.5 grid), unequal sizes, unsorted input.
    baseline = [(i * 7 % 11) / 2 for i in range(40)]
    candidate = [(i * 5 % 13) / 2 + 0.5 for i in range(27)]
    for b, c in ((baseline, candidate), (candidate, baseline), ([3.0] * 4, [3.0, 3.0, 4.0])):
        assert mann_whitney_u(b, c)[0] == _u_from_pooled_ranks(b, c)


def test_identical_samples_are_the_same():
    c = compare_samples([2.0] * 50, [2.0] * 50)
    assert c.p_value == 1.0 and c.effect == 0.0 and c.verdict == "same" and c.ratio == 1.0


def test_a_clear_ten_percent_slowdown_is_slower():
    base = [10.0 + 0.01 * (i % 17) for i in range(300)]
    slow = [v * 1.10 for v in base]
    c = compare_samples(base, slow)
    assert c.verdict == "slower" and c.ratio == pytest.approx(1.10)
    assert c.effect == pytest.approx(1.0)  # every slow sample beats every base sample
    assert c.p_value < 1e-50


def test_a_significant_but_tiny_difference_is_the_same():
    base = [10.0 + 0.001 * (i % 97) for i in range(2000)]
    drift = [v * 1.01 for v in base]  # 1%: p is tiny, but below the 3% floor
    c = compare_samples(base, drift)
    assert c.p_value < 0.01 and c.verdict == "same"


def test_faster_is_faster():
    base = [10.0 + 0.01 * (i % 13) for i in range(200)]
    assert compare_samples(base, [v * 0.8 for v in base]).verdict == "faster"
