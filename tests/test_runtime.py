"""The adaptive runtime (``study.runtime``) and its stage (``study.adaptive_runtime``): the online
estimators against finding 4's, the planner (exploration bound, re-planning, moving within its
bound), fallback and placement, the split predictor, claim C11 on synthetic true / false /
borderline data, a real competitor appearing on the candidate in use, and a tiny end-to-end run."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study import adaptive_runtime as F
from study import claims as C
from study import estimators as E
from study.runtime import AdaptiveRuntime, Candidate, OnlineEstimate, Planner, PlannerSettings, parse, place
from study.runtime import split as SP

ROOT = Path(__file__).resolve().parents[1]
HAS_MODELS = (ROOT / "data" / "models" / "manifest.json").exists()
needs_models = pytest.mark.skipif(not HAS_MODELS, reason="needs the models stage's output (data/models)")


# --------------------------------------------------------------------------- estimators
def test_online_estimates_equal_finding4_estimators():
    rng = np.random.default_rng(0)
    x = rng.lognormal(2.0, 0.3, 200)
    want = E.runtime_predictions(x, prior=7.0, window=8, alpha=0.3)
    est = OnlineEstimate(prior=7.0, window=8, alpha=0.3)
    for i, v in enumerate(x):
        for k in ("window_median", "window_mean", "ewma"):
            assert est.value(k) == pytest.approx(want[k][i]), (k, i)
        est.observe(v, i)


def test_window_p90_is_numpy_s_percentile():
    x = np.random.default_rng(2).random(30)
    e = OnlineEstimate(window=16)
    for v in x:
        e.observe(v)
    assert e.value("window_p90") == pytest.approx(np.percentile(x[-16:], 90))


def test_estimate_reset_and_age():
    e = OnlineEstimate(window=4)
    assert math.isnan(e.value()) and e.age(5) == 6
    e.observe(10.0, 3)
    assert e.value() == 10.0 and e.age(5) == 2
    e.reset(20.0)
    assert e.value("window_median") == 20.0 and e.n == 0


# --------------------------------------------------------------------------- planner
def _drive(planner: Planner, latency, n: int) -> list:
    """Serve ``n`` synthetic requests: ``latency(candidate, i)`` is the request's latency."""
    out = []
    for i in range(n):
        d = planner.choose()
        planner.observe(d, latency(d.candidate, i))
        out.append(d)
    return out


def test_planner_exploits_the_fastest_and_bounds_exploration():
    s = PlannerSettings(probe_every=25)
    p = Planner(["a", "b", "c"], s)
    base = {"a": 10.0, "b": 20.0, "c": 30.0}
    rng = np.random.default_rng(1)
    ds = _drive(p, lambda c, i: base[c] * rng.uniform(0.97, 1.03), 500)
    assert [d.why for d in ds[:3]] == ["warmup"] * 3
    later = ds[3:]
    probes = sum(d.why == "probe" for d in later)
    assert probes <= len(later) / s.probe_every + 1
    assert not any(d.why == "replan" for d in later)          # stationary: no re-plan
    assert sum(d.candidate == "a" for d in later) >= len(later) - probes


def test_planner_moves_away_within_its_bound_after_a_change():
    p = Planner(["a", "b", "c"], PlannerSettings(probe_every=1000))
    change = 200

    def lat(c, i):
        if c == "a":
            return 10.0 if i < change else 40.0    # a competitor arrives on a's cores
        return {"b": 14.0, "c": 25.0}[c]
    ds = _drive(p, lat, 400)
    assert ds[change - 1].candidate == "a"
    moved = next(i for i in range(change, 400) if ds[i].why == "exploit" and ds[i].candidate == "b")
    assert moved - change <= p.move_bound(), (moved - change, p.move_bound())
    assert all(d.candidate == "b" for d in ds[moved:] if d.why == "exploit")
    assert [e["type"] for e in p.events] == ["replan"]


def test_planner_comes_back_when_the_competitor_leaves():
    p = Planner(["a", "b"], PlannerSettings(probe_every=20))

    def lat(c, i):
        if c == "a":
            return 40.0 if 100 <= i < 300 else 10.0
        return 14.0
    ds = _drive(p, lat, 500)
    assert ds[250].candidate == "b" or ds[250].why != "exploit"
    assert all(d.candidate == "a" for d in ds[400:] if d.why == "exploit")


def test_runtime_falls_back_when_a_candidate_fails():
    class Boom:
        def run(self):
            raise RuntimeError("delegate refused an operator")

    class Ok:
        def run(self):
            pass

    t = iter(range(0, 10**9, 1000))
    rt = AdaptiveRuntime([Candidate("x", Boom(), None), Candidate("y", Ok(), None)],
                         Planner(["x", "y"]), clock=lambda: next(t))
    s = rt.serve()
    assert s.candidate == "y" and "x: RuntimeError" in s.fallback and rt.planner.failed
    assert all(rt.serve().candidate == "y" for _ in range(5))


def test_parse_and_place():
    assert parse("litert/cpu/g0")["core_group"] == "g0"
    assert parse("litert/cpu/g0#int8_dynamic")["variant"] == "int8_dynamic"
    assert parse("coexec/cpu+cpu/g0+g1@0.25")["ratio"] == 0.25
    for bad in ("litert/cpu", "coexec/cpu+cpu/g0+g1", "litert/cpu/g0@0.5", "coexec/cpu+cpu/g0+g1@2"):
        with pytest.raises(ValueError):
            parse(bad)
    alt, text = place("litert/gpu/all", "no GPU", ["litert/cpu/g0", "litert/cpu/all"])
    assert alt == "litert/cpu/all" and "CPU fallback" in text
    alt, text = place("torch/gpu/all", "no GPU", ["litert/cpu/all"])
    assert alt is None and "left out" in text


# --------------------------------------------------------------------------- split predictor
def _layers(ta, tb, n=10, t_in=0.05):
    return [SP.LayerModel(f"l{i}", 64, ta, tb, t_in, 0.01, 0.02) for i in range(n)]


def test_split_model_says_no_split_when_overhead_dominates():
    m = SP.SplitModel(_layers(1.0, 1.0), solo_ms=2.0, step_overhead_ms=3.0)
    r, t = m.best()
    assert r == 0.0 and t == pytest.approx(12.0)


def test_split_model_balances_without_overhead():
    m = SP.SplitModel(_layers(1.0, 1.0, t_in=0.0), solo_ms=0.0, step_overhead_ms=0.0)
    r, t = m.best()
    assert 0.4 <= r <= 0.6 and t < 0.6 * m.predict(0.0)


def test_calibrate_measures_the_overhead_per_split_layer():
    m = SP.SplitModel(_layers(1.0, 1.0), solo_ms=2.0)
    base = m.predict(0.5, overhead=False)
    SP.calibrate(m, 0.5, [base + 10 * 0.7] * 5)
    assert m.step_overhead_ms == pytest.approx(0.7)
    assert m.calibration["split_layers"] == 10


# --------------------------------------------------------------------------- claim C11
def _wide(rng, runs, steps, adaptive_factor, statics=(10.0, 12.0), noise=0.02):
    rows = []
    for r in range(runs):
        for s in range(steps):
            row = {"run_id": f"r{r}", "step": s, "t_s": s * 0.05}
            for i, base in enumerate(statics):
                row[f"static:c{i}"] = base * rng.lognormal(0, noise)
            row[F.ADAPTIVE] = statics[0] * adaptive_factor * rng.lognormal(0, noise)
            rows.append(row)
    return pd.DataFrame(rows)


def _c11(factors: dict[str, float], seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    wides = {c: _wide(rng, 3, 200, f) for c, f in factors.items()}
    bars = {c: 1.0 if c == F.DYNAMIC else 1.02 for c in wides}
    est, reps = F.c11_resamples(wides, bars, 1.0, 10000, seed)
    return F.claims(est, reps, bars, {"stationary_margin": 0.02, "block_seconds": 1.0}, "synthetic", 3)


@pytest.mark.parametrize("factors, verdict", [
    ({"none": 1.0, "cpu1@g0": 1.0, F.DYNAMIC: 0.85}, "reproduced"),      # true
    ({"none": 1.0, "cpu1@g0": 1.15, F.DYNAMIC: 0.85}, "contradicted"),   # false: 15% worse when nothing changes
    ({"none": 1.0, "cpu1@g0": 1.02, F.DYNAMIC: 0.85}, "inconclusive"),   # borderline: at the bar
])
def test_c11_true_false_borderline(factors, verdict):
    row = _c11(factors)
    assert row.verdict.iloc[0] == verdict, row.reason.iloc[0]
    # the registry decides it the same way (one-sided p, Holm over the decided claims)
    out = C.evaluate({F.FINDING: row})
    got = out[out.claim == "C11"].iloc[0]
    assert got.verdict == verdict and got.form == "paper"


def test_c11_needs_both_kinds_of_condition():
    row = _c11({"none": 1.0})
    assert row.verdict.iloc[0] == "not measurable"


# --------------------------------------------------------------------------- a real competitor
@needs_models
def test_runtime_moves_away_when_a_competitor_appears_on_its_cores():
    """Two candidates on disjoint cores; CPU competitors start on the cores of the candidate in
    use, mid-stream; where the other candidate is then measurably faster (a control measures both
    under the competitors), the runtime serves there within a bounded number of requests. On a
    host whose cores share execution resources (SMT siblings, a VM's vCPUs) the competitors may
    slow both candidates alike: then there is nowhere better to go, and the test says so."""
    import statistics
    import time

    from study.common import context
    from study.competitors import CompetitorPool
    from study.measure import current_affinity, set_affinity

    harness = dict(warmup=2, min_samples=3, max_samples=5, max_seconds=0.5, rel_ci_halfwidth=0.5, block_size=3,
                   below_floors=True)
    ctx = context(F.FINDING, dict(device="local", profile="quick", seed=1, harness=harness))
    groups = ctx.device.core_groups()
    if not {"g0", "g1"} <= set(groups):
        pytest.skip("needs two disjoint core groups")
    original = current_affinity()
    cands = [F._open(ctx, "mobilenet_v2", c) for c in ("litert/cpu/g0", "litert/cpu/g1")]
    by = {c.name: c for c in cands}

    def median_ms(c, n=9):
        out = []
        for _ in range(n):
            a = time.perf_counter()
            c.run()
            out.append((time.perf_counter() - a) * 1e3)
        return statistics.median(out)
    try:
        planner = Planner([c.name for c in cands], PlannerSettings(probe_every=1000))
        rt = AdaptiveRuntime(cands, planner)
        for _ in range(40):
            rt.serve()
        in_use = planner.current
        other = next(c.name for c in cands if c.name != in_use)
        with CompetitorPool(device=ctx.device) as pool:
            pool.start("cpu", 2, groups[in_use.rsplit("/", 1)[1]])
            served = [rt.serve() for _ in range(80)]
            control = {name: median_ms(c) for name, c in by.items()}     # both, under the competitors
        if not control[other] < 0.8 * control[in_use]:
            pytest.skip(f"no refuge on this host: under the competitors {in_use} {control[in_use]:.1f} ms, "
                        f"{other} {control[other]:.1f} ms (the cores share execution resources)")
        moved = next((i for i, s in enumerate(served) if s.candidate == other and s.why == "exploit"), None)
        bound = 2 * planner.move_bound()
        assert moved is not None and moved <= bound, (moved, bound, [(s.candidate, s.why, round(s.latency_ms, 1))
                                                                      for s in served])
        assert sum(s.candidate == other for s in served[moved:]) >= 0.8 * len(served[moved:])
    finally:
        for c in cands:
            c.close()
        set_affinity(original)


# --------------------------------------------------------------------------- the stage, tiny
@needs_models
def test_stage_end_to_end_tiny(tmp_path):
    from study.common import context
    from study.config import check_section

    harness = dict(warmup=1, min_samples=3, max_samples=5, max_seconds=0.5, rel_ci_halfwidth=0.5, block_size=3,
                   below_floors=True)
    own = check_section(F.FINDING, dict(candidates=["litert/cpu/g0", "litert/cpu/all", "torch/gpu/all"], runs=1,
                                        stationary=["none"], stationary_seconds=1.5, scenario_seconds=3.0,
                                        phase_seconds=[1.0, 1.5], phase_kinds=["idle", "cpu"],
                                        offline_requests=3, n_boot=200, split_models=[]), F.PARAMS)
    ctx = context(F.FINDING, dict(device="local", profile="quick", seed=3, harness=harness, **own))
    ctx.data_root, ctx.figures_root = tmp_path / "data", tmp_path / "figures"
    res = F.run(ctx)
    data = pd.read_parquet(tmp_path / "data" / "local" / f"{F.FINDING}.parquet")
    req = data[data.part == "request"]
    assert set(req.policy) == {"static:litert/cpu/g0", "static:litert/cpu/all", F.ADAPTIVE}
    assert set(req.condition) == {"none", F.DYNAMIC}
    t = res["tables"]
    assert {F.HINDSIGHT, F.ORACLE, F.OFFLINE, F.ADAPTIVE} <= set(t["summary"].policy)
    assert t["claims"].claim.iloc[0] == "C11" and t["claims"].verdict.iloc[0] in C.VERDICTS
    assert "torch/gpu/all" in set(t["absent"].candidate)
    assert t["energy"].energy_source.iloc[0]                   # a source, or why there is none
    assert (tmp_path / "figures" / "local" / F.FINDING).is_dir()
