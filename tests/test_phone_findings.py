"""The findings on a phone (``device=adb:SERIAL``), end to end through adbutils, the REAL adb
server and the loopback stand-in phone (tests/adb_standin.py; its benchmark_model prints the
tool's format with seeded numbers, slower by 40% per process running on the phone): ``run(ctx)``
of rigor, contention, profiling_error (measured), frame_reuse and mulayer_overhead (not
measurable, with the reason), with tiny parameters. Plus the device-free pieces of the phone
path: aggregate variance components, the restart load controller, competitors' dispatch."""
from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study import phone
from study import scenario as S
from study.config import check_section
from study.models import ModelSpec
from study.paths import ASSETS

needs_adb = pytest.mark.skipif(shutil.which("adb") is None,
                               reason="needs Debian's adb package (scripts/setup.sh --test installs it)")
HARNESS = dict(warmup=1, min_samples=4, max_samples=8, max_seconds=5.0, rel_ci_halfwidth=0.001, block_size=4,
               below_floors=True)
CLAIM_COLUMNS = ["claim", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "n", "paper_value", "verdict",
                 "reason"]
VERDICTS = {"reproduced", "contradicted", "inconclusive", "not measurable"}


# =========================================================================== device-free pieces
def test_variance_components_from_aggregates_match_the_sample_form():
    from study import rigor

    rng = np.random.default_rng(5)
    rows, agg = [], []
    for r in range(12):
        mu = np.log(10.0) + rng.normal(0, 0.04)
        x = np.exp(mu + rng.normal(0, 0.01, 60))
        rows += [dict(model="m", run_id=f"r{r}", latency_ms=float(v)) for v in x]
        agg.append(dict(model="m", run_id=f"r{r}", n=60, latency_ms=float(x.mean()), latency_std_ms=float(x.std()),
                        aggregate=True))
    full = rigor.variance_components(pd.DataFrame(rows), ["model"], target=0.02, run_cost=20).iloc[0]
    fromagg = rigor.variance_components_aggregate(pd.DataFrame(agg), ["model"], target=0.02, run_cost=20).iloc[0]
    assert fromagg.runs == 12 and fromagg.samples == 720
    assert fromagg.between_cv == pytest.approx(full.between_cv, rel=0.05)
    assert fromagg.within_cv == pytest.approx(full.within_cv, rel=0.05)
    assert fromagg.plan_runs == pytest.approx(full.plan_runs, rel=0.2) and "delta method" in fromagg.method


def test_restart_load_controller_starts_and_ends_per_segment():
    class Pool:
        def __init__(self):
            self.live, self.next, self.log = {}, 100, []

        def reasons(self):
            return {"cpu": None, "memory": None, "gpu": "no GPU"}

        def start(self, kind, n, cores=None):
            out = []
            for _ in range(n):
                self.next += 1
                self.live[self.next] = (kind, tuple(cores or ()))
                out.append(self.next)
            self.log.append(("start", kind, n))
            return out

        def stop(self, pids):
            for p in pids:
                self.live.pop(p)
            self.log.append(("stop", len(pids)))

    pool = Pool()
    ctl = S.RestartLoadController(pool, lambda g: {"big": [7], "little": [0, 1]}[g])
    ctl.prepare({("cpu", "big"): 2, ("memory", "little"): 1})
    with pytest.raises(RuntimeError, match="no GPU"):
        ctl.prepare({("gpu", "all"): 1})
    assert not pool.live
    a = ctl.apply((("cpu", "big", 2),))
    assert len(a) == 2 and all(v == ("cpu", (7,)) for v in pool.live.values())
    b = ctl.apply((("cpu", "big", 1), ("memory", "little", 1)))
    assert set(b) < set(a) | set(pool.live) and sorted(k for k, _ in pool.live.values()) == ["cpu", "memory"]
    assert ctl.apply(()) == [] and not pool.live
    ctl.apply((("cpu", "big", 1),))
    ctl.resume_all()
    assert not pool.live and not ctl.pids


def test_phone_helpers_without_a_phone():
    class Ctx:
        device_spec = "adb:R58M"

    class Local:
        device_spec = "local"

    from study.devices import BENCHMARK_MODEL, PYTHON, supports

    assert not supports(Ctx.device_spec, PYTHON) and supports(Ctx.device_spec, BENCHMARK_MODEL)
    assert supports(Local.device_spec, PYTHON)
    assert phone.not_measurable(Ctx(), "frame_reuse") == phone.unsupported_reason("frame_reuse", "adb:R58M")
    assert phone.not_measurable(Ctx(), "rigor") is None and phone.not_measurable(Local(), "frame_reuse") is None
    assert phone.engine_reason("litert") is None and "no Python" in phone.engine_reason("torch")
    why = phone.unsupported_reason("frame_reuse", "adb:R58M")
    assert why.startswith("not measurable on a phone (adb:R58M)") and "Python" in why
    c = phone.not_measurable_claims([dict(claim="C8", text="t", paper_value="p")], why)
    assert list(c.columns) == CLAIM_COLUMNS and c.verdict.iloc[0] == "not measurable" and c.reason.iloc[0] == why


# =========================================================================== through the stand-in
@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    from adb_standin import standin_phone

    tmp = tmp_path_factory.mktemp("phonefindings")
    with standin_phone(tmp) as (fake, device):
        models = {}
        for name in ("probe", "probe2"):
            path = tmp / f"{name}.tflite"
            shutil.copy(ASSETS / "probe.tflite", path)
            models[name] = ModelSpec(name=name, source="user", task="test", files={"tflite": str(path)})
        yield dict(phone=fake, device=device(gfxinfo_package="org.videolan.vlc"), bare=device(), models=models,
                   tmp=tmp)


def phone_ctx(rig, finding: str, tmp: Path, device=None, **params):
    from study.common import context

    mod = importlib.import_module(f"study.{finding}")
    own = check_section(finding, params, mod.PARAMS)
    dev = device or rig["device"]
    ctx = context(finding, {"device": dev.spec, "profile": "quick", "seed": 3, "harness": dict(HARNESS), **own})
    ctx.__dict__["device"] = dev
    ctx.__dict__["manifest"] = dict(rig["models"])
    ctx.data_root, ctx.figures_root = tmp / "data", tmp / "figures"
    return ctx


def outputs(ctx, finding: str, raw_logs: list[str]) -> pd.DataFrame:
    """The stage's DVC outputs exist: dataset (non-empty, device columns), PNG+PDF figures,
    fingerprint, raw logs. Returns the dataset."""
    data = pd.read_parquet(ctx.data_root / ctx.device_spec / f"{finding}.parquet")
    assert len(data) and {"device", "device_slug"} <= set(data.columns)
    assert set(data["device"]) == {ctx.device_spec}
    figs = list((ctx.figures_root / ctx.device_spec / finding).glob("*.png"))
    assert figs and all(f.with_suffix(".pdf").exists() for f in figs)
    fp = json.loads((ctx.data_root / ctx.device_spec / finding / "fingerprint.json").read_text())
    assert fp["kind"] == "adb" and fp["soc"] == "SM8150"
    for name in raw_logs:
        assert (ctx.data_root / ctx.device_spec / "raw" / f"{name}.jsonl").stat().st_size > 0, name
    return data


def claims_ok(claims: pd.DataFrame, expected: set[str]) -> pd.DataFrame:
    assert set(CLAIM_COLUMNS) <= set(claims.columns) and set(claims["claim"]) == expected
    assert set(claims["verdict"]) <= VERDICTS
    assert claims["reason"].astype(str).str.len().gt(10).all()
    return claims


def no_competitor_left(rig) -> None:
    assert not rig["phone"].procs, rig["phone"].procs


@needs_adb
def test_rigor_on_a_phone(rig, tmp_path):
    from study import rigor

    ctx = phone_ctx(rig, "rigor", tmp_path, models=["probe"], engines=["litert", "onnxruntime"],
                    processors=["cpu", "gpu", "npu"], sustained_seconds=1.2, burst_seconds=0.4, sensor_interval_s=0.3,
                    between_runs=3, samples_per_run=6, coverage_models=["probe"], coverage_engines=["litert"],
                    coverage_core_groups=["all", "big", "g0"])
    res = rigor.run(ctx)
    trace = outputs(ctx, "rigor", ["rigor-sustained", "rigor-between", "rigor-coverage"])
    inf = trace[trace["kind"] == "inference"]
    assert set(inf["processor"]) == {"cpu", "gpu", "npu"} and set(inf["engine"]) == {phone.ENGINE}
    assert inf["aggregate"].all() and (inf["n"] == HARNESS["block_size"]).all() and inf["latency_ms"].gt(0).all()
    assert trace.loc[trace["kind"] == "sensors", "cpu_mhz_mean"].notna().all()
    t = res["tables"]
    m = t["methods"]
    assert set(m["device"]) == {ctx.device_spec} and "taskset" in m.set_index("practice").loc["core placement", "how"]
    assert "per-call aggregates" in m.set_index("practice").loc["repetitions", "status"]
    assert {"sustained run (rigor)", "between-run variation (rigor)"} <= set(m["practice"])
    assert set(t["burst_sustained"]["processor"]) == {"cpu", "gpu", "npu"}
    br = t["between_run"]
    assert len(br) == 3 and (br["runs"] == 3).all() and br["method"].str.contains("aggregates").all()
    cov = t["coverage"]
    assert {(r.processor, r.core_group) for r in cov.itertuples()} == {("cpu", "all"), ("cpu", "big"), ("gpu", "all"),
                                                                     ("npu", "all")}
    assert t["coverage_summary"]["interval"].str.contains("phone").all()
    absent = pd.read_parquet(ctx.data_root / ctx.device_spec / "rigor" / "absent.parquet")
    onnx = absent[absent["engine"] == "onnxruntime"]
    assert len(onnx) and onnx["reason"].str.contains("no Python").all()
    assert absent["reason"].str.contains("'g0' not on this phone").any()
    assert "burst_sustained" in res["figures"] and "coverage" in res["figures"]


@needs_adb
def test_contention_on_a_phone(rig, tmp_path):
    from study import contention

    ctx = phone_ctx(rig, "contention", tmp_path, models=["probe"], suts=["cpu/litert", "gpu/litert", "gpu/torch"],
                    kinds=["cpu", "memory", "gpu"], n_competitors=[0, 2], core_placements=["same", "cross"], rounds=2,
                    samples_per_visit=4, visit_warmup=1, ramp_s=0.0, corun_models=["probe"],
                    corun_suts=["cpu/litert", "gpu/litert"], fps=[30], claim_fps=30, corun_seconds=0.5,
                    app_warmup_s=0.0, corun_rounds=1, n_boot=200)
    res = contention.run(ctx)
    data = outputs(ctx, "contention", ["contention", "contention_app"])
    no_competitor_left(rig)
    lat = data[data["measurement"] == "latency"]
    assert set(lat["sut"]) == {"cpu/litert", "gpu/litert", "npu/litert"} and lat["aggregate"].astype(bool).all()
    assert set(lat["kind"]) == {"none", "cpu", "memory", "gpu"}
    assert set(lat.loc[lat["kind"] == "cpu", "competitor_cores"]) == {"same", "cross"}
    started = [a for a in rig["phone"].executed if a[:1] == ["&"] and "hetero-pitfalls-competitor" in a]
    assert any(a[1:3] == ["taskset", "80"] for a in started)  # same cores: big = cpu 7
    sd = res["tables"]["slowdown"]
    torch_row = sd[sd["sut"] == "gpu/torch"]
    assert len(torch_row) and not torch_row["available"].any() and torch_row["reason"].str.contains("no Python").all()
    loaded = sd[sd["available"].astype(bool) & (sd["n_competitors"] == 2)]
    assert len(loaded) and loaded["slowdown"].notna().all() and (loaded["n"] == 2).all()  # one call per visit
    claims = claims_ok(res["tables"]["claims"], {"C5", "C6"})
    claims = claims[claims["form"].fillna("paper") == "paper"].set_index("claim")  # no form: the paper's
    assert claims.loc["C5", "verdict"] != "not measurable" and "per-call means" in claims.loc["C5", "reason"]
    assert "NPU (NNAPI" in claims.loc["C5", "reason"]
    assert claims.loc["C6", "verdict"] != "not measurable" and "gfxinfo" in claims.loc["C6", "reason"]
    fr = data[data["measurement"] == "frame"]
    assert set(fr["inference_sut"]) == {"idle", "cpu/litert", "gpu/litert", "npu/litert"}
    assert set(fr["fps"]) == {60.0} and set(fr["render"]) == {contention.PHONE_RENDER}
    assert len(data[data["measurement"] == "corun_inference"]) == 3
    gpu_calls = [b for b in rig["phone"].benchmarks if b["flags"].get("min_secs") == "0.5"]
    assert len(gpu_calls) == 3  # the inference beside the app ran for corun_seconds
    assert set(res["figure_files"]) == {"slowdown", "frame_drops"}

    # without a co-running app: C6 is not measurable, with the reason
    bare = phone_ctx(rig, "contention", tmp_path / "bare", device=rig["bare"], corun_models=["probe"])
    frames, samples = contention.measure_corun_phone(bare, pd.DataFrame())
    assert frames["measurement"].tolist() == ["corun_failed"] and "adb.gfxinfo_package" in frames["reason"].iloc[0]
    c6 = contention.claims_table(frames, pd.DataFrame(), pd.DataFrame(), bare.params).set_index("claim").loc["C6"]
    assert c6["verdict"] == "not measurable" and "adb.gfxinfo_package" in c6["reason"]


@needs_adb
def test_profiling_error_on_a_phone(rig, tmp_path):
    from study import profiling_error as F

    ctx = phone_ctx(rig, "profiling_error", tmp_path, models=["probe"], scenario_seconds=5.0, phase_seconds=[0.8, 1.5],
                    burst_seconds=[0.3, 0.5], cpu_competitors=[1, 1], sensor_interval_s=1.0, op_runs=2, window=2,
                    n_boot=200, block_seconds=0.5)
    res = F.run(ctx)
    data = outputs(ctx, "profiling_error", ["profiling_error", "profiling_error-offline"])
    no_competitor_left(rig)
    assert {"offline", "op_time", "scenario", "sensors", "absent"} <= set(data["part"])
    cands = {"litert/cpu/big", "litert/cpu/mid1", "litert/cpu/little", "litert/cpu/all", "litert/gpu/all",
             "litert/npu/all"}
    tr = data[data["part"] == "scenario"]
    assert set(tr["candidate"]) == cands and (tr["n"] == HARNESS["block_size"]).all()
    assert tr.groupby("step")["candidate"].nunique().eq(len(cands)).all()  # every candidate at every step
    assert tr["latency_ms"].gt(0).all() and (tr["call_ms"] > 0).all()
    assert set(tr["phase_kind"]) >= {"idle", "cpu"}
    ops = data[data["part"] == "op_time"]
    assert ops["time_ms"].notna().all() and not ops["op_name"].str.startswith("Delegate/").any()
    av = res["tables"]["availability"].set_index("candidate")
    assert "no Python" in av.loc["torch/gpu/all", "reason"] and "not on this phone" in av.loc["litert/cpu/g0", "reason"]
    off = res["tables"]["offline"]
    assert set(off["candidate"]) == cands and off["opsum_ms"].notna().all()
    claims = claims_ok(res["tables"]["claims"], {"C7", "C9"})
    assert claims["reason"].str.contains("benchmark_model block").all()
    assert "trace" in res["figures"]
    raw = (ctx.data_root / ctx.device_spec / "raw" / "profiling_error.jsonl").read_text().splitlines()
    segs = [r for r in map(json.loads, raw) if r.get("type") == "segment" and r.get("load") != "none"]
    assert segs and all(r["pids"] for r in segs)  # the load was on during loaded segments


@needs_adb
@pytest.mark.parametrize("finding,claims,logs", [("frame_reuse", {"C8"}, ["frame_reuse"]),
                                                 ("mulayer_overhead", {"C2", "C3", "C4", "C9"},
                                                  ["mulayer_overhead", "mulayer_overhead-profile"])])
def test_findings_a_phone_cannot_run(rig, tmp_path, finding, claims, logs):
    mod = importlib.import_module(f"study.{finding}")
    ctx = phone_ctx(rig, finding, tmp_path)
    n_bench = len(rig["phone"].benchmarks)
    res = mod.run(ctx)
    assert len(rig["phone"].benchmarks) == n_bench  # nothing ran on the phone
    data = outputs(ctx, finding, logs)
    why = phone.unsupported_reason(finding, ctx.device_spec)
    assert (~data["available"].astype(bool)).all() and set(data["reason"]) == {why}
    c = claims_ok(res["tables"]["claims"], claims)
    assert set(c["verdict"]) == {"not measurable"} and set(c["reason"]) == {why}
    assert (ctx.figures_root / ctx.device_spec / finding / "not_measured.pdf").exists()
    for name in logs:
        raw = ctx.data_root / ctx.device_spec / "raw" / f"{name}.jsonl"
        recs = [json.loads(x) for x in raw.read_text().splitlines()]
        assert recs[0]["type"] == "not_measurable" and recs[0]["reason"] == why and recs[-1]["type"] == "complete"
    if finding == "frame_reuse":  # the notebook's cells read these
        assert {"lat_mean", "reduction", "qualifies", "pareto"} <= set(res["tables"]["summary"].columns)
        assert res["figure_files"]["not_measured"].exists()
    else:
        assert {"slowdown", "latency_vs_r", "overhead_breakdown"} <= set(res["figures"])


@needs_adb
def test_competitors_dispatch_to_the_phone(rig):
    from study import competitors as C

    kinds = C.available_kinds(rig["device"])
    assert kinds["cpu"] is None and kinds["memory"] is None and "gpu_model" in kinds["gpu"]
    assert C.available_kinds(rig["device"], gpu_model=rig["models"]["probe"].path("tflite"))["gpu"] is None
    with C.competitors("cpu", 2, cores=[4, 5], device=rig["device"]) as pool:
        pids = pool.pids()
        assert len(pids) == 2 and set(pids) <= set(rig["phone"].procs)
        assert rig["phone"].procs[pids[0]]["argv"][:2] == ["taskset", "30"]
    no_competitor_left(rig)
