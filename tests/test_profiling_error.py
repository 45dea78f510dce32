"""Finding 4 (profiling error): schedule, load switching, trace loop, estimators, decisions,
claims, and a small end-to-end run on the CPU (plus a CUDA run where a GPU exists)."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import alive, has_cuda, has_models, needs_models, wait_gone
from study.paths import ROOT
from study import estimators as E
from study import profiling_error as F
from study import scenario as S
from study.config import ParamError, resolve

PARAMS = ROOT / "params.yaml"
HAS_MODELS = has_models()


# --------------------------------------------------------------------------- schedule
def test_schedule_is_reproducible_contiguous_and_covers_every_kind():
    kw = dict(phase_s=(2.0, 4.0), burst_s=(0.2, 0.5), cpu_n=(1, 3), groups=("g0", "g1", "all"))
    a = S.make_schedule(60, [7, 0], S.PHASE_KINDS, **kw)
    b = S.make_schedule(60, [7, 0], S.PHASE_KINDS, **kw)
    c = S.make_schedule(60, [7, 1], S.PHASE_KINDS, **kw)
    assert a == b
    assert [s.as_row() for s in a] != [s.as_row() for s in c]
    assert a[0].start_s == 0 and abs(a[-1].end_s - 60) < 1e-9
    for s0, s1 in zip(a, a[1:]):
        assert abs(s0.end_s - s1.start_s) < 1e-9 and s1.index == s0.index + 1 and s1.phase >= s0.phase
    # every kind once per cycle: the first five phases hold each kind exactly once
    first = []
    for s in a:
        if s.phase not in [p for p, _ in first]:
            first.append((s.phase, s.kind))
    assert sorted(k for _, k in first[:5]) == sorted(S.PHASE_KINDS)
    for s in a:
        c = s.counts()
        if s.kind == "idle":
            assert s.load == () and s.label == "none"
        elif s.kind in ("cpu", "memory"):
            assert c[s.kind] in (1, 2, 3) and s.load[0][1] in ("g0", "g1", "all")
        elif s.kind == "gpu":
            assert c["gpu"] == 1
        else:
            last = [x for x in a if x.phase == s.phase][-1]
            assert s.end_s - s.start_s <= 0.5 + 1e-9 and (s is last or s.end_s - s.start_s >= 0.2 - 1e-9)
    bursts = [s for s in a if s.kind == "burst"]
    for ph in {s.phase for s in bursts}:
        segs = [s for s in bursts if s.phase == ph]
        assert segs[0].burst_on is True
        assert [s.burst_on for s in segs] == [i % 2 == 0 for i in range(len(segs))]
        assert all((s.load != ()) == s.burst_on for s in segs)
    need = S.competitor_needs(a)
    for s in a:
        for k, g, n in s.load:
            assert need[(k, g)] >= n


def test_schedule_without_usable_kinds_is_refused():
    with pytest.raises(ValueError):
        S.make_schedule(10, 0, [])
    with pytest.raises(ValueError):
        S.make_schedule(10, 0, ["cpu"], groups=())


# --------------------------------------------------------------------------- load switching
class FakePool:
    def __init__(self):
        self.next = 100
        self.started = []

    def start(self, kind, n, cores):
        pids = list(range(self.next, self.next + n))
        self.next += n
        self.started.append((kind, n, cores, pids))
        return pids


def test_load_controller_runs_exactly_the_segments_load():
    sent = []
    pool = FakePool()
    ctl = S.LoadController(pool, {"g0": [0], "all": [0, 1]}.get, send=lambda pid, sig: sent.append((pid, sig)))
    ctl.prepare({("cpu", "g0"): 2, ("memory", "all"): 1, ("gpu", "all"): 1})
    assert {(k, n, tuple(c) if c else None) for k, n, c, _ in pool.started} == \
        {("cpu", 2, (0,)), ("memory", 1, (0, 1)), ("gpu", 1, None)}
    assert {p for p, s in sent} == {100, 101, 102, 103} and all(s == signal.SIGSTOP for _, s in sent)
    sent.clear()
    cpu = ctl.pids[("cpu", "g0")]
    on = ctl.apply([("cpu", "g0", 1)])
    assert on == cpu[:1] and sent == [(cpu[0], signal.SIGCONT)]
    sent.clear()
    on = ctl.apply([("cpu", "g0", 2), ("memory", "all", 1)])
    assert set(on) == set(cpu) | set(ctl.pids[("memory", "all")])
    assert all(s == signal.SIGCONT for _, s in sent) and len(sent) == 2
    sent.clear()
    assert ctl.apply([]) == [] and sorted(p for p, s in sent if s == signal.SIGSTOP) == sorted(on)
    with pytest.raises(RuntimeError, match="only 2"):
        ctl.apply([("cpu", "g0", 3)])
    sent.clear()
    ctl.resume_all()
    assert sorted(p for p, s in sent if s == signal.SIGCONT) == [100, 101, 102, 103]


def test_paused_competitors_do_no_work_and_are_ended():
    from study.competitors import CompetitorPool

    core = sorted(os.sched_getaffinity(0))[-1:]
    with CompetitorPool() as pool:
        ctl = S.LoadController(pool, lambda g: core)
        try:
            ctl.prepare({("cpu", "g"): 1})
            (pid,) = ctl.pids[("cpu", "g")]
            time.sleep(0.1)
            t0 = pool.cpu_seconds()
            time.sleep(0.4)
            assert pool.cpu_seconds() - t0 < 0.05        # paused: SIGSTOP holds it
            ctl.apply([("cpu", "g", 1)])
            t0 = pool.cpu_seconds()
            time.sleep(0.4)
            assert pool.cpu_seconds() - t0 > 0.05        # running
            ctl.apply([])
        finally:
            ctl.resume_all()
    assert wait_gone([pid], 3.0) == [] and not alive(pid)


# --------------------------------------------------------------------------- trace loop
class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t

    def advance(self, ms):
        self.t += int(ms * 1e6)


class FakeSession:
    """Latency = base, x3 while a CPU competitor is on the session's group."""

    def __init__(self, clock, state, group, base, fail_at=None):
        self.clock, self.state, self.group, self.base, self.fail_at, self.n = clock, state, group, base, fail_at, 0

    def run(self):
        self.n += 1
        if self.fail_at is not None and self.n >= self.fail_at:
            raise RuntimeError("device lost")
        slow = any(k == "cpu" and g in (self.group, "all") for k, g, _ in self.state["load"])
        self.clock.advance(self.base * (3 if slow else 1))


class ListLog:
    def __init__(self):
        self.recs = []

    def append(self, r):
        self.recs.append(r)


def _fake_trace(seconds=20.0, fail_at=None):
    clock = Clock()
    state = {"load": ()}
    sched = S.make_schedule(seconds, [1, 2], ["idle", "cpu", "burst"], phase_s=(3, 5), burst_s=(0.5, 1.0),
                            cpu_n=(1, 1), groups=("g0", "g1"))
    cfgs = [S.TraceConfig(f"m | {g}", {"model": "m", "candidate": g}, FakeSession(clock, state, g, base,
                                                                                  fail_at if g == "g1" else None))
            for g, base in (("g0", 10.0), ("g1", 12.0))]

    def apply(seg):
        state["load"] = seg.load
        return []

    reads = []
    log = ListLog()
    rows, sens = S.run_trace(cfgs, sched, apply_load=apply, log=log, order_seed=3,
                             read_sensors=lambda: reads.append(clock.t) or {"cpu_freq": {"mhz": {"0": 1000.0}}},
                             sensor_interval_s=2.0, clock=clock)
    return sched, cfgs, pd.DataFrame(rows), sens, log


def test_run_trace_round_robin_with_context_and_sensors():
    sched, cfgs, df, sens, log = _fake_trace()
    per_step = df.groupby("step").candidate.apply(sorted)
    assert (per_step.map(tuple) == ("g0", "g1")).all()            # every step runs every candidate
    firsts = df[df.pos == 0].candidate
    assert firsts.nunique() == 2                                    # the order is drawn per step
    # latency reflects the load of the segment the step ran in
    slow = df.apply(lambda r: any(k == "cpu" and g == r.candidate for k, g, _ in
                                  sched[int(r.segment)].load), axis=1)
    base = df.candidate.map({"g0": 10.0, "g1": 12.0})
    assert slow.any() and (~slow).any()
    assert np.allclose(df.latency_ms[slow], 3 * base[slow]) and np.allclose(df.latency_ms[~slow], base[~slow])
    assert df.t_s.is_monotonic_increasing and df.t_s.max() < 20 + 0.1
    assert {"segment", "phase", "phase_kind", "load", "burst_on", "n_cpu_comp"} <= set(df.columns)
    phases = {s.phase for s in sched}
    assert {r["why"] for r in sens} == {"phase change", "interval"}
    assert len([r for r in sens if r["why"] == "phase change"]) == len(phases)
    types = [r["type"] for r in log.recs]
    assert types.count("inference") == len(df) and types.count("segment") >= len(phases)


def test_a_failing_configuration_leaves_the_trace_and_the_others_go_on():
    _, cfgs, df, _, log = _fake_trace(fail_at=30)
    errs = [r for r in log.recs if r["type"] == "error"]
    assert len(errs) == 1 and "device lost" in errs[0]["reason"]
    assert cfgs[1].error and cfgs[0].error is None
    assert (df.candidate == "g1").sum() == 29 and df[df.candidate == "g0"].step.max() > 100


# --------------------------------------------------------------------------- estimators
def test_runtime_predictions_use_only_the_past():
    x = np.array([10, 12, 11, 30, 31, 29, 30, 10.0])
    p = E.runtime_predictions(x, prior=5.0, window=3, alpha=0.5)
    assert p["window_median"][0] == 5 and p["window_median"][1] == 10 and p["window_median"][4] == 12
    assert p["window_mean"][3] == pytest.approx(11) and p["window_mean"][2] == pytest.approx(11)
    assert p["ewma"][0] == 5 and p["ewma"][1] == pytest.approx(7.5) and p["ewma"][2] == pytest.approx(9.75)
    for i in range(len(x)):
        y = x.copy()
        y[i:] = 1000.0                     # change the present and the future
        q = E.runtime_predictions(y, prior=5.0, window=3, alpha=0.5)
        for k in p:
            assert np.allclose(p[k][: i + 1], q[k][: i + 1]), (k, i)


def test_offline_table_calibrates_leave_one_out():
    off = pd.DataFrame([dict(config=c, model="m", candidate=c, engine=e, processor=pr, latency_ms=v)
                        for c, e, pr, v in (("a", "litert", "cpu", 5.0), ("b", "litert", "cpu", 3.0),
                                            ("c", "litert", "cpu", 4.0), ("d", "torch", "gpu", 2.0))
                        for _ in range(9)])
    ops = pd.DataFrame([dict(config=c, model="m", candidate=c, engine=e, processor=pr, time_ms=t, method="slice")
                        for c, e, pr, t in (("a", "litert", "cpu", 10.0), ("b", "litert", "cpu", 3.0),
                                            ("c", "litert", "cpu", 8.0), ("d", "torch", "gpu", 1.0))
                        for _ in range(2)])
    t = E.offline_table(off, ops).set_index("config")
    assert t.loc["a", "e2e_median_ms"] == 5 and t.loc["a", "opsum_ms"] == 20 and t.loc["a", "n_ops"] == 2
    ratios = {"a": 5 / 20, "b": 3 / 6, "c": 4 / 16}
    assert t.loc["a", "cal_factor"] == pytest.approx(np.median([ratios["b"], ratios["c"]]))
    assert t.loc["b", "opsum_cal_ms"] == pytest.approx(6 * np.median([ratios["a"], ratios["c"]]))
    assert t.loc["d", "opsum_cal_ms"] == pytest.approx(2.0) and "itself" in t.loc["d", "cal_source"]


def test_error_summary_matches_hand_computation():
    pred = E.add_errors(pd.DataFrame(dict(config="m | a", model="m", candidate="a", step=[0, 1, 2, 3],
                                          t_s=[0.0, 1.0, 2.0, 3.0], estimator="offline_e2e", family="offline",
                                          predicted_ms=[10, 10, 10, 10.0], actual_ms=[10, 20, 9.5, 5.0])))
    s = E.error_summary(pred, block_seconds=1.0, n_boot=200).iloc[0]
    apes = np.array([0, 0.5, 0.5 / 9.5, 1.0])
    assert s.mape_pct == pytest.approx(apes.mean() * 100)
    assert s.rmse_ms == pytest.approx(np.sqrt(np.mean([0, 100, 0.25, 25])))
    assert s.within10_pct == pytest.approx(50) and s.n == 4 and s.n_blocks == 4
    assert s.mape_lo <= s.mape_pct <= s.mape_hi


def synthetic_trace(steps=600, shift=True, seed=0, dt=0.05):
    """Two candidates; from the second third on, a competitor slows 'a' to 3x (if ``shift``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(steps):
        loaded = shift and steps // 3 <= s < 2 * steps // 3
        for cand, base in (("a", 10.0), ("b", 14.0)):
            lat = base * (3.0 if loaded and cand == "a" else 1.0) * float(np.exp(rng.normal(0, 0.03)))
            rows.append(dict(part="scenario", model="m", candidate=cand, config=f"m | {cand}", engine="litert",
                             processor="cpu", core_group=cand, step=s, pos=0, t_s=s * dt, latency_ms=lat,
                             segment=int(loaded), phase=int(loaded), phase_kind="cpu" if loaded else "idle",
                             load="cpu1@a" if loaded else "none", burst_on=None, seg_start_s=0.0, seg_end_s=1.0))
    for cand, base in (("a", 10.0), ("b", 14.0)):
        for i in range(20):
            rows.append(dict(part="offline", model="m", candidate=cand, config=f"m | {cand}", engine="litert",
                             processor="cpu", core_group=cand, latency_ms=base * float(np.exp(rng.normal(0, 0.03)))))
        for i in range(5):
            rows.append(dict(part="op_time", model="m", candidate=cand, config=f"m | {cand}", engine="litert",
                             processor="cpu", core_group=cand, op_index=i, time_ms=base / 4, method="slice"))
    rows.append(dict(part="absent", model="m", candidate="torch/gpu/all", config="m | torch/gpu/all",
                     reason="no GPU usable: test"))
    return F.tidy([pd.DataFrame(rows)])


def _pred(data, window=8, alpha=0.3):
    off = E.offline_table(data[data.part == "offline"], data[data.part == "op_time"])
    return E.predictions(data[data.part == "scenario"], off, window, alpha)


def test_runtime_beats_offline_after_a_regime_shift_and_not_when_stationary():
    pred = _pred(synthetic_trace(shift=True))
    t = E.paired_tests(pred, block_seconds=1.0, n_boot=300).set_index(["offline", "runtime"])
    r = t.loc[("offline_e2e", "ewma")]
    assert r.mape_diff_pp > 5 and r.ci_lo > 0 and r.p_holm < 0.05
    dec = E.decisions(pred)
    reg = E.regret_summary(dec, block_seconds=1.0, n_boot=300).set_index("policy")
    assert reg.loc["offline_e2e", "regret_mean_ms"] > 3 * reg.loc["ewma", "regret_mean_ms"]
    assert reg.loc["oracle", "regret_mean_ms"] == 0 and reg.loc["oracle", "oracle_match_pct"] == 100
    d = E.regret_difference(dec, "offline_e2e", "ewma", block_seconds=1.0, n_boot=300)
    assert d["ci_lo"] > 0
    # stationary: the offline profile is as good as the runtime one (no CI above 0)
    pred0 = _pred(synthetic_trace(shift=False))
    t0 = E.paired_tests(pred0, block_seconds=1.0, n_boot=300).set_index(["offline", "runtime"])
    r0 = t0.loc[("offline_e2e", "ewma")]
    assert abs(r0.mape_diff_pp) < 2 and not (r0.ci_lo > 0 and r0.p_holm < 0.05)


def test_decisions_follow_the_predictions():
    rows = []
    for s, (a, b) in enumerate([(10, 20), (30, 20), (10, 5)]):
        for cand, act, est_pred in (("a", a, 1.0), ("b", b, 2.0)):
            rows.append(dict(config=f"m | {cand}", model="m", candidate=cand, step=s, t_s=float(s),
                             estimator="offline_e2e", family="offline", predicted_ms=est_pred, actual_ms=act))
    pred = pd.DataFrame(rows)
    pred = pd.concat([pred] + [pred.assign(estimator=e) for e in E.ESTIMATORS[1:]], ignore_index=True)
    dec = E.decisions(pred)
    off = dec[dec.policy == "offline_e2e"].sort_values("step")
    assert list(off.chosen) == ["a", "a", "a"] and list(off.oracle_choice) == ["a", "b", "b"]
    assert list(off.regret_ms) == [0, 10, 5]
    hs = dec[dec.policy == "hindsight_static"]
    assert set(hs.chosen) == {"b"}       # mean a = 16.7, b = 15


def test_switching_gain_sees_context_dependent_best():
    data = synthetic_trace(shift=True)
    tr = data[data.part == "scenario"]
    g = E.switching_gain(tr, block_seconds=1.0, n_boot=300)
    # best single = a (mean 16.7 vs 14); switching: a when idle (10), b under load (14)
    assert g["effect"] > 0.1 and g["ci_lo"] > 0.05 and g["contexts_static_not_best"] == 1
    g0 = E.switching_gain(data[data.part == "scenario"].query("load == 'none'"), block_seconds=1.0, n_boot=300)
    assert abs(g0["effect"]) < 1e-9


class Ctx:
    def __init__(self, tmp_path, **params):
        from study.config import check_section

        self.params = check_section(F.FINDING, {"n_boot": 200, "block_seconds": 1.0, **params}, F.PARAMS)
        self.seed = 1
        self.device_spec = "local"
        self.finding = F.FINDING
        self.fingerprint = {"device": "local", "device_slug": "test"}
        self.tmp = tmp_path
        self.written = {}

    def write(self, df, table=None):
        self.written[table] = df

    def save(self, fig, name):
        from study import plotting

        return plotting.save(fig, "local", F.FINDING, name, self.tmp / "figures")


def test_analyse_and_plot_on_synthetic_data(tmp_path):
    ctx = Ctx(tmp_path)
    tables = F.analyse(ctx, synthetic_trace(shift=True))
    for name in ("availability", "offline", "predictions", "errors", "errors_by_phase", "tests", "regret",
                 "contexts", "sensors", "claims"):
        assert name in ctx.written, name
    c = tables["claims"]
    assert list(c.columns[:12]) == ["claim", "form", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value",
                                    "p_holm", "n", "paper_value", "verdict"]
    assert set(c.claim) == {"C7", "C9"} and c.reason.map(bool).all()
    assert set(c.verdict) <= {"reproduced", "contradicted", "inconclusive", "not measurable"}
    prim = c[(c.claim == "C7") & c.primary].iloc[0]
    assert prim.comparison == "offline_e2e vs ewma" and prim.verdict == "reproduced"
    # C7's p: one-sided, on block means (the blocks, not the correlated predictions, are the units)
    assert prim.n < 100 and 0 < prim.p_value < 0.05
    # the candidates here are CPU core groups and the CPU engine only (the GPU is absent): the host form
    c9 = c[c.claim == "C9"].set_index("form")
    assert c9.loc["host", "verdict"] == "reproduced" and 0 < c9.loc["host", "p_value"] < 0.01
    assert c9.loc["paper", "verdict"] == "not measurable"
    assert "torch/gpu/all: no GPU usable" in prim.reason
    av = tables["availability"]
    assert not av.set_index("candidate").loc["torch/gpu/all", "available"]
    figs = F.plot(ctx, tables)
    for name in ("trace", "error_cdf", "mape_by_phase", "regret"):
        assert name in figs and (tmp_path / "figures" / "local" / F.FINDING / f"{name}.png").exists()


def test_claims_not_measurable_without_a_trace(tmp_path):
    data = synthetic_trace()
    data = data[data.part.isin(["offline", "op_time", "absent"])]
    tables = F.analyse(Ctx(tmp_path), data)
    c = tables["claims"]
    assert (c.verdict == "not measurable").all() and c.reason.map(bool).all()
    assert F.plot(Ctx(tmp_path), tables) == {}


# --------------------------------------------------------------------------- params and notebook
@needs_models
def test_params_defaults_validate_and_bad_values_are_refused():
    params = yaml.safe_load(PARAMS.read_text())
    r = resolve(F.FINDING, params)
    assert r["candidates"] == F.DEFAULT_CANDIDATES and r["models"] == ["mobilenet_v2"]
    for bad, match in (({"candidates": ["litert/cpu"]}, "engine/processor/core_group"),
                       ({"candidates": ["tvm/cpu/g0"]}, "tvm"), ({"candidates": ["litert/dsp/g0"]}, "dsp"),
                       ({"phase_seconds": [5.0, 2.0]}, "low"), ({"cpu_competitors": [0, 2]}, "> 0"),
                       ({"models": ["alexnet"]}, "alexnet"), ({"phase_kinds": ["thermal"]}, "thermal"),
                       ({"ewma_alpha": 0.0}, "minimum"), ({"phase_seconds": [100.0, 200.0]}, "scenario_seconds")):
        with pytest.raises(ParamError, match=match):
            resolve(F.FINDING, {**params, F.FINDING: bad})


# --------------------------------------------------------------------------- end to end
def _ctx(tmp_path, **own):
    from study.common import context
    from study.config import check_section

    harness = dict(warmup=1, min_samples=3, max_samples=5, max_seconds=0.5, rel_ci_halfwidth=0.5, block_size=3,
                   below_floors=True)
    base = dict(candidates=["litert/cpu/g0", "litert/cpu/all", "torch/gpu/all"], scenario_seconds=6.0,
                phase_seconds=[1.5, 2.5], burst_seconds=[0.2, 0.4], phase_kinds=["idle", "cpu", "burst", "gpu"],
                cpu_competitors=[1, 1], op_runs=1, n_boot=100, block_seconds=1.0, sensor_interval_s=1.0)
    base.update(own)
    params = dict(device="local", profile="quick", seed=3, harness=harness,
                  **check_section(F.FINDING, base, F.PARAMS))
    ctx = context(F.FINDING, params)
    ctx.data_root = tmp_path / "data"
    ctx.figures_root = tmp_path / "figures"
    return ctx


def _competitor_pids(raw: Path) -> list[int]:
    recs = [json.loads(x) for x in raw.read_text().splitlines()]
    return [p for r in recs if r["type"] == "competitors" for p in (x["pid"] for x in r["pool"])]


@needs_models
def test_run_end_to_end_on_cpu(tmp_path):
    ctx = _ctx(tmp_path)
    res = F.run(ctx)
    data = pd.read_parquet(tmp_path / "data" / "local" / f"{F.FINDING}.parquet")
    assert len(data) == len(res["data"]) > 0
    assert {"device", "device_slug", "part", "candidate", "latency_ms", "t_s", "step", "segment", "load",
            "phase_kind", "reason"} <= set(data.columns)
    assert {"offline", "op_time", "scenario", "sensors"} <= set(data.part)
    tr = data[data.part == "scenario"]
    assert set(tr.candidate) == {"litert/cpu/g0", "litert/cpu/all"} and tr.latency_ms.gt(0).all()
    assert tr.groupby("step").candidate.nunique().eq(2).all()
    assert data[data.part == "op_time"].time_ms.notna().any()
    absent = data[data.part == "absent"]
    assert absent.reason.map(bool).all()
    if not ctx.device.processor("gpu").available:
        g = absent[absent.candidate == "torch/gpu/all"]
        assert len(g) == 1 and g.reason.iloc[0].startswith("no GPU usable")
        assert absent.candidate.eq("phase gpu").any()
    sched = pd.read_parquet(tmp_path / "data" / "local" / F.FINDING / "schedule.parquet")
    assert sched.seg_end_s.max() == pytest.approx(6.0)
    t = res["tables"]
    assert len(t["predictions"]) == len(tr) * len(E.ESTIMATORS)
    assert set(t["claims"].verdict) <= {"reproduced", "contradicted", "inconclusive", "not measurable"}
    for name in ("trace", "error_cdf", "regret"):
        assert (tmp_path / "figures" / "local" / F.FINDING / f"{name}.png").exists()
        assert (tmp_path / "figures" / "local" / F.FINDING / f"{name}.pdf").exists()
    for name in ("claims", "errors", "tests", "regret", "offline", "availability", "fingerprint"):
        ext = "json" if name == "fingerprint" else "parquet"
        assert (tmp_path / "data" / "local" / F.FINDING / f"{name}.{ext}").exists()
    for log in (F.FINDING, F.OFFLINE_LOG):
        recs = [json.loads(x) for x in (tmp_path / "data" / "local" / "raw" / f"{log}.jsonl").read_text().splitlines()]
        assert recs[-1]["type"] == "complete"
    pids = _competitor_pids(tmp_path / "data" / "local" / "raw" / f"{F.FINDING}.jsonl")
    assert pids and wait_gone(pids, 3.0) == []
    assert sorted(os.sched_getaffinity(0)) == sorted(ctx.device.core_groups()["all"])


# --------------------------------------------------------------------------- GPU paths (CUDA machine)
@pytest.mark.skipif(not has_cuda(), reason="needs a CUDA GPU")
@needs_models
def test_gpu_candidate_and_gpu_competitors(tmp_path):
    ctx = _ctx(tmp_path, candidates=["torch/gpu/all", "litert/cpu/all", "litert/gpu/all"], phase_kinds=["idle", "gpu"],
               scenario_seconds=8.0, phase_seconds=[2.0, 3.0])
    res = F.run(ctx)
    data = res["data"]
    tr = data[data.part == "scenario"]
    assert (tr.candidate == "torch/gpu/all").sum() > 10
    sched = pd.read_parquet(tmp_path / "data" / "local" / F.FINDING / "schedule.parquet")
    assert (sched.phase_kind == "gpu").any() and sched.n_gpu_comp.max() >= 1
    g = tr[tr.candidate == "torch/gpu/all"]
    assert g[g.phase_kind == "gpu"].latency_ms.median() > 0 and g[g.phase_kind == "idle"].latency_ms.median() > 0
    ops = data[(data.part == "op_time") & (data.candidate == "torch/gpu/all")]
    assert len(ops) and ops.time_ms.notna().any() and ops.method.str.contains("device kernel").any()
    sen = data[data.part == "sensors"]
    assert sen.gpu_sm_mhz.notna().any()
    lg = data[data.candidate == "litert/gpu/all"]
    assert len(lg[lg.part == "scenario"]) or lg[lg.part == "absent"].reason.map(bool).all()
    pids = _competitor_pids(tmp_path / "data" / "local" / "raw" / f"{F.FINDING}.jsonl")
    assert pids and wait_gone(pids, 3.0) == []


def test_verdict_rule():
    assert F._verdict(1.0, 2.0, 0.01) == "reproduced"
    assert F._verdict(1.0, 2.0, 0.2) == "inconclusive"        # CI above 0 but the test does not reject
    assert F._verdict(-2.0, -1.0, 0.2) == "contradicted"      # CI entirely on the other side
    assert F._verdict(-1.0, 1.0, 0.001) == "inconclusive"
    assert F._verdict(0.06, 0.2, None, null=0.05) == "reproduced"
    assert F._verdict(0.0, 0.04, None, null=0.05) == "contradicted"
    assert F._verdict(np.nan, 1.0, 0.01) == "inconclusive"
