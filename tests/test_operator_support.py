"""Finding 1 (operator support): the logic on synthetic data, the raw-log resume, the
parameters, a tiny end-to-end run on the CPU, and the GPU paths (on a CUDA machine)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import has_cuda, has_models, needs_models
from study import operator_support as F
from study.config import ParamError, resolve
from study.engines import PLACEMENT_COLUMNS
from study.measure import RawLog
from study.paths import PARAMS

HAS_MODELS = has_models()


# --------------------------------------------------------------------------- synthetic tidy data
def _placement(model, engine, processor, ops, method="m", static=False):
    """ops: list of (op_type, delegated, time_ms per repeat (list) or None)."""
    rows = []
    for i, (t, d, *_rest) in enumerate(ops):
        rows.append(dict(model=model, engine=engine, processor=processor, op_index=i, op_type=t, op_name=f"{i}:{t}",
                         placed_on="acc" if d else "cpu-fallback", delegated=d, partition=0 if d else -1,
                         method=F.METHOD_STATIC if static else method, reason="" if d else "not supported"))
    df = F.annotate_ops(pd.DataFrame(rows, columns=PLACEMENT_COLUMNS))
    return df.assign(record="placement", available=True, repeat=-1)


def _times(model, engine, processor, ops, method="slice"):
    rows = []
    for i, (t, _d, times) in enumerate(ops):
        for r, ms in enumerate(times):
            rows.append(dict(record="op_time", model=model, engine=engine, processor=processor, op_index=i,
                             op_type=t, op_name=f"{i}:{t}", time_ms=ms, n_runs=3, time_method=method, repeat=r,
                             timed=not np.isnan(ms), available=True))
    return pd.DataFrame(rows)


# resnet-like: 2 convs (splittable, 8 ms), 1 add, 1 pad (fallback on cpu), 1 FC
RES_OPS = [("CONV_2D", True, [8.0, 8.2, 7.8]), ("PAD", False, [1.0, 1.2, 0.8]), ("CONV_2D", True, [8.0, 8.0, 8.0]),
           ("ADD", True, [1.0, 1.0, 1.0]), ("FULLY_CONNECTED", True, [2.0, 2.0, 2.0])]


def synthetic() -> pd.DataFrame:
    frames = [
        _placement("resnet50", "litert", "cpu", RES_OPS, "xnnpack plan"),
        _times("resnet50", "litert", "cpu", RES_OPS),
        # static checker says ADD is not GPU compatible
        _placement("resnet50", "litert", "gpu", [(t, t != "ADD", x) for t, _d, x in RES_OPS], static=True),
        _placement("resnet50", "torch", "cpu",
                   [("aten::conv2d", True, [5.0, 5.0]), ("aten::batch_norm", True, [2.0, 3.0]),
                    ("aten::relu", True, [1.0, 1.0]), ("aten::flatten", True, [0.01, 0.01]),
                    ("aten::linear", True, [2.0, 1.0])], "torch.profiler"),
        _times("resnet50", "torch", "cpu",
               [("aten::conv2d", True, [5.0, 5.0]), ("aten::batch_norm", True, [2.0, 3.0]),
                ("aten::relu", True, [1.0, 1.0]), ("aten::flatten", True, [0.01, 0.01]),
                ("aten::linear", True, [2.0, 1.0])]),
        pd.DataFrame([dict(record="absent", model="resnet50", engine=e, processor="gpu", method="availability",
                           available=False, reason="no GPU usable: test") for e in ("litert", "torch", "onnxruntime")]
                     + [dict(record="absent", model="resnet50", engine="onnxruntime", processor="cpu",
                             method="availability", available=False, reason="not in this test")]),
        pd.DataFrame([dict(record="latency", model="resnet50", engine="litert", processor="cpu", latency_ms=x,
                           available=True) for x in (20.0, 21.0, 19.5, 20.5, 22.0, 20.1, 19.9, 20.3)]),
    ]
    return F.tidy(pd.concat(frames, ignore_index=True, sort=False))


class FakeCtx:
    def __init__(self, tmp_path: Path):
        self.seed = 0
        self.written: dict[str, pd.DataFrame] = {}
        self.saved: list[str] = []
        self.tmp = tmp_path

    def model(self, name):
        raise KeyError(name)

    def write(self, df, table=None):
        self.written[table or "main"] = df

    def save(self, fig, name):
        from study.plotting import save

        self.saved.append(name)
        return save(fig, "local", F.FINDING, name, self.tmp)


# --------------------------------------------------------------------------- unit tests
def test_annotate_flags_constant_metadata_and_splittable():
    df = pd.DataFrame([
        dict(model="m", engine="litert", processor="gpu", op_index=0, op_type="DEQUANTIZE", op_name="0", delegated=False),
        dict(model="m", engine="litert", processor="gpu", op_index=1, op_type="CONV_2D", op_name="1", delegated=False),
        dict(model="m", engine="torch", processor="gpu", op_index=0, op_type="aten::flatten", op_name="0", delegated=False),
        dict(model="m", engine="torch", processor="gpu", op_index=1, op_type="aten::linear", op_name="1", delegated=True),
    ])
    out = F.annotate_ops(df, constant={0})
    assert out["constant_op"].tolist() == [True, False, False, False]
    assert out["no_kernel"].tolist() == [False, False, True, False]
    assert out["splittable"].tolist() == [False, True, False, True]
    # the constant DEQUANTIZE and the view are not fallbacks; the undelegated conv is
    assert out["fallback"].tolist() == [False, True, False, False]


def test_amdahl_bound():
    assert F.amdahl(0.0) == pytest.approx(2.0)
    assert F.amdahl(1.0) == pytest.approx(1.0)
    assert F.amdahl(0.25) == pytest.approx(1 / (0.25 + 0.375))
    assert np.isnan(F.amdahl(np.nan))


def test_support_table_counts_shares_and_absent_rows():
    sup = F.support_table(synthetic(), seed=0)
    cpu = sup[(sup.engine == "litert") & (sup.view == "cpu")].iloc[0]
    assert (cpu.n_ops, cpu.n_runtime, cpu.n_fallback, cpu.n_supported) == (5, 5, 1, 4)
    assert cpu.fallback_count_ratio == pytest.approx(0.2)
    assert cpu.fallback_types == "PAD x1"
    shares = [1.0 / 20.0, 1.2 / 20.4, 0.8 / 19.6]
    assert cpu.fallback_latency_share == pytest.approx(np.mean(shares))
    assert cpu.fallback_latency_ci_lo <= cpu.fallback_latency_share <= cpu.fallback_latency_ci_hi
    assert cpu.fallback_latency_ci_lo >= min(shares) - 1e-12 and cpu.fallback_latency_ci_hi <= max(shares) + 1e-12
    assert cpu.n_repeats == 3
    assert cpu.whole_ms == pytest.approx(np.median([20.0, 21.0, 19.5, 20.5, 22.0, 20.1, 19.9, 20.3]))
    # static GPU checker: ADD flagged, weighted by CPU slice times
    st = sup[(sup.engine == "litert") & (sup.view == "gpu (static)")].iloc[0]
    assert st.n_fallback == 1 and st.fallback_types == "ADD x1"
    assert st.fallback_latency_share == pytest.approx(np.mean([1.0 / 20.0, 1.0 / 20.4, 1.0 / 19.6]))
    assert "CPU slice times" in st.latency_weights
    # absent GPU: the reason, no number
    ab = sup[(sup.view == "gpu") & (sup.available == False)]  # noqa: E712
    assert set(ab.engine) == {"litert", "torch", "onnxruntime"}
    assert ab.reason.str.contains("no GPU usable").all()
    assert ab[["n_ops", "fallback_count_ratio", "fallback_latency_share", "whole_ms"]].isna().all().all()
    # torch: the view op is metadata-only, not counted as runtime
    tc = sup[(sup.engine == "torch") & (sup.view == "cpu")].iloc[0]
    assert tc.n_no_kernel == 1 and tc.n_runtime == 4 and tc.n_fallback == 0


def test_coexec_table_unsplittable_shares_and_bound():
    co = F.coexec_table(synthetic(), seed=0, onnx_files={"resnet50": ["Conv", "Relu", "Add", "Gemm"]})
    lit = co[co.representation == "tflite graph"].iloc[0]
    assert (lit.n_runtime, lit.n_unsplittable) == (5, 2)  # PAD, ADD
    assert lit.unsplittable_count_share == pytest.approx(0.4)
    f = np.mean([2.0 / 20.0, 2.2 / 20.4, 1.8 / 19.6])
    assert lit.unsplittable_latency_share == pytest.approx(f)
    assert lit.amdahl_bound == pytest.approx(F.amdahl(f))
    assert lit.amdahl_ci_lo <= lit.amdahl_bound <= lit.amdahl_ci_hi
    tor = co[co.representation == "torch aten calls"].iloc[0]
    assert (tor.n_runtime, tor.n_unsplittable) == (4, 2)  # batch_norm, relu (flatten is metadata-only)
    onnx = co[co.representation == F.ONNX_FILE].iloc[0]
    assert onnx.unsplittable_count_share == pytest.approx(0.5) and np.isnan(onnx.unsplittable_latency_share)


def test_claims_verdicts_follow_thresholds():
    data = synthetic()
    co = F.coexec_table(data, seed=0, onnx_files={"resnet50": ["Conv", "Conv", "Conv", "Conv", "Relu"]})
    absent = data[data.record == "absent"]
    cl = F.claims(co, absent)
    assert set(cl.columns) >= {"claim", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "n",
                               "paper_value", "verdict", "reason"}
    c1 = cl[cl.claim == "C1"].set_index("representation")
    assert (c1.form == "paper").all()
    # 40% of 10 runtime operators: the exact binomial test cannot tell it from 25% (p ~ 0.22)
    assert c1.loc["tflite graph", "verdict"] == "inconclusive"
    assert 0.05 < c1.loc["tflite graph", "p_value"] < 0.5
    assert c1.loc["tflite graph", "ci_lo"] < 0.25 < c1.loc["tflite graph", "ci_hi"]
    assert "paper's 48%: -8 points" in c1.loc["tflite graph", "reason"]
    assert c1.loc[F.ONNX_FILE, "verdict"] == "inconclusive"           # 1 of 5: too few operators to decide
    assert c1.loc["onnx (ORT optimised graph)", "verdict"] == "not measurable"
    assert "not in this test" in c1.loc["onnx (ORT optimised graph)", "reason"]
    assert c1.loc["tflite graph", "primary"]
    # C2 is decided on measured co-execution (mulayer_overhead); the Amdahl bound here is its context
    c2 = cl[cl.claim == "C2"]
    assert (c2.form == "context").all()
    tfl = c2[(c2.representation == "tflite graph") & (c2.processor == "cpu")].iloc[0]
    f = np.mean([2.0 / 20.0, 2.2 / 20.4, 1.8 / 19.6])
    assert tfl.effect == pytest.approx(F.amdahl(f)) and tfl.n == 3
    gpu = c2[c2.processor == "gpu"]
    assert (gpu.verdict == "not measurable").all() and gpu.reason.str.contains("no GPU usable").all()
    assert cl.reason.map(bool).all()
    assert set(cl.verdict) <= {"reproduced", "contradicted", "inconclusive", "not measurable"}


@pytest.mark.parametrize("k, n, expected", [(60, 100, "reproduced"), (5, 100, "contradicted"),
                                            (27, 100, "inconclusive")])
def test_c1_true_false_borderline(k, n, expected):
    """C1 on synthetic coexec tables: 60% of 100 operators, 5% and 27% (at the 25% bar)."""
    co = pd.DataFrame([dict(model="resnet50", engine="litert", representation="tflite graph", processor="cpu",
                            n_ops=n, n_runtime=n, n_unsplittable=k, unsplittable_count_share=k / n)])
    cl = F.claims_from_tables(lambda t: co if t == "coexec" else None, {})
    c1 = cl[(cl.claim == "C1") & cl.primary].iloc[0]
    assert c1.verdict == expected, c1.reason
    assert c1.form == "paper" and 0 <= c1.p_value <= 1


def test_verdict_rule():
    assert F._verdict(0.3, 0.4, 0.25, True) == "reproduced"
    assert F._verdict(0.1, 0.2, 0.25, True) == "contradicted"
    assert F._verdict(0.2, 0.3, 0.25, True) == "inconclusive"
    assert F._verdict(0.25, 0.25, 0.25, True) == "inconclusive"  # exactly on the threshold
    assert F._verdict(1.5, 1.7, 1.8, False) == "reproduced"
    assert F._verdict(1.85, 1.9, 1.8, False) == "contradicted"
    assert F._verdict(np.nan, np.nan, 1.8, False) == "inconclusive"


def test_unsupported_types_table():
    ut = F.unsupported_types(synthetic())
    fb = ut[ut.view == "fallback"]
    assert set(zip(fb.processor, fb.op_type)) == {("cpu", "PAD"), ("gpu (static)", "ADD")}
    pad = fb[fb.op_type == "PAD"].iloc[0]
    assert pad.n_models == 1 and pad.time_ms_median_sum == pytest.approx(1.0)
    un = ut[ut.view.str.startswith("unsplittable")]
    assert {"PAD", "ADD", "aten::batch_norm", "aten::relu"} <= set(un.op_type)
    assert "aten::flatten" not in set(un.op_type)


def test_analyse_and_plot_on_synthetic_data(tmp_path):
    ctx = FakeCtx(tmp_path)
    tables = F.analyse(ctx, synthetic())
    assert {"support", "coexec", "unsupported_types", "latency", "availability", "claims"} <= set(ctx.written)
    figs = F.plot(ctx, tables)
    assert set(figs) == {"fallback_by_count", "fallback_by_latency", "coexec_unsplittable", "amdahl_bound"}
    for name in figs:
        assert (tmp_path / "local" / F.FINDING / f"{name}.png").exists()
        assert (tmp_path / "local" / F.FINDING / f"{name}.pdf").exists()


def test_tidy_keeps_booleans_parquet_safe(tmp_path):
    df = synthetic()
    assert str(df["delegated"].dtype) == "boolean"
    path = tmp_path / "x.parquet"
    df.to_parquet(path)
    back = pd.read_parquet(path)
    assert back["delegated"].isna().sum() == df["delegated"].isna().sum()


def test_log_cache_reuses_measurements_of_an_unfinished_session(tmp_path):
    log = RawLog(tmp_path / "ops.jsonl")
    calls = []

    def fn():
        calls.append(1)
        return pd.DataFrame([{"a": 1}])

    def boom():
        raise RuntimeError("no accelerator")

    c = F._LogCache(log, {"device": "x"})
    k = c.key(kind="op_profile", model="m", repeat=0)
    rows, err, _ = F._call_logged(c, "op_profile", k, fn)
    assert rows == [{"a": 1}] and err is None and len(calls) == 1
    _, err, _ = F._call_logged(c, "op_profile", c.key(kind="x"), boom)
    assert "no accelerator" in err
    # a rerun (same env) resumes: no second call
    c2 = F._LogCache(log, {"device": "x"})
    rows, _, _ = F._call_logged(c2, "op_profile", k, fn)
    assert rows == [{"a": 1}] and len(calls) == 1
    # another environment, or a completed session, measures again
    F._call_logged(F._LogCache(log, {"device": "y"}), "op_profile", k, fn)
    assert len(calls) == 2
    log.mark_complete()
    F._call_logged(F._LogCache(log, {"device": "x"}), "op_profile", k, fn)
    assert len(calls) == 3
    log.close()


@needs_models
def test_params_defaults_validate_and_unknown_model_is_refused():
    params = yaml.safe_load(PARAMS.read_text())
    resolved = resolve("operator_support", params)
    assert resolved["models"] == F.DEFAULT_MODELS
    bad = {**params, "operator_support": {"models": ["resnet50", "alexnet"]}}
    with pytest.raises(ParamError, match="alexnet"):
        resolve("operator_support", bad)
    with pytest.raises(ParamError):
        resolve("operator_support", {**params, "operator_support": {"engines": ["tvm"]}})
    with pytest.raises(ParamError, match="repeats"):
        resolve("operator_support", {**params, "profile": "full", "operator_support": {"profile_repeats": 1}})


@needs_models
def test_constant_ops_and_slices_keep_fp16_weights_constant():
    from study.engines import tflite_graph as tg
    from study.engines.litert import open_compiled
    from study.models import get_model

    spec = get_model("pose_detection")
    path = spec.path("tflite")
    const = tg.constant_ops(path)
    ops = tg.graph_ops(path)
    kinds = {ops[i].op_type for i in const}
    assert kinds == {"DEQUANTIZE", "DENSIFY"}  # DENSIFY -> DEQUANTIZE chains are constant transitively
    conv = next(o for o in ops if o.op_type == "CONV_2D" and any(
        t in {u for i in const for u in ops[i].outputs} for t in o.inputs))
    sel = tg.with_constant_producers(path, [conv.index])
    assert conv.index in sel and len(sel) > 1 and set(sel) - {conv.index} <= set(const)
    # the slice's only runtime input is the activation: the weights stay constant
    s = open_compiled(tg.slice_model(path, sel), "cpu", 1)
    assert len(s.in_bufs) == 1
    s.run()


# --------------------------------------------------------------------------- end to end (CPU)
def _ctx(tmp_path, **own):
    from study.common import context

    harness = dict(warmup=1, min_samples=3, max_samples=3, max_seconds=1.0, rel_ci_halfwidth=0.5, block_size=3,
                   below_floors=True)
    params = dict(device="local", profile="quick", seed=1, harness=harness, models=["resnet50"],
                  engines=["litert", "onnxruntime", "torch"], processors=["cpu", "gpu", "npu"], core_group="all",
                  profile_repeats=2, profile_runs=1, whole_model=True)
    params.update(own)
    ctx = context(F.FINDING, params)
    ctx.data_root = tmp_path / "data"
    ctx.figures_root = tmp_path / "figures"
    return ctx


@needs_models
def test_run_end_to_end_on_cpu(tmp_path):
    ctx = _ctx(tmp_path, models=["resnet50", "face_detection_short_range"])
    res = F.run(ctx)
    data = pd.read_parquet(tmp_path / "data" / "local" / f"{F.FINDING}.parquet")
    assert len(data) == len(res["data"]) > 0
    for c in F.RECORD_ORDER:
        assert c in data.columns
    assert {"placement", "op_time", "latency"} <= set(data.record)
    # every model x engine x processor has either measurements or an absent row with a reason
    absent = data[data.record == "absent"]
    assert absent.reason.map(bool).all() and absent[["time_ms", "latency_ms", "delegated"]].isna().all().all()
    assert ((absent.engine == "onnxruntime") & (absent.model == "face_detection_short_range")).any()
    gpu = ctx.device.processor("gpu")
    if not gpu.available:
        g = absent[absent.processor == "gpu"]
        assert len(g) == 3 * 2 - 0 and g.reason.str.contains("no GPU").all()
        assert not ((data.record == "op_time") & (data.processor == "gpu")).any()
    # static GPU checker on every machine
    st = data[(data.record == "placement") & (data.method == F.METHOD_STATIC)]
    assert set(st.model) == {"resnet50", "face_detection_short_range"}
    # co-execution and claims
    t = res["tables"]
    c1 = t["claims"][(t["claims"].claim == "C1") & (t["claims"].representation == "tflite graph")].iloc[0]
    # 24 of 78 unsplittable: 30.8% against the declared 25% bar, exact binomial p ~ 0.15, so
    # inconclusive here; whatever the verdict, it carries its one-sided p
    assert c1.n == 78 and c1.verdict != "not measurable" and 0 <= c1.p_value <= 1
    assert (c1.verdict == "reproduced") == (c1.ci_lo > 0.25 and c1.p_value < 0.05)
    assert t["coexec"]["unsplittable_count_share"].between(0, 1).all()
    assert (t["support"].query("available == True and view == 'cpu'")["n_repeats"] == 2).all()
    for name in ("fallback_by_count", "fallback_by_latency", "coexec_unsplittable", "amdahl_bound"):
        assert (tmp_path / "figures" / "local" / F.FINDING / f"{name}.png").exists()
    for name in ("support", "coexec", "unsupported_types", "claims", "latency", "availability"):
        assert (tmp_path / "data" / "local" / F.FINDING / f"{name}.parquet").exists()
    assert (tmp_path / "data" / "local" / F.FINDING / "fingerprint.json").exists()
    # both raw logs were closed as complete sessions
    for log in (F.FINDING, F.OPS_LOG):
        recs = [json.loads(x) for x in (tmp_path / "data" / "local" / "raw" / f"{log}.jsonl").read_text().splitlines()]
        assert recs[-1]["type"] == "complete"


# --------------------------------------------------------------------------- GPU paths (CUDA machine)
@pytest.mark.skipif(not has_cuda(), reason="needs a CUDA GPU")
@needs_models
def test_gpu_delegation_is_measured(tmp_path):
    ctx = _ctx(tmp_path, models=["mobilenet_v2", "face_detection_short_range"], engines=["litert", "torch"],
               processors=["gpu"], profile_repeats=2, profile_runs=2)
    res = F.run(ctx)
    data = res["data"]
    sup = res["tables"]["support"]
    # PyTorch on CUDA: measured placement, convolutions have device kernels
    tg = data[(data.record == "placement") & (data.engine == "torch") & (data.processor == "gpu")]
    assert len(tg) and (tg[tg.op_type == "aten::conv2d"].placed_on == "cuda").all()
    tt = data[(data.record == "op_time") & (data.engine == "torch") & (data.processor == "gpu")]
    assert tt.time_ms.notna().all() and set(tt.repeat) == {0, 1}
    row = sup[(sup.engine == "torch") & (sup.view == "gpu") & (sup.model == "mobilenet_v2")].iloc[0]
    assert row.available and row.n_runtime > 0 and not np.isnan(row.fallback_latency_share)
    lat = data[(data.record == "latency") & (data.processor == "gpu")]
    assert len(lat) and lat.latency_ms.gt(0).all()
    # LiteRT: measured where its GPU accelerator starts, else absent with the reason
    vk = ctx.device.processor("gpu").backend_reason("vulkan")
    lg = data[(data.engine == "litert") & (data.processor == "gpu")]
    if vk is None:
        meas = lg[(lg.record == "placement") & (lg.method != F.METHOD_STATIC)]
        assert set(meas.model) == {"mobilenet_v2", "face_detection_short_range"}
        assert meas.method.str.contains("compiled for the GPU").all()
        assert meas.delegated.any()
        # fp16 convolutions keep constant weights in their slices: the GPU takes them
        fd = meas[(meas.model == "face_detection_short_range") & (meas.op_type == "CONV_2D")]
        assert len(fd) and fd.delegated.all()
        sess = lg[lg.record == "session"]
        assert len(sess) == 2 and sess.fully_accelerated.notna().all()
        lt = lg[lg.record == "op_time"]
        assert lt.time_ms.notna().any() and set(lt.repeat) == {0, 1}
    else:
        assert (lg[lg.record == "absent"].reason == vk).all()
    assert len(lg[(lg.record == "placement") & (lg.method == F.METHOD_STATIC)])


# --------------------------------------------------------------------------- a phone (loopback stand-in)
def test_phone_op_rows_key_cpu_nodes_and_flag_partitions():
    df = pd.DataFrame([dict(op_index=5, op_type="TfLiteGpuDelegateV2", time_ms=1.0, method="x (delegate kernel (one partition))"),
                       dict(op_index=2, op_type="PAD", time_ms=0.2, method="x (TFLite CPU kernel (not delegated))")])
    out = F._phone_op_rows(df, n_ops=4)
    assert out["partition_row"].tolist() == [True, False]
    assert out["op_name"].tolist() == ["partition 5:TfLiteGpuDelegateV2", "2:PAD"]


def test_partition_time_counts_as_delegated_and_hides_unsplittable_shares():
    ops = _placement("m", "litert", "gpu", [("CONV_2D", True, []), ("PAD", False, []), ("ADD", True, [])])
    ops = ops.assign(runtime=True)
    times = pd.DataFrame([dict(op_name="1:PAD", time_ms=1.0, repeat=0, partition_row=False),
                          dict(op_name="partition 3:TfLiteGpuDelegateV2", time_ms=3.0, repeat=0, partition_row=True)])
    shares, totals, untimed = F._weighted_shares(ops, times, "fallback")
    assert shares == [pytest.approx(0.25)] and totals == [pytest.approx(4.0)] and untimed == 2
    ops["unsplittable"] = ~ops["splittable"]
    assert F._weighted_shares(ops, times, "unsplittable", attributable=False)[0] == []


@pytest.fixture(scope="module")
def phone_rig(tmp_path_factory):
    import shutil

    from adb_standin import standin_phone

    from study.models import ModelSpec
    from study.paths import ASSETS

    tmp = tmp_path_factory.mktemp("phone_os")
    with standin_phone(tmp) as (fake, device):
        path = tmp / "probe.tflite"
        shutil.copy(ASSETS / "probe.tflite", path)
        yield dict(phone=fake, device=device(), models={"probe": ModelSpec(name="probe", source="user", task="test",
                                                                            files={"tflite": str(path)})})


def test_run_on_a_phone(phone_rig, tmp_path):
    from study.common import context
    from study.config import check_section

    own = check_section(F.FINDING, dict(models=["probe"], engines=["litert", "onnxruntime", "torch"],
                                        processors=["cpu", "gpu", "npu"], profile_repeats=2, profile_runs=3),
                        F.PARAMS)
    harness = dict(warmup=1, min_samples=4, max_samples=8, max_seconds=5.0, rel_ci_halfwidth=0.001, block_size=4,
                   below_floors=True)
    dev = phone_rig["device"]
    ctx = context(F.FINDING, {"device": dev.spec, "profile": "quick", "seed": 3, "harness": harness, **own})
    ctx.__dict__["device"] = dev
    ctx.__dict__["manifest"] = dict(phone_rig["models"])
    ctx.data_root, ctx.figures_root = tmp_path / "data", tmp_path / "figures"
    res = F.run(ctx)
    data = pd.read_parquet(ctx.data_root / dev.spec / f"{F.FINDING}.parquet")
    assert set(data["device"]) == {dev.spec}
    ab = data[data.record == "absent"]
    assert ab[ab.engine.isin(["onnxruntime", "torch"])].reason.str.contains("no Python").all()
    assert len(ab[ab.engine.isin(["onnxruntime", "torch"])]) == 6
    pl = data[(data.record == "placement") & (data.method != F.METHOD_STATIC)]
    assert set(pl.processor) == {"cpu", "gpu", "npu"} and (pl.engine_impl == "litert-benchmark").all()
    ot = data[data.record == "op_time"]
    assert set(ot.repeat) == {0, 1} and ot.partition_row.any() and ot.time_ms.notna().all()
    lat = data[data.record == "latency"]
    assert set(lat.processor) == {"cpu", "gpu", "npu"} and lat["aggregate"].all() and lat.latency_ms.gt(0).all()
    sup = res["tables"]["support"]
    for pr in ("cpu", "gpu", "npu"):
        row = sup[(sup.engine == "litert") & (sup.view == pr)].iloc[0]
        assert row.available and row.n_runtime > 0 and 0 <= row.fallback_latency_share <= 1
        assert "partition" in row.latency_note and row.whole_ms > 0
    co = res["tables"]["coexec"]
    assert co.unsplittable_count_share.notna().all() and co.unsplittable_latency_share.isna().all()
    cl = res["tables"]["claims"]
    assert (cl.verdict == "not measurable").all()  # no resnet50 in this run
    for name in ("fallback_by_count", "coexec_unsplittable"):
        assert (ctx.figures_root / dev.spec / F.FINDING / f"{name}.png").exists()
    for log in (F.FINDING, F.OPS_LOG):
        recs = (ctx.data_root / dev.spec / "raw" / f"{log}.jsonl").read_text().splitlines()
        assert json.loads(recs[-1])["type"] == "complete"


def test_onnx_static_matmul_with_constant_weight_is_a_linear_layer(tmp_path):
    """A linear layer on a 3-D input exports as MatMul(x, W) + Add: splittable by output channels;
    attention's MatMul(q, k^T) of two activations has no weight to split."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((8, 4), np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]),                       # linear layer
             helper.make_node("Constant", [], ["W2"], value=numpy_helper.from_array(np.ones((4, 4), np.float32))),
             helper.make_node("MatMul", ["h", "W2"], ["g"]),                       # weight from a Constant
             helper.make_node("Transpose", ["g"], ["gt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["g", "gt"], ["y"])]                      # activation x activation
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 3])], initializer=[w])
    f = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(f))
    ops = F.onnx_file_ops(f)
    assert ops == [("MatMul", True), ("MatMul", True), ("Transpose", False), ("MatMul", False)]
    row = F.coexec_table(synthetic(), seed=0, onnx_files={"m": ops})
    row = row[row.representation == F.ONNX_FILE].iloc[0]
    assert (row.n_runtime, row.n_unsplittable) == (4, 2) and "MatMul x1" in row.unsplittable_types
