import numpy as np
import pandas as pd
from scipy import stats as st

from study import stats


def test_median_ci_ranks_match_binomial_definition():
    for n in (6, 10, 30, 101):
        lo, hi = stats.median_ci_ranks(n, 0.95)
        # coverage of [x_(lo+1), x_(hi+1)] (1-based) is 1 - 2 P(Bin <= lo)
        coverage = 1 - 2 * st.binom.cdf(lo, n, 0.5)
        assert coverage >= 0.95
        # one rank tighter would fall below 95%
        assert 1 - 2 * st.binom.cdf(lo + 1, n, 0.5) < 0.95
        assert hi == n - 1 - lo


def test_median_ci_too_few_samples_is_nan():
    med, lo, hi = stats.median_ci([1.0, 2.0, 3.0])
    assert med == 2.0 and np.isnan(lo) and np.isnan(hi)
    assert stats.rel_halfwidth([1.0, 2.0, 3.0]) == float("inf")


def test_median_ci_covers_true_median_in_simulation():
    rng = np.random.default_rng(1)
    hits = 0
    trials = 2000
    true_median = np.log(2)  # exponential(1)
    for _ in range(trials):
        x = rng.exponential(1.0, 25)
        _, lo, hi = stats.median_ci(x)
        hits += lo <= true_median <= hi
    assert hits / trials >= 0.94


def test_ratio_of_medians_ci_contains_true_ratio():
    rng = np.random.default_rng(2)
    a = rng.normal(30, 1, 200)
    b = rng.normal(10, 0.5, 200)
    r, lo, hi = stats.ratio_of_medians_ci(a, b, seed=3)
    assert lo < 3.0 < hi and abs(r - 3.0) < 0.1


def test_holm_known_values():
    adj = stats.holm([0.01, 0.04, 0.03, np.nan])
    np.testing.assert_allclose(adj[:3], [0.03, 0.06, 0.06])
    assert np.isnan(adj[3])


def test_summarize_per_group():
    df = pd.DataFrame({"g": ["a"] * 10 + ["b"] * 10, "latency_ms": list(range(10)) + [5.0] * 10})
    s = stats.summarize(df, ["g"])
    assert list(s.g) == ["a", "b"]
    assert s.loc[s.g == "b", "cv"].iloc[0] == 0
    assert s.loc[s.g == "a", "n"].iloc[0] == 10
