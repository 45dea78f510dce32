"""C2..C10 from synthetic *finding tables*: each finding's own claims function (the one the
stage and the paper stage's recompute call) is fed the tables it takes (timed samples,
frames, predictions, traces, summaries), built so that the claim is true, false or
borderline; the final verdict (``study.claims.evaluate``: CI side, margin, Holm) must then
be reproduced, contradicted or inconclusive. C1 has the same test in test_operator_support.py."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from study import claims as C
from study import contention as CO
from study import cross_level as XL
from study import estimators as E
from study import frame_reuse as FR
from study import mulayer_overhead as MO
from study import profiling_error as PE

GPU_HOST = C.device_info({"device": "local", "kind": "local", "logical_cpus": 16, "profile": "reference",
                          "nvidia_smi": {"name": "NVIDIA H100"},
                          "processors": [{"name": "cpu", "available": True, "reason": ""},
                                         {"name": "gpu", "available": True, "reason": ""},
                                         {"name": "npu", "available": False, "reason": "no NPU (test)"}]})
CASES = [("true", "reproduced"), ("false", "contradicted"), ("borderline", "inconclusive")]


def noisy(center: float, n: int = 40, rel: float = 0.01, seed: int = 0) -> np.ndarray:
    return center * (1 + rel * np.random.default_rng(seed).standard_normal(n))


def final(tables: dict[str, pd.DataFrame | None], cid: str) -> pd.Series:
    out = C.evaluate(tables, device=GPU_HOST)
    return out[out["claim"] == cid].iloc[0]


def check(r: pd.Series, expected: str) -> None:
    assert r["verdict"] == expected, r["reason"]
    if expected in ("reproduced", "contradicted"):
        assert not np.isnan(r["p_holm"]), r["reason"]


# --------------------------------------------------------------------------- mulayer_overhead: C2, C3, C4, C9 (a)
def mulayer_samples(co: float = 15.0, gpu: float = 10.0, cpu: float = 20.0, op_share: float = 0.3,
                    frame_share: float = 0.1, idle_b: float = 0.8, branch: float = 12.0) -> pd.DataFrame:
    """Timed samples of the cpu+gpu pair (the paper's form) for the primary model: each
    processor alone, co-execution at r*, frame level (alternating) and branch level."""
    base = dict(pair="cpu+gpu", pair_kind="cpu+gpu", model="fast_style_transfer", input_size=128, proc_a="gpu",
                proc_b="cpu", threads_a=1, threads_b=2, available=True)
    rows = []
    confs = [("single:gpu", "single", np.nan, gpu, 0.0, 0.0, 1), ("single:cpu", "single", np.nan, cpu, 0.0, 0.0, 1),
             ("operator:r*", "operator", 0.3, co, op_share, 0.1, 1),
             ("frame:alternate", "frame", np.nan, 4 * gpu, frame_share, 0.1, 4),
             ("branch", "branch", np.nan, branch, 0.05, idle_b, 1)]
    for i, (lab, gran, ratio, t, share, idle, frames) in enumerate(confs):
        for k, x in enumerate(noisy(t, seed=i)):
            rows.append({**base, "label": lab, "granularity": gran, "ratio": ratio, "latency_ms": x, "frames": frames,
                         "overhead_share": share + 0.002 * np.sin(k + i), "idle_b": idle + 0.002 * np.cos(k + i)})
    return pd.DataFrame(rows)


MULAYER = {
    # C2: co-execution at r* / the ideal bound 1/(1/10 + 1/20) = 6.67 ms; threshold 1.10, margin 0.05
    "C2": {"true": dict(co=10.0), "false": dict(co=6.7), "borderline": dict(co=6.6667 * 1.10)},
    # C3: co-execution at r* / the GPU alone (10 ms); threshold 1, margin 0.10
    "C3": {"true": dict(co=15.0), "false": dict(co=8.0), "borderline": dict(co=10.0)},
    # C4: (i) overhead share operator (r*) - frame > 0, margin 0.02; (ii) idle share of b at branch level > 0.5
    "C4": {"true": dict(op_share=0.3, frame_share=0.1), "false": dict(op_share=0.05, frame_share=0.2),
           "borderline": dict(op_share=0.1, frame_share=0.1)},
}


def mulayer_claims(data: pd.DataFrame) -> pd.DataFrame:
    return MO.claims_from_tables(lambda t: data if t is None else None, {"n_boot": 500, "idle_threshold": 0.5}, 0)


@pytest.mark.parametrize("cid", ["C2", "C3", "C4"])
@pytest.mark.parametrize("case, expected", CASES)
def test_mulayer_claims_true_false_borderline(cid, case, expected):
    rows = mulayer_claims(mulayer_samples(**MULAYER[cid][case]))
    assert set(rows[rows["claim"] == cid]["form"]) == {"paper"}
    check(final({"mulayer_overhead": rows}, cid), expected)


# --------------------------------------------------------------------------- contention: C5, C6
def contention_latency(cpu_slowdown: float, gpu_slowdown: float) -> pd.DataFrame:
    """Latency samples without and with 3 same-processor competitors, CPU and GPU systems."""
    rows = []
    for j, (sut, kind, base, slow) in enumerate((("cpu/litert", "cpu", 10.0, cpu_slowdown),
                                                 ("gpu/litert", "gpu", 5.0, gpu_slowdown))):
        for n, t in ((0, base), (3, base * slow)):
            for x in noisy(t, seed=10 * j + n):
                rows.append(dict(measurement="latency", model="mobilenet_v2", sut=sut, processor=sut.split("/")[0],
                                 engine="litert", kind="none" if n == 0 else kind,
                                 competitor_cores="none" if n == 0 else "same", n_competitors=n, latency_ms=x))
    return pd.DataFrame(rows)


def corun_frames(idle_every: int | None, busy_every: int | None, runs: int = 3, frames: int = 300) -> pd.DataFrame:
    """A 30-fps app drawing on the GPU, idle and beside GPU inference; every k-th frame missed."""
    rows = []
    run = 0
    for sut, model, every in (("idle", "", idle_every), ("gpu/torch", "mobilenet_v2", busy_every)):
        for _ in range(runs):
            run += 1
            for f in range(frames):
                missed = bool(every) and f % every == 0
                rows.append(dict(measurement="frame", fps=30.0, render="gpu", inference_sut=sut,
                                 inference_model=model, run=run, frame=f, missed=missed, skipped=False,
                                 frame_ms=40.0 if missed else 20.0, lateness_ms=7.0 if missed else 0.0))
    return pd.DataFrame(rows)


def contention_claims(data: pd.DataFrame) -> pd.DataFrame:
    params = {"n_boot": 500, "suts": ["cpu/litert", "gpu/litert"], "corun_models": ["mobilenet_v2"],
              "corun_suts": ["gpu/torch"], "claim_fps": 30, "c6_threshold_pp": 5.0}
    return CO.claims_from_tables(lambda t: data if t is None else None, params, 0)


@pytest.mark.parametrize("case, expected", CASES)
def test_c5_true_false_borderline(case, expected):
    # slowdown CPU / slowdown GPU: 3 / 1.2 = 2.5; 1.2 / 2 = 0.6 (below 1 - 0.10); 1.5 / 1.5 = 1
    cpu, gpu = {"true": (3.0, 1.2), "false": (1.2, 2.0), "borderline": (1.5, 1.5)}[case]
    rows = contention_claims(contention_latency(cpu, gpu))
    check(final({"contention": rows}, "C5"), expected)


@pytest.mark.parametrize("case, expected", CASES)
def test_c6_true_false_borderline(case, expected):
    # missed share beside GPU inference minus idle: 50 pp; 0 pp (below 5 - 2); 5 pp (at the threshold)
    idle, busy = {"true": (None, 2), "false": (None, None), "borderline": (None, 20)}[case]
    rows = contention_claims(corun_frames(idle, busy))
    paper = rows[(rows["claim"] == "C6") & (rows["form"] == "paper")]
    assert len(paper) == 1
    check(final({"contention": rows}, "C6"), expected)


def test_contention_recompute_needs_its_dataset():
    assert CO.claims_from_tables(lambda t: None, {}, 0) is None
    assert CO.claims_from_tables(lambda t: pd.DataFrame({"x": [1]}) if t is None else None, {}, 0) is None


# --------------------------------------------------------------------------- profiling_error: C7, C9 (b)
def predictions(offline_ape: float, runtime_ape: float, steps: int = 600, seed: int = 0) -> pd.DataFrame:
    """Absolute percentage errors of every estimator on the same trace (10 steps per second)."""
    rng = np.random.default_rng(seed)
    rows = []
    for est in E.ESTIMATORS:
        center = offline_ape if est in E.OFFLINE else runtime_ape
        ape = np.abs(center + 3.0 * rng.standard_normal(steps))
        rows.append(pd.DataFrame(dict(config="m|c", step=np.arange(steps), t_s=np.arange(steps) / 10.0,
                                      estimator=est, ape=ape)))
    return pd.concat(rows, ignore_index=True)


def scenario_trace(costs: dict[str, dict[str, float]], steps: int = 300, seed: int = 1) -> pd.DataFrame:
    """Latency of each candidate in each context (load on / off), alternating contexts every 3 s."""
    rng = np.random.default_rng(seed)
    rows = []
    for cand, by_ctx in costs.items():
        for s in range(steps):
            ctx = "idle" if (s // 30) % 2 == 0 else "cpu"
            rows.append(dict(model="mobilenet_v2", candidate=cand, load=ctx, step=s, t_s=s / 10.0,
                             latency_ms=by_ctx[ctx] * (1 + 0.01 * rng.standard_normal())))
    return pd.DataFrame(rows)


AVAIL = pd.DataFrame([dict(model="mobilenet_v2", candidate=c, available=True, reason="")
                      for c in ("litert/cpu/all", "litert/gpu/all")])


def profiling_claims(pred: pd.DataFrame | None = None, trace: pd.DataFrame | None = None) -> pd.DataFrame:
    params = {"window": 8, "ewma_alpha": 0.3, "block_seconds": 3.0, "c9_material": 0.05}
    tests = E.paired_tests(pred, block_seconds=3.0, n_boot=2000, seed=0) if pred is not None else pd.DataFrame()
    sw = E.switching_gain(trace, block_seconds=3.0, n_boot=2000, seed=0, material=0.05) if trace is not None else {}
    return PE.claims(tests, pd.DataFrame(), {}, sw, AVAIL, params)


@pytest.mark.parametrize("case, expected", CASES)
def test_c7_true_false_borderline(case, expected):
    # MAPE offline - runtime: +20 pp; -10 pp (below -1); 0
    off, rt = {"true": (30.0, 10.0), "false": (10.0, 20.0), "borderline": (15.0, 15.0)}[case]
    rows = profiling_claims(pred=predictions(off, rt))
    check(final({"profiling_error": rows}, "C7"), expected)


SWITCHING = {  # candidate -> context -> ms
    # the best single candidate (gpu: 32) over each context's fastest (10 + 12 = 22): +45%
    "true": {"litert/cpu/all": {"idle": 10.0, "cpu": 30.0}, "litert/gpu/all": {"idle": 20.0, "cpu": 12.0}},
    # one candidate fastest in every context: no gain
    "false": {"litert/cpu/all": {"idle": 10.0, "cpu": 11.0}, "litert/gpu/all": {"idle": 20.0, "cpu": 22.0}},
    # 21 over 20: a 5% gain, at the materiality threshold
    "borderline": {"litert/cpu/all": {"idle": 10.0, "cpu": 11.0}, "litert/gpu/all": {"idle": 11.0, "cpu": 10.0}},
}


@pytest.mark.parametrize("case, expected", CASES)
def test_c9_true_false_borderline(case, expected):
    """C9 = (a) a parallel configuration clearly slower than the best single processor
    (mulayer_overhead) and (b) no single strategy best everywhere (profiling_error)."""
    # (a): branch level at 3x, 1.0x and 1.1x (the 'clearly' threshold) of the best single processor (10 ms)
    branch = {"true": 30.0, "false": 10.0, "borderline": 11.0}[case]
    mul = mulayer_samples(co=9.0, branch=branch)
    mul = mul[mul["label"] != "frame:alternate"]      # the alternating frames are slow by design here
    prof = profiling_claims(trace=scenario_trace(SWITCHING[case]))
    r = final({"mulayer_overhead": mulayer_claims(mul), "profiling_error": prof}, "C9")
    assert r["verdict"] == expected, r["reason"]
    if expected != "inconclusive":
        assert not np.isnan(r["p_holm"])


# --------------------------------------------------------------------------- frame_reuse: C8
def reuse_summary(case: str) -> pd.DataFrame:
    """The stage's summary table: one row per reuse point (and the full computation), with the
    reduction's and the fidelity's intervals and the joint p; threshold 20%, margin 5 points."""
    red, lo, hi, p = {"true": (0.5, 0.4, 0.6, 1e-4), "false": (0.05, 0.0, 0.1, 0.99),
                      "borderline": (0.2, 0.15, 0.25, 0.5)}[case]
    rows = [dict(model="face_detection_short_range", clip="carphone", processor="cpu", mechanism="full",
                 threshold=0.0, ratio=1.0, reduction=0.0, red_ci_lo=0.0, red_ci_hi=0.0, fidelity=1.0, fid_ci_lo=1.0,
                 fid_ci_hi=1.0, floor=0.8, metric="det_iou", n_frames=32, reuse_share=0.0, p_joint=np.nan,
                 qualifies=False, contradicts=False)]
    for thr in (2.0, 4.0):
        rows.append(dict(model="face_detection_short_range", clip="carphone", processor="cpu", mechanism="frame",
                         threshold=thr, ratio=1 - red, reduction=red, red_ci_lo=lo, red_ci_hi=hi, fidelity=0.95,
                         fid_ci_lo=0.9, fid_ci_hi=0.97, floor=0.8, metric="det_iou", n_frames=32, reuse_share=red,
                         p_joint=p, qualifies=lo > 0.2, contradicts=hi < 0.2))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("case, expected", CASES)
def test_c8_true_false_borderline(case, expected):
    s = reuse_summary(case)
    rows = FR.claims_from_tables(lambda t: s if t == "summary" else None,
                                 {"claim_models": ["face_detection_short_range"]}, 0)
    check(final({"frame_reuse": rows}, "C8"), expected)


# --------------------------------------------------------------------------- cross_level: C10
def cross_tables(joint_ms: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Units at the fidelity floor: fp32 on the GPU (backend-only, 10 ms), int8 on the fixed
    frontend backend litert/cpu (frontend-only, 14 ms), fp16 on the GPU (joint)."""
    units = [("fp32", "none", "litert", "gpu", 10.0), ("int8_dynamic", "quant", "litert", "cpu", 14.0),
             ("fp16", "quant", "litert", "gpu", joint_ms), ("fp32", "none", "litert", "cpu", 20.0)]
    summary = pd.DataFrame([dict(model="mobilenet_v2", variant=v, frontend=f, engine=e, processor=p, qualifies=True,
                                 status="measured") for v, f, e, p, _ in units])
    data = pd.DataFrame([dict(record="latency", model="mobilenet_v2", variant=v, engine=e, processor=p, latency_ms=x)
                         for i, (v, f, e, p, t) in enumerate(units) for x in noisy(t, seed=i)])
    return summary, data


@pytest.mark.parametrize("case, expected", CASES)
def test_c10_true_false_borderline(case, expected):
    # best joint / best single-level (10 ms): 0.5; 1.2 (above 0.95 + 0.05); 0.95 (the threshold)
    summary, data = cross_tables({"true": 5.0, "false": 12.0, "borderline": 9.5}[case])
    tables = {None: data, "summary": summary}
    rows = XL.claims_from_tables(lambda t: tables.get(t), {"models": ["mobilenet_v2"], "n_boot": 500}, 0)
    prim = rows[(rows["claim"] == "C10") & rows["primary"].astype(bool)]
    assert set(prim["form"]) == {"paper"}
    check(final({"cross_level": rows}, "C10"), expected)


def test_paper_stage_recomputes_contention_from_its_dataset(tmp_path):
    """The paper stage recomputes C5/C6 from a device folder's contention.parquet with the
    current code (no stored claims rows needed)."""
    from study import datasets, explore, paper

    data = pd.concat([contention_latency(3.0, 1.2), corun_frames(None, 2)], ignore_index=True)
    datasets.write_table(data, tmp_path / "contention.parquet", {"profile": "quick", "seed": 0})
    d = explore.DeviceFolder(source="path:test", path=tmp_path, slug="test", findings=["contention"],
                             fingerprints={"contention": {"profile": "quick", "seed": 0}})
    rows, why = paper.recompute_claims(d, "contention")
    assert rows is not None, why
    assert {"C5", "C6"} <= set(rows["claim"])
    assert final({"contention": rows}, "C5")["verdict"] == "reproduced"


RECOMPUTE_IMPORTS = r"""
import importlib, json, pathlib, sys, tempfile
sys.path.insert(0, "tests")
import study.paper
from study import claims as C
from study.config import STAGE_MODULES
for f in C.findings():
    importlib.import_module(STAGE_MODULES[f])
import test_claims_findings as T
for case, exp in T.CASES:
    for cid in ("C2", "C3", "C4"):
        T.test_mulayer_claims_true_false_borderline(cid, case, exp)
    for fn in (T.test_c5_true_false_borderline, T.test_c6_true_false_borderline, T.test_c7_true_false_borderline,
               T.test_c8_true_false_borderline, T.test_c9_true_false_borderline, T.test_c10_true_false_borderline):
        fn(case, exp)
T.test_paper_stage_recomputes_contention_from_its_dataset(pathlib.Path(tempfile.mkdtemp()))
root = pathlib.Path.cwd().resolve()
files = {str(pathlib.Path(m.__file__).resolve().relative_to(root)) for n, m in list(sys.modules.items())
         if n.startswith("study") and getattr(m, "__file__", None)}
print(json.dumps(sorted(files)))
"""


def test_paper_stage_deps_cover_the_recompute():
    """dvc.yaml's paper stage lists every study module that the paper stage and the findings'
    recomputes import (in a fresh process), the main datasets they read and their sections."""
    import json
    import subprocess
    import sys

    import yaml

    from study import claims as C
    from study import paths

    r = subprocess.run([sys.executable, "-c", RECOMPUTE_IMPORTS], capture_output=True, text=True, cwd=paths.ROOT,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    files = set(json.loads(r.stdout.strip().splitlines()[-1]))
    st = yaml.safe_load((paths.ROOT / "dvc.yaml").read_text())["stages"]["paper"]
    deps = set(st["deps"])
    folders = [d.rstrip("/") + "/" for d in deps]  # a listed folder covers every file under it
    missing = sorted(f for f in files if f not in deps and not any(f.startswith(d) for d in folders)
                     and f != "study/__init__.py")
    assert not missing, f"paper stage deps lack {missing}"
    for finding in C.findings():
        assert finding in st["params"], finding
    for finding in ("mulayer_overhead", "contention", "cross_level"):     # their recomputes read read(None)
        assert f"data/${{device}}/{finding}.parquet" in deps, finding
