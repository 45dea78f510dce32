"""Latency estimators on a trace, their errors, and the decisions a scheduler takes from
them (finding 4, ``study.profiling_error``). Pure functions of tidy tables: no device.

Estimators of the latency of configuration c (model x candidate processor) at step t:

* offline, constant over the trace (profiled idle, before the scenario):
  - ``offline_e2e``: median of the idle end-to-end samples (the harness);
  - ``offline_opsum``: the sum of the per-operator times (engine profilers), as a
    kernel-level predictor in the spirit of nn-Meter (no calibration). With LiteRT on
    a host the operators are timed as single-operator slices, so the sum also holds one
    invocation overhead per slice;
  - ``offline_opsum_cal``: the operator sum scaled by the ratio end-to-end / operator sum
    of the *other* configurations with the same engine and processor (leave-one-out), as
    a kernel predictor calibrated on a few whole-model measurements and applied to a
    configuration it did not see. Where no other configuration exists, its own ratio
    (then it equals ``offline_e2e``; the ``cal_source`` column says so).
* runtime, updated only from latencies of c observed at steps before t (no peeking):
  - ``window_median`` / ``window_mean``: median / mean of the last ``window`` observations;
  - ``ewma``: e <- alpha * x + (1 - alpha) * e after each observation x.
  Before c's first observation they fall back to ``offline_e2e`` (EWMA starts from it).

Errors per prediction: APE = |predicted - actual| / actual, squared error, within +-10%
(nn-Meter's accuracy metric). Summaries: MAPE, RMSE and the within-10% share with 95%
*block* bootstrap intervals: predictions are resampled in contiguous blocks of
``block_seconds`` of scenario time (latencies are autocorrelated in time, errors within a
phase most of all; resampling single predictions would make the intervals too narrow).
Every estimator is resampled with the same blocks, so differences between estimators are
paired.

Scheduler: at each step each estimator picks, per model, the candidate with the lowest
prediction; its achieved latency is the chosen candidate's real latency at that step
(every candidate ran at every step: round-robin trace); the oracle picks the step's
fastest. regret = achieved - oracle. Approximation: the candidates of one step were
measured at adjacent moments, not simultaneously. The runtime estimators see every
candidate at every step (full information, as a profiler that probes every processor);
a scheduler that ran only its choice would see less.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as st

from study import stats

OFFLINE = ("offline_e2e", "offline_opsum", "offline_opsum_cal")
RUNTIME = ("window_median", "window_mean", "ewma")
ESTIMATORS = OFFLINE + RUNTIME
FAMILY = {**{e: "offline" for e in OFFLINE}, **{e: "runtime" for e in RUNTIME}}
LABELS = {"offline_e2e": "offline end-to-end (idle median)", "offline_opsum": "offline operator sum",
          "offline_opsum_cal": "offline operator sum, calibrated (LOO)", "window_median": "runtime window median",
          "window_mean": "runtime window mean", "ewma": "runtime EWMA",
          "hindsight_static": "best single candidate in hindsight", "oracle": "oracle (step's fastest)"}
WITHIN = 0.10


# --------------------------------------------------------------------------- offline profiles
def offline_table(offline: pd.DataFrame, op_times: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: idle end-to-end median (order-statistic CI), operator sum,
    and the leave-one-out calibrated operator sum.

    ``offline``: columns config, model, candidate, engine, processor, latency_ms (harness samples).
    ``op_times``: columns config, time_ms, method (one row per operator; NaN = not timed)."""
    rows = []
    keys = ["config", "model", "candidate", "engine", "processor"]
    configs = pd.concat([offline[keys], op_times[keys]] if len(op_times) else [offline[keys]]).drop_duplicates()
    for _, c in configs.iterrows():
        x = offline.loc[offline.config == c.config, "latency_ms"].to_numpy(float)
        med, lo, hi = stats.median_ci(x) if x.size else (np.nan, np.nan, np.nan)
        ops = op_times[op_times.config == c.config] if len(op_times) else op_times
        timed = ops["time_ms"].notna().sum() if len(ops) else 0
        opsum = float(ops["time_ms"].sum()) if timed else np.nan
        method = "; ".join(sorted(set(ops["method"].dropna().astype(str).str.split(";").str[0]))) if len(ops) else ""
        rows.append({**c.to_dict(), "e2e_median_ms": med, "e2e_lo": lo, "e2e_hi": hi, "e2e_n": int(x.size),
                     "opsum_ms": opsum, "n_ops": int(len(ops)), "n_ops_timed": int(timed), "op_method": method,
                     "e2e_over_opsum": med / opsum if opsum and not np.isnan(opsum) else np.nan})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    cal, src = [], []
    for i, r in df.iterrows():
        peers = df[(df.engine == r.engine) & (df.processor == r.processor) & (df.index != i)
                   & df.e2e_over_opsum.notna()]
        if len(peers):
            cal.append(float(np.median(peers.e2e_over_opsum)))
            src.append("leave-one-out: " + ", ".join(peers.config))
        else:
            cal.append(r.e2e_over_opsum)
            src.append("itself (no other configuration of this engine and processor): equals offline_e2e")
    df["cal_factor"] = cal
    df["cal_source"] = src
    df["opsum_cal_ms"] = df.opsum_ms * df.cal_factor
    return df


# --------------------------------------------------------------------------- runtime estimators
def runtime_predictions(latency: Sequence[float], prior: float, window: int, alpha: float) -> dict[str, np.ndarray]:
    """Predictions for each position i from latencies [0, i) only (``prior`` before any)."""
    x = pd.Series(np.asarray(latency, dtype=float))
    past = x.shift(1)
    med = past.rolling(window, min_periods=1).median().to_numpy(copy=True)
    mean = past.rolling(window, min_periods=1).mean().to_numpy(copy=True)
    med[0] = mean[0] = prior
    ew = np.empty(len(x))
    e = prior
    for i, v in enumerate(x.to_numpy()):
        ew[i] = e
        e = alpha * v + (1 - alpha) * e if not np.isnan(e) else v
    return {"window_median": med, "window_mean": mean, "ewma": ew}


def predictions(trace: pd.DataFrame, offline: pd.DataFrame, window: int, alpha: float) -> pd.DataFrame:
    """Long table: one row per (configuration, step, estimator) with predicted and actual latency."""
    ctx_cols = [c for c in ("t_s", "segment", "phase", "phase_kind", "load", "burst_on", "seg_start_s", "seg_end_s")
                if c in trace.columns]
    frames = []
    off = offline.set_index("config") if len(offline) else offline
    for cfg, g in trace.sort_values("step").groupby("config", sort=True):
        if cfg not in off.index:
            continue
        o = off.loc[cfg]
        prior = float(o.e2e_median_ms)
        preds = {"offline_e2e": np.full(len(g), prior), "offline_opsum": np.full(len(g), float(o.opsum_ms)),
                 "offline_opsum_cal": np.full(len(g), float(o.opsum_cal_ms))}
        preds.update(runtime_predictions(g.latency_ms.to_numpy(), prior, window, alpha))
        base = g[["config", "model", "candidate", "step", *ctx_cols, "latency_ms"]].rename(
            columns={"latency_ms": "actual_ms"}).reset_index(drop=True)
        for est in ESTIMATORS:
            frames.append(base.assign(estimator=est, family=FAMILY[est], predicted_ms=preds[est]))
    if not frames:
        return pd.DataFrame(columns=["config", "model", "candidate", "step", "estimator", "family", "predicted_ms",
                                     "actual_ms", "error_ms", "ape", "sq_error", "within10"])
    df = pd.concat(frames, ignore_index=True)
    return add_errors(df)


def add_errors(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["error_ms"] = df.predicted_ms - df.actual_ms
    df["ape"] = (df.error_ms.abs() / df.actual_ms).astype(float)
    df["sq_error"] = df.error_ms ** 2
    df["within10"] = (df.ape <= WITHIN).where(df.ape.notna())
    return df


# --------------------------------------------------------------------------- block bootstrap
def block_of(df: pd.DataFrame, block_seconds: float) -> np.ndarray:
    """Bootstrap block of each row: contiguous windows of ``block_seconds`` of scenario time
    (``t_s``; the step number where there is no time column)."""
    if "t_s" in df.columns and df["t_s"].notna().all():
        return np.floor(df["t_s"].to_numpy(float) / block_seconds).astype(int)
    return df["step"].to_numpy(int)


def _boot_index(n_blocks: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_blocks, size=(n_boot, n_blocks))


def _ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    v = values[~np.isnan(values)]
    if v.size == 0:
        return (np.nan, np.nan)
    q = (1 - confidence) / 2
    return (float(np.quantile(v, q)), float(np.quantile(v, 1 - q)))


def _block_matrix(df: pd.DataFrame, blocks: np.ndarray, cols: Sequence[str],
                  key: str) -> dict[str, dict[str, np.ndarray]]:
    """key value -> col -> per-block sums aligned on ``blocks`` (plus 'n': counts)."""
    out = {}
    pos = {b: i for i, b in enumerate(blocks)}
    for k, g in df.groupby(key, sort=False):
        idx = g["block"].map(pos).to_numpy()
        d = {"n": np.bincount(idx, minlength=len(blocks)).astype(float)}
        for c in cols:
            d[c] = np.bincount(idx, weights=g[c].to_numpy(float), minlength=len(blocks))
        out[k] = d
    return out


def _block_sums(g: pd.DataFrame, cols: Sequence[str], key: str, order: Sequence[str], n_boot: int, seed: int):
    """For each value of ``key`` in ``order`` that ``g`` has: (value, its per-block sums of
    ``cols`` (``_block_matrix``), its row count, the bootstrap's block indices, the row
    count of each resample); every value is resampled with the same blocks."""
    blocks = np.sort(g.block.unique())
    idx = _boot_index(len(blocks), n_boot, seed)
    mats = _block_matrix(g, blocks, cols, key)
    for v in [v for v in order if v in mats]:
        m = mats[v]
        yield v, m, m["n"].sum(), idx, m["n"][idx].sum(1)


def error_summary(pred: pd.DataFrame, by: Sequence[str] = ("estimator",), block_seconds: float = 3.0,
                  n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """MAPE (%), RMSE (ms), within-10% share (%) and mean signed error (%) per group, each
    with a 95% block-bootstrap interval; within a group of ``by[1:]`` every estimator is
    resampled with the same blocks."""
    rows = []
    p = pred[pred.ape.notna()].copy()
    if p.empty:
        return pd.DataFrame()
    p["block"] = block_of(p, block_seconds)
    p["w10"] = p.within10.astype(float)
    p["spe"] = p.error_ms / p.actual_ms
    by = list(by)
    outer = [c for c in by if c != "estimator"]
    groups = p.groupby(outer, sort=True) if outer else [((), p)]
    for okey, g in groups:
        okey = okey if isinstance(okey, tuple) else (okey,)
        for est, m, n, idx, nb in _block_sums(g, ["ape", "sq_error", "w10", "spe"], "estimator", ESTIMATORS, n_boot,
                                              seed):
            with np.errstate(invalid="ignore", divide="ignore"):
                mape_b = m["ape"][idx].sum(1) / nb * 100
                rmse_b = np.sqrt(m["sq_error"][idx].sum(1) / nb)
                w_b = m["w10"][idx].sum(1) / nb * 100
            mape = m["ape"].sum() / n * 100
            rmse = float(np.sqrt(m["sq_error"].sum() / n))
            w = m["w10"].sum() / n * 100
            rows.append({**dict(zip(outer, okey)), "estimator": est, "family": FAMILY[est], "n": int(n),
                         "n_blocks": int(idx.shape[1]), "mape_pct": mape, "mape_lo": _ci(mape_b)[0],
                         "mape_hi": _ci(mape_b)[1], "rmse_ms": rmse, "rmse_lo": _ci(rmse_b)[0],
                         "rmse_hi": _ci(rmse_b)[1], "within10_pct": w, "within10_lo": _ci(w_b)[0],
                         "within10_hi": _ci(w_b)[1], "bias_pct": m["spe"].sum() / n * 100})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- paired tests
def paired_tests(pred: pd.DataFrame, pairs: Sequence[tuple[str, str]] | None = None, block_seconds: float = 3.0,
                 n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Offline vs runtime on the same predictions (configuration x step): the MAPE difference
    (offline - runtime, percentage points) with a block-bootstrap CI; the paired Wilcoxon
    signed-rank test of per-prediction absolute percentage errors (two-sided, shown only), the same
    test on block means, and ``p_blocks_greater``: the one-sided block-bootstrap p of H1 "offline
    error > runtime error" (whole blocks resampled); Holm-adjusted over the pairs."""
    pairs = list(pairs or [(o, r) for r in RUNTIME for o in OFFLINE])
    p = pred[pred.ape.notna()].copy()
    p["block"] = block_of(p, block_seconds)
    wide = p.pivot_table(index=["config", "step", "block"], columns="estimator", values="ape", aggfunc="first")
    rows = []
    if wide.empty:
        return pd.DataFrame()
    block = wide.index.get_level_values("block").to_numpy()
    blocks = np.sort(np.unique(block))
    pos = np.searchsorted(blocks, block)
    idx = _boot_index(len(blocks), n_boot, seed)
    for off, rt in pairs:
        if off not in wide or rt not in wide:
            continue
        d = (wide[off] - wide[rt]).to_numpy(float)
        ok = ~np.isnan(d)
        d, bpos = d[ok], pos[ok]
        if d.size == 0:
            continue
        sums = np.bincount(bpos, weights=d, minlength=len(blocks))
        ns = np.bincount(bpos, minlength=len(blocks)).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = sums[idx].sum(1) / ns[idx].sum(1) * 100
            bmeans = sums[ns > 0] / ns[ns > 0]
        lo, hi = _ci(boot)
        p_pred = _wilcoxon(d)
        p_block = _wilcoxon(bmeans)
        # the claim's p: one-sided block bootstrap of the mean difference (the statistic of the CI), with
        # at least stats.P_RESAMPLES resamples of whole blocks: correlated predictions are never the units
        idx_p = _boot_index(len(blocks), stats.p_resamples(n_boot), seed + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot_p = sums[idx_p].sum(1) / ns[idx_p].sum(1)
        p_block_greater = stats.boot_p(boot_p, 0.0)
        rows.append(dict(offline=off, runtime=rt, n=int(d.size), n_blocks=int((ns > 0).sum()),
                         mape_offline_pct=float(np.nanmean(wide[off].to_numpy()[ok]) * 100),
                         mape_runtime_pct=float(np.nanmean(wide[rt].to_numpy()[ok]) * 100),
                         mape_diff_pp=float(d.mean() * 100), ci_lo=lo, ci_hi=hi,
                         share_runtime_better=float((d > 0).mean()), p_wilcoxon=p_pred, p_wilcoxon_blocks=p_block,
                         p_blocks_greater=p_block_greater))
    df = pd.DataFrame(rows)
    if len(df):
        df["p_holm"] = stats.holm(df.p_wilcoxon.to_numpy())
        df["p_holm_blocks"] = stats.holm(df.p_wilcoxon_blocks.to_numpy())
        df["p_holm_blocks_greater"] = stats.holm(df.p_blocks_greater.to_numpy())
    return df


def _wilcoxon(d: np.ndarray, alternative: str = "two-sided") -> float:
    d = np.asarray(d, float)
    d = d[~np.isnan(d)]
    if d.size < 2 or np.all(d == 0):
        return np.nan
    try:
        return float(st.wilcoxon(d, zero_method="wilcox", alternative=alternative).pvalue)
    except ValueError:
        return np.nan


# --------------------------------------------------------------------------- scheduler
def decisions(pred: pd.DataFrame) -> pd.DataFrame:
    """Per model, step and policy: the chosen candidate, its real latency at that step, the
    oracle's, and the regret. Only steps where every candidate of the model was measured.
    Policies: each estimator, the best single candidate in hindsight, the oracle."""
    out = []
    for model, g in pred.groupby("model", sort=True):
        actual = g[g.estimator == ESTIMATORS[0]].pivot_table(index="step", columns="candidate", values="actual_ms",
                                                             aggfunc="first")
        actual = actual.dropna()
        if actual.empty or actual.shape[1] < 1:
            continue
        cands = list(actual.columns)
        A = actual.to_numpy(float)
        steps = actual.index.to_numpy()
        best = A.argmin(1)
        oracle = A[np.arange(len(A)), best]
        ctx = g[g.estimator == ESTIMATORS[0]].drop_duplicates("step").set_index("step")
        ctx = ctx.reindex(steps)
        base = pd.DataFrame({"model": model, "step": steps, "oracle_choice": np.array(cands)[best],
                             "oracle_ms": oracle})
        for c in ("t_s", "segment", "phase", "phase_kind", "load"):
            if c in ctx.columns:
                base[c] = ctx[c].to_numpy()
        policies = {}
        for est in ESTIMATORS:
            P = g[g.estimator == est].pivot_table(index="step", columns="candidate", values="predicted_ms",
                                                  aggfunc="first").reindex(index=steps, columns=cands)
            M = P.to_numpy(float)
            M = np.where(np.isnan(M), np.inf, M)
            policies[est] = M.argmin(1)
        static = int(np.argmin(A.mean(0)))
        policies["hindsight_static"] = np.full(len(A), static)
        policies["oracle"] = best
        for pol, ch in policies.items():
            achieved = A[np.arange(len(A)), ch]
            out.append(base.assign(policy=pol, family=FAMILY.get(pol, "reference"), chosen=np.array(cands)[ch],
                                   achieved_ms=achieved, regret_ms=achieved - oracle,
                                   matches_oracle=ch == best))
    if not out:
        return pd.DataFrame(columns=["model", "step", "policy", "chosen", "achieved_ms", "oracle_ms", "regret_ms"])
    return pd.concat(out, ignore_index=True)


POLICIES = ESTIMATORS + ("hindsight_static", "oracle")


def regret_summary(dec: pd.DataFrame, block_seconds: float = 3.0, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per model (and pooled over models as 'all'): mean achieved latency, mean and total regret,
    share of steps matching the oracle, each with a block-bootstrap 95% CI (steps resampled in
    blocks, the same blocks for every policy)."""
    if dec.empty:
        return pd.DataFrame()
    d = dec.copy()
    d["block"] = block_of(d, block_seconds)
    d["match"] = d.matches_oracle.astype(float)
    models = sorted(d.model.unique())
    parts = [(m, d[d.model == m]) for m in models] + ([("all", d)] if len(models) > 1 else [])
    rows = []
    for m, g in parts:
        for pol, x, n, idx, nb in _block_sums(g, ["achieved_ms", "regret_ms", "match", "oracle_ms"], "policy", POLICIES,
                                              n_boot, seed):
            with np.errstate(invalid="ignore", divide="ignore"):
                ach_b = x["achieved_ms"][idx].sum(1) / nb
                reg_b = x["regret_ms"][idx].sum(1) / nb
                rel_b = x["regret_ms"][idx].sum(1) / x["oracle_ms"][idx].sum(1) * 100
                mat_b = x["match"][idx].sum(1) / nb * 100
            rows.append(dict(model=m, policy=pol, family=FAMILY.get(pol, "reference"), n_steps=int(n),
                             achieved_mean_ms=x["achieved_ms"].sum() / n, achieved_lo=_ci(ach_b)[0],
                             achieved_hi=_ci(ach_b)[1], regret_mean_ms=x["regret_ms"].sum() / n,
                             regret_lo=_ci(reg_b)[0], regret_hi=_ci(reg_b)[1],
                             regret_total_ms=x["regret_ms"].sum(), regret_total_lo=_ci(reg_b)[0] * n,
                             regret_total_hi=_ci(reg_b)[1] * n,
                             regret_rel_pct=x["regret_ms"].sum() / x["oracle_ms"].sum() * 100,
                             regret_rel_lo=_ci(rel_b)[0], regret_rel_hi=_ci(rel_b)[1],
                             oracle_match_pct=x["match"].sum() / n * 100, oracle_match_lo=_ci(mat_b)[0],
                             oracle_match_hi=_ci(mat_b)[1]))
    return pd.DataFrame(rows)


def regret_difference(dec: pd.DataFrame, worse: str, better: str, block_seconds: float = 3.0, n_boot: int = 1000,
                      seed: int = 0) -> dict:
    """Mean regret of ``worse`` minus that of ``better`` (ms, pooled over models), block-bootstrap CI,
    paired Wilcoxon over steps."""
    d = dec.assign(block=block_of(dec, block_seconds))
    a = d[d.policy == worse].set_index(["model", "step", "block"]).regret_ms
    b = d[d.policy == better].set_index(["model", "step", "block"]).regret_ms
    j = pd.concat([a.rename("a"), b.rename("b")], axis=1).dropna()
    if j.empty:
        return dict(effect=np.nan, ci_lo=np.nan, ci_hi=np.nan, p_value=np.nan, n=0)
    diff = (j.a - j.b).to_numpy()
    block = j.index.get_level_values("block").to_numpy()
    blocks = np.sort(np.unique(block))
    pos = np.searchsorted(blocks, block)
    idx = _boot_index(len(blocks), n_boot, seed)
    sums = np.bincount(pos, weights=diff, minlength=len(blocks))
    ns = np.bincount(pos, minlength=len(blocks)).astype(float)
    boot = sums[idx].sum(1) / ns[idx].sum(1)
    lo, hi = _ci(boot)
    total = float(j.a.sum())
    rel = (total - float(j.b.sum())) / total if total > 0 else np.nan
    return dict(effect=float(diff.mean()), ci_lo=lo, ci_hi=hi, p_value=_wilcoxon(diff), n=int(diff.size),
                share_of_worse_regret_removed=rel)


# --------------------------------------------------------------------------- contexts (C9)
def context_table(trace: pd.DataFrame, context: str = "load") -> pd.DataFrame:
    """Per model x context x candidate: steps, mean and median latency, and whether it is the
    context's fastest (by mean) and the trace's best single candidate."""
    rows = []
    for model, g in trace.groupby("model"):
        overall = g.groupby("candidate").latency_ms.mean()
        static = overall.idxmin()
        for ctx, h in g.groupby(context):
            m = h.groupby("candidate").latency_ms.agg(["mean", "median", "size"])
            best = m["mean"].idxmin()
            for cand, r in m.iterrows():
                rows.append(dict(model=model, context=ctx, candidate=cand, n=int(r["size"]), mean_ms=r["mean"],
                                 median_ms=r["median"], fastest_in_context=cand == best,
                                 best_single_overall=cand == static,
                                 slowdown_vs_fastest=r["mean"] / m["mean"].min()))
    return pd.DataFrame(rows)


def switching_gain(trace: pd.DataFrame, context: str = "load", block_seconds: float = 3.0, n_boot: int = 1000,
                   seed: int = 0, material: float | None = None) -> dict:
    """How much slower the best single candidate (in hindsight) is than picking each context's
    fastest candidate: sum over contexts of steps x mean latency, static / per-context - 1,
    pooled over models; block-bootstrap CI (the best choices are re-made in each resample) and,
    given ``material``, the one-sided bootstrap p of H1 "gain > material"."""
    t = trace.dropna(subset=["latency_ms"]).copy()
    if t.empty:
        return dict(effect=np.nan, ci_lo=np.nan, ci_hi=np.nan, n=0, contexts=0, contexts_static_not_best=0,
                    p_value=np.nan)
    t["block"] = block_of(t, block_seconds)
    blocks = np.sort(t.block.unique())
    pos = {b: i for i, b in enumerate(blocks)}
    idx = _boot_index(len(blocks), n_boot, seed)
    static_b = np.zeros(n_boot)
    switch_b = np.zeros(n_boot)
    static_pt = switch_pt = 0.0
    n_ctx = n_not_best = 0
    for model, g in t.groupby("model"):
        cands = sorted(g.candidate.unique())
        ctxs = sorted(g[context].astype(str).unique())
        S = np.zeros((len(blocks), len(ctxs), len(cands)))
        N = np.zeros_like(S)
        bi = g.block.map(pos).to_numpy()
        ci = pd.Categorical(g[context].astype(str), categories=ctxs).codes
        ki = pd.Categorical(g.candidate, categories=cands).codes
        np.add.at(S, (bi, ci, ki), g.latency_ms.to_numpy(float))
        np.add.at(N, (bi, ci, ki), 1.0)

        def costs(Ssum, Nsum):
            with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # contexts absent from a resample
                mean = Ssum / Nsum                              # (..., ctx, cand)
                steps = Nsum.max(-1)                            # steps per context
                per_cand_total = np.nansum(mean * steps[..., None], axis=-2)   # (..., cand)
                static = np.nanmin(np.where(np.isnan(mean).all(-2), np.inf, per_cand_total), axis=-1)
                switch = np.nansum(np.nanmin(mean, axis=-1) * steps, axis=-1)
            return static, switch, mean

        s_pt, w_pt, mean_pt = costs(S.sum(0), N.sum(0))
        static_pt += s_pt
        switch_pt += w_pt
        best_static = int(np.argmin(np.nansum(mean_pt * N.sum(0).max(-1)[:, None], axis=0)))
        fastest = np.nanargmin(mean_pt, axis=-1)
        n_ctx += len(ctxs)
        n_not_best += int((fastest != best_static).sum())
        Sb = S[idx].sum(1)                                      # (boot, ctx, cand)
        Nb = N[idx].sum(1)
        s_b, w_b, _ = costs(Sb, Nb)
        static_b += s_b
        switch_b += w_b
    eff = static_pt / switch_pt - 1
    gain_b = static_b / switch_b - 1
    lo, hi = _ci(gain_b)
    out = dict(effect=float(eff), ci_lo=lo, ci_hi=hi, n=int(len(t)), contexts=n_ctx,
               contexts_static_not_best=n_not_best, n_blocks=int(len(blocks)))
    if material is not None:
        out["p_value"] = stats.boot_p(gain_b, material)
    return out
