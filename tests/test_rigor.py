import numpy as np
import pandas as pd

from study import rigor
from study.devices import get_device


def synthetic_runs(between_sd, within_sd, runs=6, n=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(runs):
        mu = np.log(10.0) + rng.normal(0, between_sd)
        for i in range(n):
            rows.append(dict(model="m", engine="e", processor="cpu", core_group="all", run_id=f"r{r}", block=i // 10,
                             latency_ms=float(np.exp(mu + rng.normal(0, within_sd)))))
    return pd.DataFrame(rows)


def test_variance_components_recover_the_split():
    df = synthetic_runs(0.05, 0.01, runs=30, n=50)
    vc = rigor.variance_components(df, ["model", "engine", "processor", "core_group"], target=0.02, run_cost=20)
    row = vc.iloc[0]
    assert 0.03 < row.between_cv < 0.07 and 0.008 < row.within_cv < 0.012
    assert row.icc > 0.9 and row.p_between < 1e-6
    # dominant between-run variance: more runs, few samples per run
    assert row.plan_runs > 10 and row.plan_samples_per_run <= 10


def test_variance_components_without_between_run_effect():
    df = synthetic_runs(0.0, 0.02, runs=5, n=40)
    row = rigor.variance_components(df, ["model"], target=0.02, run_cost=20).iloc[0]
    assert row.between_cv < 0.01 and row.p_between > 0.001


def test_coverage_and_rerun_interval_on_drifting_blocks():
    rng = np.random.default_rng(3)
    rows = []
    for run in ("first", "second"):
        for b in range(6):
            drift = rng.normal(0, 0.03)   # block-to-block drift the iid CI ignores
            for i in range(20):
                rows.append(dict(model="m", run=run, block=b, latency_ms=float(np.exp(np.log(5) + drift + rng.normal(0, 0.005)))))
    df = pd.DataFrame(rows)
    cov = rigor.coverage(df, ["model"], "first", "second")
    r = cov.iloc[0]
    assert r.rerun_hi - r.rerun_lo > r.ci_hi - r.ci_lo   # the rerun interval is wider
    med, lo, hi = rigor.rerun_interval(df[df.run == "first"].latency_ms.to_numpy(), df[df.run == "first"].block.to_numpy())
    assert lo < med < hi


def test_burst_vs_sustained_detects_throttling():
    t = np.linspace(0, 20, 400)
    lat = 10 + 0.2 * t + np.random.default_rng(0).normal(0, 0.05, t.size)  # latency creeps up
    inf = pd.DataFrame(dict(model="m", engine="e", processor="cpu", core_group="all", kind="inference", t_s=t,
                            latency_ms=lat))
    ts = np.arange(0, 20, 1.0)
    sen = pd.DataFrame(dict(model="m", engine="e", processor="cpu", core_group="all", kind="sensors", t_s=ts,
                            latency_ms=np.nan, cpu_mhz_mean=3000 - 20 * ts, gpu_sm_mhz=np.nan, temp_max_c=50 + ts,
                            gpu_temp_c=np.nan))
    out = rigor.burst_vs_sustained(pd.concat([inf, sen]), burst_seconds=2.0)
    r = out.iloc[0]
    assert r.verdict.startswith("throttling") and r.burst_sustained_differ and r.sustained_over_burst > 1.2
    flat = inf.assign(latency_ms=10 + np.random.default_rng(1).normal(0, 0.05, t.size))
    r2 = rigor.burst_vs_sustained(flat, burst_seconds=2.0).iloc[0]
    assert r2.verdict == "no significant trend" and not r2.burst_sustained_differ


def test_methods_table_covers_every_practice():
    df = rigor.methods_table(get_device("local"))
    practices = set(df.practice)
    for p in ("core placement", "clocks: record", "heat", "repetitions", "order", "reporting", "delegation",
              "per-operator time", "GPU timing"):
        assert p in practices
    assert df.how.str.len().min() > 10
    assert set(df.status) <= {"applied", "not applicable", "unavailable", "applied; readings unavailable"}


def test_between_run_spread_makes_rerun_intervals_hold():
    """Runs shifted by a run effect (sd 3%): intervals without it miss reruns, the
    prediction interval with the device's between-run spread holds in >= 90%."""
    rng = np.random.default_rng(7)
    rows = []
    for cfg in range(40):
        base = np.log(5 + cfg)
        for run in ("first", "second"):
            effect = rng.normal(0, 0.03)
            for b in range(4):
                for i in range(10):
                    rows.append(dict(model=f"m{cfg}", run=run, block=b,
                                     latency_ms=float(np.exp(base + effect + rng.normal(0, 0.01)))))
    cov = rigor.coverage(pd.DataFrame(rows), ["model"], "first", "second", between_cv=0.03)
    assert cov.inside_ci.mean() < 0.5
    assert cov.inside_pred.mean() >= 0.9
    assert (cov.pred_hi - cov.pred_lo > cov.rerun_hi - cov.rerun_lo).all()
