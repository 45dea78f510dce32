"""Statistics shared by every finding: nonparametric intervals (Hoefler & Belli, SC'15).

* ``median_ci``: distribution-free confidence interval of the median from order
  statistics (binomial ranks), the harness's stopping rule uses it.
* ``bootstrap_ci``: percentile bootstrap of any statistic; ``ratio_of_medians_ci``
  for slowdowns (two independent samples resampled separately).
* ``summarize``: per-configuration summary (n, median and CI, mean, sd, CV, percentiles).
* ``holm``: Holm-Bonferroni adjusted p-values.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int] | None:
    """0-based order-statistic ranks (lo, hi) bracketing the median with at least
    ``confidence`` coverage, or ``None`` when n is too small for that coverage."""
    if n < 1:
        return None
    alpha = 1 - confidence
    # largest k with P(Bin(n, .5) <= k-1) <= alpha/2 gives the interval [x_(k), x_(n-k+1)] (1-based)
    k = int(_st.binom.ppf(alpha / 2, n, 0.5))
    while k > 0 and _st.binom.cdf(k - 1, n, 0.5) > alpha / 2:
        k -= 1
    if k < 1:
        return None
    return k - 1, n - k


def median_ci(x: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, lo, hi); lo/hi are NaN when n is too small for the requested coverage."""
    a = np.sort(np.asarray(x, dtype=float))
    a = a[~np.isnan(a)]
    if a.size == 0:
        return (np.nan, np.nan, np.nan)
    med = float(np.median(a))
    ranks = median_ci_ranks(a.size, confidence)
    if ranks is None:
        return (med, np.nan, np.nan)
    return (med, float(a[ranks[0]]), float(a[ranks[1]]))


def rel_halfwidth(x: Sequence[float], confidence: float = 0.95) -> float:
    """Half the width of the median's CI relative to the median (inf if undefined)."""
    med, lo, hi = median_ci(x, confidence)
    if np.isnan(lo) or med == 0:
        return float("inf")
    return (hi - lo) / 2 / abs(med)


def bootstrap_ci(x: Sequence[float], stat: Callable[[np.ndarray], float] = np.median, n_boot: int = 2000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    a = np.asarray(x, dtype=float)
    a = a[~np.isnan(a)]
    if a.size == 0:
        return (np.nan, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    boots = np.apply_along_axis(stat, 1, a[idx])
    q = (1 - confidence) / 2
    return (float(stat(a)), float(np.quantile(boots, q)), float(np.quantile(boots, 1 - q)))


def ratio_of_medians_ci(num: Sequence[float], den: Sequence[float], n_boot: int = 2000, confidence: float = 0.95,
                        seed: int = 0) -> tuple[float, float, float]:
    """median(num)/median(den) with a percentile bootstrap CI, each sample resampled on its own."""
    a = np.asarray(num, dtype=float)
    b = np.asarray(den, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return (np.nan, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, size=(n_boot, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, size=(n_boot, b.size))], axis=1)
    r = ma / mb
    q = (1 - confidence) / 2
    return (float(np.median(a) / np.median(b)), float(np.quantile(r, q)), float(np.quantile(r, 1 - q)))


def summarize(df: pd.DataFrame, by: Sequence[str], value: str = "latency_ms", confidence: float = 0.95) -> pd.DataFrame:
    """One row per group: n, median with its order-statistic CI, mean, sd, CV, p5, p95."""
    rows = []
    for key, g in df.groupby(list(by), sort=True, dropna=False):
        x = g[value].to_numpy(dtype=float)
        med, lo, hi = median_ci(x, confidence)
        mean = float(np.mean(x)) if x.size else np.nan
        sd = float(np.std(x, ddof=1)) if x.size > 1 else np.nan
        rows.append(dict(zip(by, key if isinstance(key, tuple) else (key,)),
                         n=int(x.size), median=med, ci_lo=lo, ci_hi=hi, mean=mean, sd=sd,
                         cv=sd / mean if mean else np.nan,
                         p5=float(np.percentile(x, 5)) if x.size else np.nan,
                         p95=float(np.percentile(x, 95)) if x.size else np.nan))
    return pd.DataFrame(rows)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (NaNs pass through)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    idx = np.argsort(p[ok])
    m = ok.sum()
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[ok][i]))
        adj[i] = running
    out[ok] = adj
    return out


# --------------------------------------------------------------------------- one-sided p-values
# Resamples of every bootstrap p-value of a claim: the smallest p it can give is 1/(B+1) ~ 1e-4, far below
# alpha/m for m = 10 claims (0.005), so Holm across claims is never decided by the bootstrap's floor.
P_RESAMPLES = 10_000


def p_resamples(n_boot: int | None = None) -> int:
    """The number of resamples of a claim's bootstrap p-value: ``n_boot``, at least ``P_RESAMPLES``."""
    return max(int(n_boot or 0), P_RESAMPLES)


def boot_p(reps: Sequence[float], null: float, direction: str = "greater") -> float:
    """One-sided bootstrap p-value of H1 "effect > null" (``greater``) or "effect < null"
    (``less``): the share of resampled estimates on the null's side, (k + 1) / (B + 1)."""
    r = np.asarray(reps, dtype=float)
    r = r[~np.isnan(r)]
    if r.size == 0 or null is None or np.isnan(null):
        return float("nan")
    k = np.sum(r <= null) if direction == "greater" else np.sum(r >= null)
    return float((k + 1) / (r.size + 1))


def binom_test(k: int, n: int, p0: float, direction: str = "greater") -> tuple[float, float, float]:
    """Exact one-sided binomial test of a share k/n against ``p0``, with the Clopper-Pearson
    95% interval: (p-value, lo, hi)."""
    if n <= 0:
        return (float("nan"), float("nan"), float("nan"))
    alt = "greater" if direction == "greater" else "less"
    p = float(_st.binomtest(int(k), int(n), p0, alternative=alt).pvalue)
    ci = _st.binomtest(int(k), int(n), p0).proportion_ci(confidence_level=0.95, method="exact")
    return p, float(ci.low), float(ci.high)
