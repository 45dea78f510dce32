"""Finding 2 (mulayer_overhead): parameters, the analysis and figures on synthetic tidy
data, the breakdown log, and one small end-to-end run of run(ctx) on the CPU."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from study import mulayer_overhead as F
from study.config import ParamError, check_section
from study.measure import Config, Harness, HarnessSettings

CLAIM_COLUMNS = ["claim", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "n", "paper_value", "verdict",
                 "reason"]
VERDICTS = {"reproduced", "contradicted", "inconclusive", "not measurable"}


# --------------------------------------------------------------------------- parameters
def test_defaults_validate_and_bad_values_are_refused():
    resolved = check_section(F.FINDING, {}, F.PARAMS)
    assert "fast_style_transfer" in resolved["models"]
    with pytest.raises(ParamError):
        check_section(F.FINDING, {"ratios": [1.5]}, F.PARAMS)
    with pytest.raises(ParamError):
        check_section(F.FINDING, {"input_size": 100}, F.PARAMS)
    with pytest.raises(ParamError):
        check_section(F.FINDING, {"cpu_groups": ["g0", "g0"]}, F.PARAMS)
    with pytest.raises(ParamError):
        check_section(F.FINDING, {"granularities": ["subgraph"]}, F.PARAMS)
    params = {"models": {"zoo": ["vgg16", "fast_style_transfer"], "mediapipe": [], "user": [], "formats": ["onnx"],
                         "weights_seed": 0}}
    with pytest.raises(ParamError, match="vgg16"):
        F.check_params({**resolved, "models": ["vgg16"], "input_size": 128}, params)
    F.check_params({**resolved, "models": ["vgg16"], "input_size": 0}, params)


# --------------------------------------------------------------------------- synthetic tidy data
def _rows(pair, kind, a, b, model, label, gran, lat, n=20, ratio=None, rkind=None, seed=0, **bd):
    rng = np.random.default_rng(seed)
    x = lat * (1 + 0.02 * rng.standard_normal(n))
    out = []
    for v in x:
        r = dict(pair=pair, pair_kind=kind, proc_a=a, proc_b=b, model=model, input_size=64, granularity=gran,
                 label=label, ratio=ratio, ratio_kind=rkind, latency_ms=v, available=True, reason="",
                 threads_a=1, threads_b=1, processor=a)
        if bd:
            wall = v
            shares = {p: bd.get(p, 0.0) for p in ("solo", "parallel", "imbalance", "sync", "transfer", "merge", "other")}
            for p, s in shares.items():
                r[f"t_{p}_ms"] = s * wall
            r.update(engine_wall_ms=wall, compute_a_ms=(shares["solo"] + shares["parallel"]) * wall,
                     compute_b_ms=shares["parallel"] * wall, wait_ms=(shares["imbalance"] + shares["sync"]) * wall,
                     overhead_ms=(shares["sync"] + shares["transfer"] + shares["merge"]) * wall,
                     overhead_share=shares["sync"] + shares["transfer"] + shares["merge"] + rng.normal(0, .01),
                     idle_a=0.1, idle_b=bd.get("idle_b", 1 - shares["parallel"]), n_steps=10)
            if gran == "frame":
                r.update(frames=4, frames_a=2, frames_b=2, throughput_fps=4000 / wall, frame_latency_ms=wall / 2,
                         frame_latency_max_ms=wall / 1.5)
        out.append(r)
    return out


def synthetic(slow: float = 3.0, op_share: float = 0.6, frame_share: float = 0.05, idle: float = 0.9,
              kind: str = "cpu+cpu", all_cores: float = 0.8) -> pd.DataFrame:
    a, b, pair = ("g0", "g1", "g0+g1") if kind == "cpu+cpu" else ("gpu", "cpu", "cpu+gpu")
    rows = []
    for m, ta, tb in (("fast_style_transfer", 10.0, 12.0), ("resnet50", 20.0, 18.0)):
        best = min(ta, tb)
        rows += _rows(pair, kind, a, b, m, f"single:{a}", "single", ta, seed=1)
        rows += _rows(pair, kind, a, b, m, f"single:{b}", "single", tb, seed=2)
        if kind == "cpu+cpu":      # the host form's fair baseline: the model on both groups' cores
            rows += _rows(pair, kind, a, b, m, F.ALL_CORES, "single", best * all_cores, seed=12)
        for i, (lab, r, rk) in enumerate((("operator:r=0", 0.0, "sweep"), ("operator:r=0.5", 0.5, "sweep"),
                                          ("operator:r=1", 1.0, "sweep"), ("operator:r*", 0.45, "r*"),
                                          ("operator:r*/layer", 0.47, "r*/layer"))):
            lat = best * (slow if 0 < r < 1 else 1.2) * (1 + 0.05 * i)
            rows += _rows(pair, kind, a, b, m, lab, "operator", lat, ratio=r, rkind=rk, seed=3 + i,
                          solo=0.1, parallel=0.3 - op_share / 2 if op_share < .6 else 0.2, imbalance=0.1,
                          sync=op_share / 2, transfer=op_share / 3, merge=op_share / 6)
        if m == "resnet50":
            rows += _rows(pair, kind, a, b, m, "branch", "branch", best * 0.95, seed=9, solo=0.8, parallel=0.1,
                          imbalance=0.05, sync=0.05, idle_b=idle)
        for pol, share in (("alternate", 0.5), ("balanced", 0.45)):
            rows += _rows(pair, kind, a, b, m, f"frame:{pol}", "frame", best * 2.2, ratio=share, rkind=pol, seed=11,
                          parallel=0.9, imbalance=0.05, sync=frame_share)
    df = pd.DataFrame(rows)
    if kind == "cpu+cpu":
        df = pd.concat([df, pd.DataFrame([dict(model=m, pair="cpu+gpu", pair_kind="cpu+gpu", proc_a="gpu", proc_b="cpu",
                                               available=False, reason="no CUDA GPU for PyTorch: test")
                                          for m in ("fast_style_transfer", "resnet50")])], ignore_index=True)
    return df


class FakeCtx:
    def __init__(self, tmp_path, **params):
        self.params = {**{k: f.default for k, f in F.PARAMS.items()}, "n_boot": 300, **params}
        self.seed = 1
        self.device_spec = "local"
        self.written, self.saved = {}, {}
        self.tmp = tmp_path

    def write(self, df, table=None):
        self.written[table] = df

    def save(self, fig, name):
        p = self.tmp / f"{name}.png"
        fig.savefig(p)
        self.saved[name] = p


def test_analysis_reproduces_on_slow_coexecution(tmp_path):
    ctx = FakeCtx(tmp_path)
    t = F.analyse(ctx, synthetic(slow=3.0))
    claims = t["claims"]
    assert list(claims.columns)[:2] == ["claim", "form"] and set(CLAIM_COLUMNS) <= set(claims.columns)
    assert set(claims.claim) == {"C2", "C3", "C4", "C9"}
    assert set(claims.verdict) <= VERDICTS and claims.reason.str.len().min() > 0
    # no GPU: the paper's form (CPU+GPU) is not measurable, the two core groups are the host form
    paper = claims[claims.form == "paper"].set_index("claim")
    assert (paper.verdict == "not measurable").all() and paper.reason.str.contains("CPU+GPU absent", regex=False).all()
    host = claims[claims.form == "host"].set_index("claim")
    c3 = host.loc["C3"]
    assert c3.verdict == "reproduced" and c3.ci_lo > 1
    # at r* (latency 3 x 1.15 x the faster group) over the model on all cores (0.8 x the faster group)
    assert c3.effect == pytest.approx(3.0 * 1.15 / 0.8, rel=0.1)
    assert "all the cores" in c3.text and "host form" in c3.text
    assert 0 < c3.p_value < 0.001            # 10,000 resamples: the floor is 1e-4
    assert host.loc["C4", "verdict"] == "reproduced" and host.loc["C4", "p_value"] < 0.05
    # C2: measured co-execution at r* over the ideal bound of the two groups
    ideal = t["ideal"].set_index("model").loc["fast_style_transfer"]
    assert host.loc["C2", "effect"] == pytest.approx(ideal.rstar_over_ideal, rel=0.05)
    assert host.loc["C2", "verdict"] == "reproduced"
    assert host.loc["C9", "verdict"] == "reproduced"
    ideal = t["ideal"].set_index("model").loc["fast_style_transfer"]
    assert ideal.ideal_ms == pytest.approx(1 / (1 / ideal.t_a_ms + 1 / ideal.t_b_ms))
    assert ideal.ideal_lo <= ideal.ideal_ms <= ideal.ideal_hi
    assert ideal.best_over_ideal > 1
    sl = t["slowdown"]
    assert {"operator", "branch", "frame"} <= set(sl.granularity)
    assert (sl.ci_lo <= sl.ratio).all() and (sl.ratio <= sl.ci_hi).all()
    assert set(t["absent"].pair) == {"cpu+gpu"} and (t["absent"].reason != "").all()
    assert set(ctx.written) >= {"claims", "summary", "ideal", "slowdown", "breakdown", "c4_parts", "absent"}
    bd = t["breakdown"]
    shares = bd[["solo", "parallel", "imbalance", "sync", "transfer", "merge", "other"]].sum(axis=1)
    assert np.allclose(shares, 1.0, atol=1e-6)


def test_analysis_contradicts_fast_coexecution(tmp_path):
    t = F.analyse(FakeCtx(tmp_path), synthetic(slow=0.6, op_share=0.02, frame_share=0.3, idle=0.2))
    claims = t["claims"]
    claims = claims[claims.form == "host"].set_index("claim")
    assert claims.loc["C3", "verdict"] == "contradicted"
    assert claims.loc["C4", "verdict"] == "contradicted"
    parts = t["c4_parts"]
    assert set(parts.part) == {"i", "ii"}


def test_gpu_pair_is_compared_with_the_gpu_alone(tmp_path):
    t = F.analyse(FakeCtx(tmp_path), synthetic(kind="cpu+gpu"))
    cl = t["claims"]
    assert set(cl.form) == {"paper"}          # CPU+GPU is the paper's form
    c3 = cl.set_index("claim").loc["C3"]
    assert "GPU alone" in c3.text and c3.verdict == "reproduced"
    assert "gpu alone" in set(t["slowdown"].reference)
    assert t["absent"].empty


def test_claims_not_measurable_without_data(tmp_path):
    d = synthetic()
    t = F.analyse(FakeCtx(tmp_path), d[~d.available.astype(bool)])
    claims = t["claims"].set_index("claim")
    assert (claims.verdict == "not measurable").all() and set(claims.form) == {"paper"}
    assert "CPU+GPU absent" in claims.loc["C3", "reason"]
    figs = F.plot(FakeCtx(tmp_path), t)
    assert set(figs) == {"latency_vs_r", "overhead_breakdown", "slowdown"}


def test_plots_are_saved(tmp_path):
    ctx = FakeCtx(tmp_path)
    figs = F.plot(ctx, F.analyse(ctx, synthetic()))
    assert set(figs) == {"latency_vs_r", "overhead_breakdown", "slowdown"}
    assert all(p.stat().st_size > 1000 for p in ctx.saved.values())


# --------------------------------------------------------------------------- breakdown log
class FakeSession:
    def __init__(self):
        self.calls = 0
        self.last = None

    def run(self):
        self.calls += 1
        self.last = {"t_solo_ms": float(self.calls), "engine_wall_ms": 2.0}


def test_breakdown_log_joins_each_timed_call(tmp_path, fake_clock):
    log = F.BreakdownLog(tmp_path / "raw.jsonl")
    s = FakeSession()
    cfg = Config(columns={"model": "m", "label": "operator:r=0.5", "ratio": 0.5}, opener=lambda: s)
    log.sessions[cfg.key] = s
    settings = HarnessSettings(warmup=2, min_samples=4, max_samples=4, block_size=2, max_seconds=100)
    samples = Harness(settings, log, clock=fake_clock([1.0]), progress=False).run([cfg])
    data = F.tidy(samples, log, settings.hash({}))
    assert len(data) == 4
    # warm-ups are not timed: each timed call's own breakdown (calls 3, 4 of block 1; 7, 8 of block 2)
    assert data.sort_values("sample")["t_solo_ms"].tolist() == [3.0, 4.0, 7.0, 8.0]
    assert data.available.all()


# --------------------------------------------------------------------------- end to end
def test_end_to_end_run_on_the_cpu(tmp_path):
    import torch

    from study.common import context

    harness = dict(warmup=1, min_samples=2, max_samples=3, max_seconds=5.0, rel_ci_halfwidth=0.5, block_size=2,
                   cooldown_s=0.0, below_floors=True)
    params = dict(device="local", profile="quick", seed=3, harness=harness,
                  models=["fast_style_transfer", "yolo_det"], pairs=["cpu+gpu", "cpu+cpu"], ratios=[0.5],
                  input_size=64, profile_runs=1, frames_per_run=2, n_boot=200)
    ctx = context(F.FINDING, params)
    ctx.params = {**{k: f.default for k, f in F.PARAMS.items()}, **ctx.params}
    ctx.data_root, ctx.figures_root = tmp_path / "data", tmp_path / "figures"
    res = F.run(ctx)
    data = res["data"]
    measured = data[data.available.astype(bool)]
    assert len(measured) > 0
    for col in ("latency_ms", "label", "granularity", "ratio", "pair", "cores", "t_solo_ms", "t_sync_ms",
                "t_transfer_ms", "compute_b_ms", "overhead_share", "idle_b", "stop_reason"):
        assert col in data.columns, col
    assert {"single", "operator", "branch", "frame"} <= set(measured.granularity)
    assert set(measured[measured.model == "fast_style_transfer"].granularity) == {"single", "operator", "frame"}
    co = measured[measured.granularity.isin(["operator", "branch"])]
    assert co.t_solo_ms.notna().all()
    assert (co.ratio.dropna().between(0, 1)).all()
    if not torch.cuda.is_available():
        gpu = data[data.pair == "cpu+gpu"]
        assert len(gpu) and not gpu.available.any() and gpu.reason.str.contains("GPU").all()
        assert gpu.latency_ms.isna().all()
    tables = res["tables"]
    assert set(tables["claims"].claim) == {"C2", "C3", "C4", "C9"}
    assert set(tables["claims"].verdict) <= VERDICTS
    agree = pd.read_parquet(tmp_path / "data" / "local" / F.FINDING / "agreement.parquet")
    assert agree.ok.all(), agree[~agree.ok]
    layers = pd.read_parquet(tmp_path / "data" / "local" / F.FINDING / "layers.parquet")
    assert (layers.t_a_ms > 0).all() and layers.r_balance.between(0, 1).all()
    for name in ("latency_vs_r", "overhead_breakdown", "slowdown"):
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / "local" / F.FINDING / f"{name}.{ext}").stat().st_size > 1000
    assert (tmp_path / "data" / "local" / f"{F.FINDING}.parquet").exists()
    raw = tmp_path / "data" / "local" / "raw" / f"{F.FINDING}.jsonl"
    types = {json.loads(line)["type"] for line in raw.read_text().splitlines()}
    assert {"sample", "breakdown", "complete"} <= types


def test_stage_cap_on_samples():
    class Ctx:
        settings = HarnessSettings(min_samples=20, max_samples=200)
        params = {"max_samples": 30}

    assert F.effective_settings(Ctx).max_samples == 30
    Ctx.params = {"max_samples": 0}
    assert F.effective_settings(Ctx).max_samples == 200
    Ctx.params = {"max_samples": 5}
    assert F.effective_settings(Ctx).max_samples == 20  # never below the minimum
