"""Finding 3 (contention, co-running app): logic on synthetic data, one tiny end-to-end run."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from study.paths import ROOT
from study import contention as F
from study.config import ParamError, check_section
from study.corunning_app import frame_loop


try:
    import torch

    HAS_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    HAS_CUDA = False


# --------------------------------------------------------------------------- stubs and synthetic data
class StubCtx:
    """What analyse/plot use of a StageContext: params, seed, device_spec, write, save."""

    def __init__(self, tmp_path, **params):
        self.params = {k: f.default for k, f in F.PARAMS.items()}
        self.params.update(params)
        self.seed = 0
        self.device_spec = "local"
        self.tmp = tmp_path
        self.written: dict[str, pd.DataFrame] = {}
        self.saved: list[str] = []

    def write(self, df, table=None):
        self.written[table or "main"] = df

    def save(self, fig, name):
        p = self.tmp / f"{name}.png"
        fig.savefig(p)
        self.saved.append(name)
        return {"png": p}


def synth_latency(slowdowns: dict[tuple[str, str, str], float], models=("m1",), n_per=40, seed=0,
                  ns=(0, 1, 2, 3)) -> pd.DataFrame:
    """Rows like measure()'s latency rows. ``slowdowns[(sut, kind, cores)]`` = slowdown at
    n = 3, linear in n in between; lognormal noise (sd 0.03)."""
    rng = np.random.default_rng(seed)
    rows = []
    suts = sorted({k[0] for k in slowdowns})
    for m in models:
        for sut in suts:
            proc, eng = F.split_sut(sut)
            base = 10.0 if proc == "cpu" else 2.0
            for n in ns:
                conds = [("none", "none")] if n == 0 else [(k, c) for (s, k, c) in slowdowns if s == sut]
                for kind, cores in conds:
                    s3 = 1.0 if n == 0 else slowdowns[(sut, kind, cores)]
                    med = base * (1 + (s3 - 1) * n / 3)
                    for x in med * np.exp(rng.normal(0, 0.03, n_per)):
                        rows.append(dict(measurement="latency", model=m, sut=sut, processor=proc, engine=eng,
                                         kind=kind, competitor_cores=cores, n_competitors=n,
                                         placement=F.placement_of(proc, kind, cores), latency_ms=x,
                                         competitor_util=0.9 if n else 0.0))
    return pd.DataFrame(rows)


def synth_frames(missed: dict[tuple[float, str, str], float], runs=2, frames_per_run=90, seed=0,
                 model="vgg16") -> pd.DataFrame:
    """Frame rows: ``missed[(fps, render, inference_sut)]`` = share of missed frames
    (``'idle'`` for the baseline), in bursts (autocorrelated)."""
    rng = np.random.default_rng(seed)
    rows, run = [], 0
    for (fps, render, sut), share in missed.items():
        for _ in range(runs):
            state = rng.random(frames_per_run) < share
            for i, mi in enumerate(state):
                rows.append(dict(measurement="frame", fps=fps, render=render, inference_sut=sut,
                                 inference_model="" if sut == "idle" else model, run=run, frame=i,
                                 missed=bool(mi), skipped=bool(mi and i % 2), frame_ms=5.0 + 30 * mi,
                                 lateness_ms=-10.0 + 40 * mi))
            if sut != "idle":
                for k in range(20):
                    rows.append(dict(measurement="corun_inference", run=run, latency_ms=100.0 + k))
            run += 1
    return pd.DataFrame(rows)


def unavailable(**kw) -> pd.DataFrame:
    base = dict(measurement="unavailable", what="system", model="m1", sut="gpu/litert", processor="gpu",
                engine="litert", kind="", available=False, reason="no GPU usable: test", part="contention")
    base.update(kw)
    return pd.DataFrame([base])


# --------------------------------------------------------------------------- design of the measurement
def test_conditions_baseline_once_gpu_on_the_other_cores_cross_only_with_a_second_group():
    conds = F.conditions(["cpu", "memory", "gpu"], [0, 1, 3], ["same", "cross"], has_cross=True)
    assert conds[0] == F.Condition("none", 0, "none") and sum(c.n == 0 for c in conds) == 1
    assert {(c.kind, c.competitor_cores) for c in conds if c.kind == "gpu"} == {("gpu", "cross")}
    assert len(conds) == 1 + 2 * 2 * 2 + 2
    no_cross = F.conditions(["cpu"], [0, 1], ["same", "cross"], has_cross=False)
    assert [c.competitor_cores for c in no_cross] == ["none", "same"]


def test_schedule_visits_every_condition_once_per_round_in_seeded_random_order():
    conds = F.conditions(["cpu", "memory"], [0, 1, 2, 3], ["same", "cross"], has_cross=True)
    s = F.schedule(conds, 3, seed=5)
    assert [v for v, _, _ in s] == list(range(3 * len(conds)))          # visit ids unique
    for r in range(3):
        assert sorted(c.label for _, rr, c in s if rr == r) == sorted(c.label for c in conds)
    orders = [[c.label for _, rr, c in s if rr == r] for r in range(3)]
    assert len({tuple(o) for o in orders}) > 1
    assert s == F.schedule(conds, 3, seed=5) and s != F.schedule(conds, 3, seed=6)


def test_placement_says_whether_competitors_load_the_inference_processor():
    assert F.placement_of("cpu", "cpu", "same") == "same"
    assert F.placement_of("cpu", "memory", "cross") == "cross"
    assert F.placement_of("cpu", "gpu", "cross") == "cross"
    assert F.placement_of("gpu", "gpu", "cross") == "same"
    assert F.placement_of("gpu", "cpu", "same") == "cross"
    assert F.placement_of("gpu", "none", "none") == "none"


def test_core_groups_for_inference_and_cross_placement():
    assert F.choose_groups({"g0": [0], "g1": [1], "all": [0, 1]}, "auto") == ("g0", "g1")
    assert F.choose_groups({"big": [4, 5], "little": [0, 1, 2, 3], "all": list(range(6))}, "auto") == ("big", "little")
    assert F.choose_groups({"all": [0]}, "auto") == ("all", None)
    with pytest.raises(ParamError):
        F.choose_groups({"all": [0]}, "g7")


def test_params_defaults_validate_and_bad_values_are_refused():
    defaults = check_section("contention", {}, F.PARAMS)
    assert defaults["n_competitors"] == [0, 1, 2, 3]
    for bad in ({"n_competitors": [1, 2]}, {"kinds": ["disk"]}, {"suts": ["gpu/mace"]}, {"fps": [0]},
                {"rounds": 0}, {"clip": "nope"}):
        with pytest.raises(ParamError):
            check_section("contention", bad, F.PARAMS)
    resolved = {**defaults, "claim_fps": 24}
    with pytest.raises(ParamError, match="claim_fps"):
        F.check_params(resolved, {"models": {"zoo": ["mobilenet_v2"], "mediapipe": [], "user": [],
                                             "formats": ["tflite"], "weights_seed": 0}})


def test_session_cache_opens_once_and_remembers_failures():
    calls = []

    class S:
        def __init__(self):
            self.runs, self.closed = 0, False

        def run(self):
            self.runs += 1

        def close(self):
            self.closed = True

    def opener():
        calls.append(1)
        return S()

    def broken():
        calls.append("x")
        raise RuntimeError("cannot compile")

    cache = F.SessionCache()
    a, b = cache.shared_opener("k", opener)(), cache.shared_opener("k", opener)()
    a.run(), b.run()
    a.close()                                # the harness's close: no effect
    assert calls == [1] and a.sess is b.sess and a.sess.runs == 2 and not a.sess.closed
    for _ in range(2):
        with pytest.raises(RuntimeError):
            cache.get("bad", broken)
    assert calls.count("x") == 1
    cache.close()
    assert a.sess.closed


# --------------------------------------------------------------------------- the app's frame loop
class FakeTime:
    def __init__(self):
        self.t = 0.0
        self.slept = []

    def clock(self):
        return self.t

    def sleep(self, s):
        self.slept.append(s)
        self.t += s


def test_frame_loop_on_time_frames_sleep_to_the_next_release():
    ft = FakeTime()

    def work(i, skip):
        ft.t += 0.010

    recs = frame_loop(5, 1 / 30, work, clock=ft.clock, sleep=ft.sleep)
    assert [r["missed"] for r in recs] == [False] * 5
    assert len(ft.slept) == 4 and all(abs(s - (1 / 30 - 0.010)) < 1e-9 for s in ft.slept)
    assert recs[0]["frame_ms"] == pytest.approx(10.0)


def test_frame_loop_a_late_frame_misses_and_frames_past_their_deadline_are_skipped():
    ft = FakeTime()
    seen = []

    def work(i, skip):
        seen.append((i, skip))
        ft.t += 0.100 if i == 1 else (0.001 if skip else 0.005)

    period = 0.020
    recs = frame_loop(8, period, work, clock=ft.clock, sleep=ft.sleep)
    missed = [r["missed"] for r in recs]
    skipped = [r["skipped"] for r in recs]
    assert missed[0] is False and missed[1] is True and recs[1]["skipped"] is False
    assert any(skipped[2:]) and all(m for m, s in zip(missed, skipped) if s)
    assert any(skip for _, skip in seen)                # skipped frames are decoded, not drawn
    assert missed[-1] is False                          # the app catches up


def test_block_bootstrap_share():
    rng = np.random.default_rng(0)
    const = F.block_bootstrap_share([np.zeros(50), np.zeros(30)], 10, 200, rng)
    assert np.all(const == 0)
    runs = [(rng.random(300) < 0.3).astype(float) for _ in range(3)]
    b = F.block_bootstrap_share(runs, 30, 500, rng)
    pooled = np.concatenate(runs).mean()
    assert b.shape == (500,) and abs(np.median(b) - pooled) < 0.03
    assert np.quantile(b, 0.025) < pooled < np.quantile(b, 0.975)


# --------------------------------------------------------------------------- analysis on synthetic data
SLOW = {("cpu/litert", "cpu", "same"): 10.0, ("cpu/litert", "cpu", "cross"): 1.2,
        ("cpu/litert", "gpu", "cross"): 1.1, ("gpu/torch", "gpu", "cross"): 2.0,
        ("gpu/torch", "cpu", "same"): 1.5}


def test_slowdown_table_recovers_slowdowns_and_lists_absent_systems():
    data = pd.concat([synth_latency(SLOW), unavailable()], ignore_index=True)
    sd = F.slowdown_table(data, n_boot=300)
    r = sd[(sd.sut == "cpu/litert") & (sd.kind == "cpu") & (sd.competitor_cores == "same") & (sd.n_competitors == 3)]
    assert len(r) == 1 and r.slowdown.iloc[0] == pytest.approx(10.0, rel=0.05)
    assert r.ci_lo.iloc[0] < r.slowdown.iloc[0] < r.ci_hi.iloc[0] and r.placement.iloc[0] == "same"
    g = sd[(sd.sut == "gpu/torch") & (sd.kind == "gpu") & (sd.n_competitors == 3)]
    assert g.placement.iloc[0] == "same" and g.slowdown.iloc[0] == pytest.approx(2.0, rel=0.05)
    absent = sd[~sd.available]
    assert len(absent) == 1 and absent.reason.iloc[0].startswith("not measurable: no GPU")
    assert absent.slowdown.isna().all()


def test_interaction_test_detects_processor_dependent_slopes_and_not_equal_ones():
    diff = F.interaction_model(synth_latency(SLOW))[1]
    joint = diff[diff.test == "processor x n_competitors"].iloc[0]
    assert joint.p_value < 1e-6 and joint.df_num >= 2
    nested = diff[diff.test == "processor x n_competitors (nested F)"].iloc[0]
    assert nested.p_value < 1e-6
    same = {("cpu/litert", "cpu", "same"): 3.0, ("gpu/torch", "cpu", "same"): 3.0}
    eq = F.interaction_model(synth_latency(same, seed=3))[1]
    assert eq[eq.test == "processor x n_competitors"].p_value.iloc[0] > 0.001
    coefs = F.interaction_model(synth_latency(same, seed=3))[0]
    assert set(coefs.sut) == {"cpu/litert", "gpu/torch"}
    one = F.interaction_model(synth_latency({("cpu/litert", "cpu", "same"): 3.0}))[1]
    assert one.reason.iloc[0].startswith("not measurable")


def test_c5_reproduced_contradicted_and_not_measurable():
    params = {"suts": ["cpu/litert", "gpu/litert", "gpu/torch"], "c6_threshold_pp": 5.0, "claim_fps": 30}
    data = synth_latency(SLOW, models=("m1", "m2"))
    con = F.cpu_vs_gpu(data, n_boot=400)
    pooled = con[(con.form == "same-processor") & (con.model == "geomean")].iloc[0]
    assert pooled.ratio == pytest.approx(5.0, rel=0.1) and pooled.ci_lo > 1
    assert set(con.form) == {"same-processor", "cpu-competitors"}
    c = F.claims_table(data, con, pd.DataFrame(columns=["fps"]), params).set_index("claim")
    assert c.loc["C5", "verdict"] == "reproduced" and "DSP not measurable" in c.loc["C5", "reason"]
    assert c.loc["C6", "verdict"] == "not measurable" and c.loc["C6", "reason"]
    rev = {("cpu/litert", "cpu", "same"): 1.5, ("gpu/torch", "gpu", "cross"): 6.0}
    d2 = synth_latency(rev)
    c2 = F.claims_table(d2, F.cpu_vs_gpu(d2, n_boot=400), pd.DataFrame(columns=["fps"]), params)
    assert c2.set_index("claim").loc["C5", "verdict"] == "contradicted"
    cpu_only = pd.concat([synth_latency({("cpu/litert", "cpu", "same"): 8.0}), unavailable(),
                          unavailable(what="competitor", sut="", processor="", engine="", kind="gpu",
                                      reason="GPU competitors need PyTorch CUDA")], ignore_index=True)
    c3 = F.claims_table(cpu_only, F.cpu_vs_gpu(cpu_only), pd.DataFrame(columns=["fps"]), params).set_index("claim")
    assert c3.loc["C5", "verdict"] == "not measurable"
    assert "no GPU usable" in c3.loc["C5", "reason"] and np.isnan(c3.loc["C5", "effect"])


def test_corun_tables_and_c6_verdicts():
    params = {"suts": [], "corun_models": ["vgg16"], "corun_suts": ["cpu/litert", "gpu/torch"],
              "c6_threshold_pp": 5.0, "claim_fps": 30}
    frames = synth_frames({(30.0, "cpu", "idle"): 0.0, (30.0, "cpu", "cpu/litert"): 0.6,
                           (30.0, "cpu", "gpu/torch"): 0.4, (60.0, "cpu", "idle"): 0.05,
                           (60.0, "cpu", "gpu/torch"): 0.05})
    summary, vs = F.corun_table(frames, n_boot=300)
    assert set(summary.inference_sut) == {"idle", "cpu/litert", "gpu/torch"}
    row = summary[(summary.fps == 30) & (summary.inference_sut == "gpu/torch")].iloc[0]
    assert row.ci_lo <= row.missed_share <= row.ci_hi and row.inferences == 40 and row.runs == 2
    assert {"frame_ms_p50", "frame_ms_p90", "frame_ms_p99"} <= set(summary.columns)
    v = vs.set_index(["fps", "inference_sut"])
    assert v.loc[(30.0, "cpu/litert"), "increase_pp"] > 40
    empty = pd.DataFrame(columns=F.cpu_vs_gpu(pd.DataFrame({"measurement": []})).columns)
    c = F.claims_table(frames, empty, vs, params)
    c6 = c[c.claim == "C6"].set_index("form")
    # the app drew on the CPU here: GPU inference beside it is not the paper's form (an app on the same GPU)
    assert c6.loc["paper", "verdict"] == "not measurable" and "same GPU" in c6.loc["paper", "reason"]
    assert c6.loc["host", "verdict"] == "reproduced" and "cpu/litert" in c6.loc["host", "text"]
    assert c6.loc["host", "ci_lo"] > 5 and 0 < c6.loc["host", "p_value"] < 0.01
    # the app drawing on the GPU beside GPU inference: the paper's form decides
    gframes = synth_frames({(30.0, "gpu", "idle"): 0.0, (30.0, "gpu", "gpu/torch"): 0.5,
                            (30.0, "cpu", "idle"): 0.0, (30.0, "cpu", "cpu/litert"): 0.6})
    _, gvs = F.corun_table(gframes, n_boot=300)
    g6 = F.claims_table(gframes, empty, gvs, params)
    g6 = g6[g6.claim == "C6"].set_index("form")
    assert g6.loc["paper", "verdict"] == "reproduced" and "gpu/torch" in g6.loc["paper", "text"]
    assert g6.loc["host", "verdict"] == "reproduced"
    flat = synth_frames({(30.0, "gpu", "idle"): 0.0, (30.0, "gpu", "gpu/torch"): 0.0})
    _, vs2 = F.corun_table(flat, n_boot=300)
    c2 = F.claims_table(flat, pd.DataFrame(columns=["form"]), vs2, params).set_index("claim")
    assert c2.loc["C6", "verdict"] == "contradicted" and c2.loc["C6", "effect"] == 0


def test_analyse_writes_every_table_and_plot_saves_both_figures(tmp_path):
    ctx = StubCtx(tmp_path, suts=["cpu/litert", "gpu/torch"], corun_suts=["cpu/litert", "gpu/torch"],
                  corun_models=["vgg16"], n_boot=300)
    data = pd.concat([synth_latency(SLOW), unavailable(sut="npu/-", processor="npu", reason="the paper's DSP: none"),
                      synth_frames({(30.0, "cpu", "idle"): 0.0, (30.0, "cpu", "gpu/torch"): 0.5,
                                    (60.0, "cpu", "idle"): 0.0, (60.0, "cpu", "gpu/torch"): 0.7})],
                     ignore_index=True)
    tables = F.analyse(ctx, data)
    assert {"claims", "slowdown", "ols_slopes", "interaction_tests", "cpu_vs_gpu", "corun", "corun_vs_idle",
            "latency_summary"} <= set(tables)
    assert set(ctx.written) == set(tables)
    claims = tables["claims"]
    assert list(claims.columns) == F.CLAIM_COLUMNS and list(claims.claim) == ["C5", "C6"]
    assert claims.verdict.isin(["reproduced", "contradicted", "inconclusive", "not measurable"]).all()
    assert claims.reason.str.len().gt(0).all()
    figs = F.plot(ctx, tables)
    assert set(figs) == {"slowdown", "frame_drops"} and set(ctx.saved) == {"slowdown", "frame_drops"}
    assert (tmp_path / "slowdown.png").stat().st_size > 0


# --------------------------------------------------------------------------- notebook
# --------------------------------------------------------------------------- end to end (CPU, tiny)
def _tiny_ctx(tmp_path, **over):
    import yaml

    from study.common import context

    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = {"device": "local", "profile": "quick", "seed": 3, "harness": dict(p["harness"]["quick"], warmup=1),
              **{k: f.default for k, f in F.PARAMS.items()}}
    params.update(dict(rounds=1, samples_per_visit=3, n_competitors=[0, 1], kinds=["cpu", "gpu"],
                       core_placements=["same"], corun_seconds=0.6, app_warmup_s=0.1, corun_rounds=1, fps=[30],
                       claim_fps=30, n_boot=200, ramp_s=0.05, clip="bikes"))
    params.update(over)
    ctx = context("contention", params)
    ctx.data_root = tmp_path / "data"
    ctx.figures_root = tmp_path / "figures"
    return ctx


def _children(before: dict | None = None) -> dict[int, str]:
    """This test process's live descendants, {pid: command line}, less those in `before`: the
    processes an earlier test left running on purpose (multiprocessing's resource tracker, which
    lives as long as the interpreter) are not the study's competitors or co-running app."""
    import psutil

    out = {}
    for c in psutil.Process().children(recursive=True):
        try:
            if c.status() != psutil.STATUS_ZOMBIE:
                out[c.pid] = " ".join(c.cmdline())
        except psutil.NoSuchProcess:
            continue
    return {pid: cmd for pid, cmd in out.items() if pid not in (before or {})}


def test_run_end_to_end_tiny(tmp_path):
    # on a GPU machine the GPU paths are covered by test_run_end_to_end_gpu; keep this one short there
    gpu_off = dict(suts=["cpu/litert"], kinds=["cpu"], renders=["cpu"], corun_suts=["cpu/litert"]) if HAS_CUDA else {}
    ctx = _tiny_ctx(tmp_path, **gpu_off)
    before = _children()
    res = F.run(ctx)
    data = res["data"]
    lat = data[data.measurement == "latency"]
    assert len(lat) and lat.latency_ms.gt(0).all()
    for col in ("model", "sut", "processor", "engine", "kind", "n_competitors", "competitor_cores", "placement",
                "round", "visit", "cores", "stop_reason", "competitor_cpu_s"):
        assert col in lat.columns, col
    assert set(lat.n_competitors) == {0, 1}
    assert lat[lat.n_competitors == 1].competitor_cpu_s.gt(0).all()      # the competitors did run
    frames = data[data.measurement == "frame"]
    assert len(frames) and set(frames.inference_sut) >= {"idle", "cpu/litert"}
    assert frames.frame_ms.notna().all()
    assert len(data[data.measurement == "corun_inference"])
    un = data[data.measurement == "unavailable"]
    assert un.reason.str.len().gt(0).all()
    if not HAS_CUDA:
        assert {"gpu/litert", "gpu/torch"} <= set(un.sut) and "gpu" in set(un.kind)
        assert lat.processor.eq("cpu").all()
        c5 = res["tables"]["claims"].set_index("claim").loc["C5"]
        assert c5.verdict == "not measurable" and "no GPU" in c5.reason
    assert "npu/-" in set(un.sut)
    d = ctx.data_root / "local"
    assert (d / "contention.parquet").is_file() and (d / "contention" / "claims.parquet").is_file()
    assert (d / "contention" / "fingerprint.json").is_file()
    for log in ("contention", "contention_app"):
        last = (d / "raw" / f"{log}.jsonl").read_text().strip().splitlines()[-1]
        assert json.loads(last)["type"] == "complete"
    for name in ("slowdown", "frame_drops"):
        assert (ctx.figures_root / "local" / "contention" / f"{name}.png").is_file()
        assert res["figure_files"][name].is_file()
    assert _children(before) == {}                                       # no competitor or app left


def test_killed_contention_run_resumes_measured_visits(tmp_path):
    ctx = _tiny_ctx(tmp_path, kinds=["cpu"], suts=["cpu/litert"])
    avail = F.availability_rows(ctx, ctx.params["models"], ["cpu/litert"], ["cpu"])
    cache = F.SessionCache()
    try:
        first = F.measure_contention(ctx, avail, cache)      # no mark_complete: as if killed after it
        n_lines = len(ctx.raw_log().path.read_text().splitlines())
        again = F.measure_contention(ctx, avail, cache)
    finally:
        cache.close()
    assert len(ctx.raw_log().path.read_text().splitlines()) == n_lines   # nothing measured twice
    assert sorted(first.latency_ms) == sorted(again.latency_ms)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_run_end_to_end_gpu(tmp_path):
    ctx = _tiny_ctx(tmp_path, suts=["cpu/litert", "gpu/torch"], corun_suts=["gpu/torch"], renders=["cpu", "gpu"],
                    kinds=["cpu", "gpu"], n_competitors=[0, 3], samples_per_visit=5)
    before = _children()
    res = F.run(ctx)
    lat = res["data"][res["data"].measurement == "latency"]
    assert set(lat.sut) == {"cpu/litert", "gpu/torch"} and "gpu" in set(lat.kind)
    assert lat[lat.kind == "gpu"].competitor_cpu_s.gt(0).all()
    claims = res["tables"]["claims"].set_index("claim")
    assert claims.loc["C5", "verdict"] != "not measurable"
    frames = res["data"][res["data"].measurement == "frame"]
    assert set(frames.render) == {"cpu", "gpu"} and "gpu/torch" in set(frames.inference_sut)
    assert _children(before) == {}
