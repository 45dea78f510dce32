"""Finding 1: operator support and processor fallbacks (claims C1, C2).

Stage ``operator_support`` (notebook ``01_operator_support.ipynb``).

For every model x engine x processor of the device:

* **placement**: each operator of the engine's graph, placed on the accelerator or
  fallen back (the engine's ``placement()``): LiteRT on ``cpu`` = XNNPACK's partitions
  (operators left to TFLite's built-in kernels are the fallbacks); LiteRT on ``gpu`` =
  each single-operator slice compiled for the GPU accelerator alone (measured, where a
  GPU exists) and TFLite's GPU compatibility checker (``ModelAnalyzer``, *static*, on
  every machine); ONNX Runtime = the provider of each node in its profiler (CPU nodes
  of a CUDA session are the fallbacks); PyTorch = top-level aten calls with or without
  a device kernel;
* **per-operator time**: the engine's ``op_profile()`` (LiteRT: single-operator
  slices; ONNX Runtime: its profiler; PyTorch: ``torch.profiler``), repeated
  ``profile_repeats`` independent times (fresh sessions, order shuffled per repeat);
  the latency share of fallback operators gets a bootstrap 95% CI across repeats;
* **whole model**: the harness times the model on each available processor, and
  LiteRT's ``is_fully_accelerated()`` is read on the GPU;
* **co-execution view**: which operators a channel-wise CPU+GPU split (muLayer style,
  ``study.coexec_ops``) can split, per graph representation (TFLite graph, ONNX
  Runtime's optimised graph, the ``.onnx`` file's nodes, PyTorch aten calls); the share
  that cannot be split, by count and by latency, and the Amdahl bound it puts on a
  two-processor split.

On a phone (``device=adb:SERIAL``) LiteRT runs as ``benchmark_model`` (``study.phone``):
placement from the op profile's node indices, per-operator time from
``--enable_op_profiling`` (a delegate partition is one node, so the fallback share is the
CPU-kernel nodes' time over all top-level nodes, and the unsplittable share of latency
cannot be attributed), whole-model latency from interleaved benchmark calls; ONNX Runtime
and PyTorch rows say why not (no Python on a phone).

Absent processors (no GPU on a host, no NPU) give rows with ``available=False`` and
the reason, never a number. Operators that run no kernel at inference time are kept
apart: constant operators of a ``.tflite`` graph (computed from constants alone, e.g.
fp16->fp32 ``DEQUANTIZE`` or ``DENSIFY`` of weights, evaluated once at initialisation;
``tflite_graph.constant_ops``) and PyTorch operators that need no kernel (views such as
``aten::view``/``aten::flatten`` and eval-mode ``aten::dropout``). Ratios are over the
remaining *runtime* operators; the counts of both kinds are in the tables. A LiteRT
single-operator slice keeps the constant operators that compute its weights
(``tflite_graph.with_constant_producers``), as in the whole model.

Tidy dataset: one row per measurement, its kind in ``record``:
``placement`` (one operator's placement by one method), ``op_time`` (one operator's
median time in one repeat of the per-operator profile), ``latency`` (one timed
whole-model call, from the harness), ``session`` (whole-model facts such as
``fully_accelerated``), ``absent`` (a model x engine x processor that cannot run here,
with the reason) and ``error`` (a measurement that failed, with the error).
"""
from __future__ import annotations

import json
import random
import time
from typing import Any

import numpy as np
import pandas as pd

from study import claims as C
from study import devices, stats
from study.coexec_ops import splittable
from study.config import check_models
from study.devices import PYTHON
from study.logcache import KeyedLog
from study.schema import STAGES, ParamError

FINDING = "operator_support"
OPS_LOG = "operator_support_ops"     # raw log of placements and per-operator profiles
ENGINES = ("litert", "onnxruntime", "torch")
DEFAULT_MODELS = ["resnet50", "vgg16", "mobilenet_v2", "fast_style_transfer", "yolo_det", "transformer_enc",
                  "face_detection_short_range", "selfie_segmentation", "face_landmark", "hand_landmark_lite",
                  "pose_detection"]

# The measurable forms of the claims (see ``claims``).
C1_THRESHOLD = C.CLAIMS["C1"].null   # "a large share": declared (with its justification) in the claims registry
C2_IDEAL = 2.0        # two equally fast processors splitting every operator
C2_MATERIAL = 1.8     # "materially below": the bound loses at least 10% of the ideal two-processor speedup
PAPER_C1 = "about 48% of ResNet-50's operators (Xiaomi 9, CPU+GPU parallel inference)"
PAPER_C1_VALUE = 0.48
PAPER_C2 = "qualitative (several frameworks)"
N_BOOT = 2000

METHOD_STATIC = "static: TFLite GPU compatibility checker (ModelAnalyzer)"
# graph representation of each engine in the co-execution view
REPRESENTATION = {"litert": "tflite graph", "onnxruntime": "onnx (ORT optimised graph)", "torch": "torch aten calls"}
ONNX_FILE = "onnx (file nodes)"
PRIMARY_REPRESENTATION = "tflite graph"   # closest to the mobile frameworks the paper used
# PyTorch operators that need no kernel on any processor: views (tensor metadata only) and
# eval-mode dropout (the identity)
TORCH_NO_KERNEL_OPS = frozenset({
    "aten::dropout", "aten::feature_dropout", "aten::alpha_dropout",
    "aten::view", "aten::reshape", "aten::flatten", "aten::unflatten", "aten::permute", "aten::transpose",
    "aten::t", "aten::expand", "aten::unsqueeze", "aten::squeeze", "aten::slice", "aten::select",
    "aten::split", "aten::chunk", "aten::unbind", "aten::narrow", "aten::detach", "aten::alias",
    "aten::as_strided", "aten::view_as", "aten::expand_as", "aten::split_with_sizes", "aten::movedim",
})
# ONNX file nodes that are not operators at run time
ONNX_NON_OPS = frozenset({"Constant", "Identity"})

BOOL_COLUMNS = ["available", "delegated", "fallback", "constant_op", "no_kernel", "splittable", "timed",
                "fully_accelerated", "below_floors", "partition_row", "aggregate"]


PARAMS = STAGES["operator_support"]   # the schema of this stage's section (study.schema)


def check_params(resolved: dict[str, Any], params: dict[str, Any]) -> None:
    check_models(FINDING, resolved["models"], params)
    if resolved["profile_repeats"] < 2 and resolved.get("profile") != "quick":
        raise ParamError(f"{FINDING}.profile_repeats: at least 2 repeats are needed for a confidence interval "
                         f"outside the quick profile")


# =========================================================================== measure
def onnx_file_ops(path) -> list[tuple[str, bool]]:
    """(operator type, splittable) of each node of an ``.onnx`` file's main graph
    (Constant/Identity left out). A MatMul whose weight input (B; for the integer forms, its
    weight slot) is an initializer or a Constant's output is a fully connected layer, which a
    channel-wise split divides like Gemm; a MatMul of two activations is not."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    const = {i.name for i in g.initializer}
    const |= {o for n in g.node if n.op_type == "Constant" for o in n.output}
    weight_slot = {"MatMul": 1, "MatMulInteger": 1, "QLinearMatMul": 3}
    out = []
    for n in g.node:
        if n.op_type in ONNX_NON_OPS:
            continue
        k = weight_slot.get(n.op_type)
        weighted = k is not None and len(n.input) > k and n.input[k] in const
        out.append((n.op_type, splittable("onnxruntime", n.op_type, constant_weight=weighted)))
    return out


def annotate_ops(df: pd.DataFrame, constant: set[int] | None = None) -> pd.DataFrame:
    """Add ``constant_op``, ``no_kernel``, ``splittable`` and ``fallback`` to placement rows."""
    df = df.copy()
    constant = constant or set()
    df["constant_op"] = (df["engine"] == "litert") & df["op_index"].isin(constant)
    df["no_kernel"] = (df["engine"] == "torch") & df["op_type"].isin(TORCH_NO_KERNEL_OPS)
    df["splittable"] = [splittable(e, t) for e, t in zip(df["engine"], df["op_type"])]
    df["fallback"] = ~df["delegated"].astype(bool) & ~df["constant_op"] & ~df["no_kernel"]
    return df


class _LogCache(KeyedLog):
    """Per-operator measurements appended to a raw log as taken; a rerun after a kill
    reuses those of the unfinished session with the same key (same environment,
    model file, threads, cores and runs)."""

    def __init__(self, log, env: dict[str, Any]):
        super().__init__(log, env, field="env_hash")


def _call_logged(cache: _LogCache, kind: str, key: str, fn) -> tuple[list[dict[str, Any]] | None, str | None, dict]:
    """Run ``fn`` (returning a DataFrame) once per key; rows or the error, and extra attrs."""
    from study.engines.base import captured_native_stderr

    rec = cache.get(key)
    if rec is None:
        t0 = time.perf_counter()
        try:
            with captured_native_stderr():
                df = fn()
            rows = json.loads(df.to_json(orient="records"))
            rec = cache.put(key, kind, rows=rows, error=None, attrs={k: str(v) for k, v in df.attrs.items()},
                            seconds=time.perf_counter() - t0)
        except Exception as e:  # a failed measurement is recorded, never invented
            rec = cache.put(key, kind, rows=None, error=f"{type(e).__name__}: {e}"[:500],
                            seconds=time.perf_counter() - t0)
    return rec.get("rows"), rec.get("error"), rec.get("attrs") or {}


_TORCH_MODULES: dict[tuple, Any] = {}


def engine(name: str):
    """The engine, with PyTorch's built zoo modules kept for the stage's duration: building a
    zoo model sets its batch-norm statistics with forward passes (seconds each); the module
    is deterministic in its seed and only ever run under ``inference_mode``, so the
    placement, every profile repeat and the whole-model run share one build."""
    from study.engines import get_engine

    if name != "torch":
        return get_engine(name)
    from study.engines.torch_engine import TorchEngine

    class CachedTorchEngine(TorchEngine):
        def load_module(self, model, processor: str):
            key = (model.torch_zoo, model.seed, processor)
            if key not in _TORCH_MODULES:
                _TORCH_MODULES[key] = super().load_module(model, processor)
            return _TORCH_MODULES[key]

    return CachedTorchEngine()


def _cached_opener(ctx, cfg, spec):
    """``ctx.latency_config``'s configuration, for PyTorch opened through the engine that
    reuses this stage's built modules (same columns, cores, threads and check)."""
    if cfg.columns["engine"] != "torch":
        return cfg
    from study.measure import Config

    processor, threads = cfg.columns["processor"], cfg.columns["threads"]

    def opener():
        eng = engine("torch")
        eng.check(ctx.device, processor, spec)
        return eng.open(spec, processor, threads, seed=ctx.seed)

    return Config(columns=cfg.columns, opener=opener, cores=cfg.cores)


def _session_info(spec, processor: str, threads: int, seed: int) -> pd.DataFrame:
    from study.engines import get_engine

    s = get_engine("litert").open(spec, processor, threads, seed=seed)
    try:
        info = dict(s.info)
    finally:
        s.close()
    return pd.DataFrame([{"fully_accelerated": bool(info.get("fully_accelerated")),
                          "accelerator": info.get("accelerator"), "adapter": info.get("adapter")}])


class _Run:
    """What the host and the phone paths of ``measure`` share: parameters, models, the raw
    log of per-operator measurements, the rows collected so far."""

    def __init__(self, ctx):
        from study.engines import tflite_graph as tg

        p = ctx.params
        self.ctx = ctx
        self.models, self.engines = list(p["models"]), list(p["engines"])
        self.processors = list(p["processors"])
        self.group, self.repeats, self.runs = p["core_group"], int(p["profile_repeats"]), int(p["profile_runs"])
        self.cores = ctx.cores_for(self.group)
        self.oplog = ctx.raw_log(OPS_LOG)
        self.cache = _LogCache(self.oplog, ctx.env)
        self.frames: list[pd.DataFrame] = []
        self.base = dict(core_group=self.group, cores=",".join(map(str, self.cores)))
        self.specs = {m: ctx.model(m) for m in self.models}
        self.constant = {m: set(tg.constant_ops(sp.path("tflite"))) for m, sp in self.specs.items()
                         if sp.has("tflite") and sp.path("tflite").exists()}
        self.rng = random.Random(ctx.seed)

    def threads(self, processor: str) -> int:
        return self.ctx.threads_for(processor, self.cores)

    def key(self, kind: str, m: str, e: str, pr: str, **extra) -> str:
        return self.cache.key(kind=kind, model=m, engine=e, processor=pr, threads=self.threads(pr),
                              cores=list(self.cores), sha256=self.specs[m].sha256, device=self.ctx.device_spec, **extra)

    def call(self, kind: str, key: str, fn):
        return _call_logged(self.cache, kind, key, fn)

    def error(self, m, e, pr, method, err, **extra) -> None:
        self.frames.append(pd.DataFrame([dict(record="error", model=m, engine=e, processor=pr, method=method,
                                              available=True, reason=err, **self.base, **extra)]))

    def absent(self, rows: pd.DataFrame) -> None:
        if len(rows):
            self.frames.append(rows.assign(record="absent", method="availability", **self.base))

    def placement(self, m, e, pr, df: pd.DataFrame, **cols) -> None:
        df = annotate_ops(df.assign(engine=e), self.constant.get(m) if e == "litert" else None)
        self.frames.append(df.assign(record="placement", available=True, threads=self.threads(pr), repeat=-1,
                                     **self.base, **cols))

    def op_times(self, m, e, pr, r: int, df: pd.DataFrame, **cols) -> None:
        df = df.rename(columns={"n": "n_runs", "method": "time_method", "placed_on": "profiled_on"}).assign(engine=e)
        df["timed"] = df["time_ms"].notna()
        if "partition_row" not in df.columns:
            df["partition_row"] = False
        self.frames.append(df.assign(record="op_time", available=True, threads=self.threads(pr), repeat=r,
                                     **self.base, **cols))

    def static_gpu(self) -> None:
        """TFLite's GPU compatibility checker on every .tflite model (runs on the host, any device)."""
        from study.engines import get_engine

        if "litert" not in self.engines or "gpu" not in self.processors:
            return
        eng = get_engine("litert")
        for m, sp in self.specs.items():
            if not sp.has("tflite"):
                continue
            rows, err, attrs = self.call("placement", self.key("static", m, "litert", "gpu"),
                                         lambda sp=sp: eng.gpu_static(sp))
            if err:
                self.error(m, "litert", "gpu", METHOD_STATIC, err)
                continue
            df = annotate_ops(pd.DataFrame(rows), self.constant.get(m))
            self.frames.append(df.assign(record="placement", available=True, verdict=attrs.get("verdict", ""),
                                         repeat=-1, **self.base))

    def shuffled(self, todo: list) -> list:
        order = list(todo)
        self.rng.shuffle(order)
        return order

    def finish(self, logs: list) -> pd.DataFrame:
        data = tidy(pd.concat([f for f in self.frames if len(f)], ignore_index=True, sort=False))
        data["device"] = self.ctx.device_spec
        self.ctx.write(data)
        for log in logs + [self.oplog]:
            log.mark_complete(finding=FINDING)
            log.close()
        return data


def measure(ctx) -> pd.DataFrame:
    """Placements, per-operator profiles and whole-model latency; writes the tidy dataset.
    On a device without Python (a phone) LiteRT runs as ``benchmark_model`` (``_measure_phone``)."""
    if not devices.supports(ctx.device_spec, PYTHON):  # only benchmark_model runs there
        return _measure_phone(ctx)
    from study.measure import current_affinity, set_affinity

    R = _Run(ctx)
    avail = ctx.availability(R.models, R.engines, R.processors)
    R.absent(avail[~avail["available"]])
    todo = [tuple(r) for r in avail.loc[avail["available"], ["model", "engine", "processor"]].itertuples(index=False)]
    specs = R.specs
    logs = []
    original = current_affinity()
    try:
        set_affinity(R.cores)
        R.static_gpu()
        # ---- measured placements (and the whole-model GPU view of LiteRT)
        for m, e, pr in todo:
            eng, th = engine(e), R.threads(pr)
            rows, err, _ = R.call("placement", R.key("placement", m, e, pr),
                                  lambda m=m, pr=pr, eng=eng, th=th: eng.placement(specs[m], pr, th))
            if err:
                R.error(m, e, pr, "placement", err)
            else:
                R.placement(m, e, pr, pd.DataFrame(rows))
            if e == "litert" and pr == "gpu":
                rows, err, _ = R.call("session", R.key("session", m, e, pr),
                                      lambda m=m, pr=pr, th=th: _session_info(specs[m], pr, th, ctx.seed))
                if err:
                    R.error(m, e, pr, "whole-model session (is_fully_accelerated)", err)
                else:
                    R.frames.append(pd.DataFrame(rows).assign(
                        record="session", model=m, engine=e, processor=pr, available=True, threads=th,
                        method="whole model compiled for GPU with CPU fallback (is_fully_accelerated)", **R.base))
        # ---- per-operator profiles: independent repeats, order shuffled in each
        for r in range(R.repeats):
            for m, e, pr in R.shuffled(todo):
                eng, th = engine(e), R.threads(pr)
                rows, err, _ = R.call("op_profile", R.key("op_profile", m, e, pr, repeat=r, runs=R.runs),
                                      lambda m=m, pr=pr, eng=eng, th=th: eng.op_profile(specs[m], pr, th, runs=R.runs))
                if err:
                    R.error(m, e, pr, "op_profile", err, repeat=r)
                else:
                    R.op_times(m, e, pr, r, pd.DataFrame(rows))
    finally:
        set_affinity(original)

    # ---- whole-model latency with the harness
    try:
        if ctx.params["whole_model"] and todo:
            log = ctx.raw_log()
            logs.append(log)
            configs = [_cached_opener(ctx, ctx.latency_config(m, e, pr, R.group), specs[m]) for m, e, pr in todo]
            harness = ctx.harness(log, progress=False)
            from study.engines.base import captured_native_stderr

            with captured_native_stderr():
                samples = harness.run(configs)
            if len(samples):
                R.frames.append(samples.assign(record="latency", available=True, method="harness (whole model)"))
            failed = ctx.failures(log, configs)
            if len(failed):
                R.frames.append(failed.assign(record="error", available=True, method="harness (whole model)"))
    finally:
        _TORCH_MODULES.clear()
    return R.finish(logs)


PHONE_PARTITION_NOTE = ("phone: benchmark_model times each delegate partition as one node (TFLite issue 53138); "
                        "fallback share = time of the CPU-kernel nodes / time of all top-level nodes")


def _phone_op_rows(df: pd.DataFrame, n_ops: int) -> pd.DataFrame:
    """benchmark_model's top-level op-profile rows keyed like the placement rows: a CPU kernel
    node ``i`` as ``'i:TYPE'``; a delegate partition (one node for many operators) flagged."""
    df = df.copy()
    idx = pd.to_numeric(df["op_index"], errors="coerce").fillna(-1).astype(int)
    part = (idx < 0) | (idx >= n_ops) | df["method"].astype(str).str.contains("delegate kernel")
    df["partition_row"] = part
    df["op_name"] = [f"partition {i}:{t}" if p else f"{i}:{t}" for i, t, p in zip(idx, df["op_type"], part)]
    return df


def _measure_phone(ctx) -> pd.DataFrame:
    """The phone path: LiteRT = ``benchmark_model`` (engine ``litert-benchmark``, rows keep
    ``engine='litert'`` and say ``engine_impl``); ONNX Runtime and PyTorch rows are absent
    (no Python on a phone). Placement from the op profile's node indices, per-operator time
    from ``--enable_op_profiling`` (top-level nodes), whole-model latency from interleaved
    benchmark calls (one aggregate row per call), TFLite's static GPU checker on the host."""
    from study import phone
    from study.engines import tflite_graph as tg
    from study.engines.tflite_benchmark import TFLiteBenchmarkEngine

    R = _Run(ctx)
    rows, todo = [], []
    for m in R.models:
        for e in R.engines:
            for pr in R.processors:
                why = phone.availability(ctx, m, e, pr)
                if why:
                    rows.append(dict(model=m, engine=e, processor=pr, available=False, reason=why))
                else:
                    todo.append((m, e, pr))
    R.absent(pd.DataFrame(rows))
    R.static_gpu()
    eng = TFLiteBenchmarkEngine(ctx.device)
    impl = dict(engine_impl=phone.ENGINE)
    n_ops = {m: len(tg.graph_ops(R.specs[m].path("tflite"))) for m in {t[0] for t in todo}}
    for m, e, pr in todo:
        th = R.threads(pr)
        got, err, _ = R.call("placement", R.key("placement", m, e, pr),
                             lambda m=m, pr=pr, th=th: eng.placement(R.specs[m], pr, th))
        if err:
            R.error(m, e, pr, "placement", err)
        else:
            R.placement(m, e, pr, pd.DataFrame(got), **impl)
    for r in range(R.repeats):
        for m, e, pr in R.shuffled(todo):
            th = R.threads(pr)
            got, err, _ = R.call("op_profile", R.key("op_profile", m, e, pr, repeat=r, runs=R.runs),
                                 lambda m=m, pr=pr, th=th: phone.op_profile(ctx, m, pr, R.cores, th, R.runs))
            if err:
                R.error(m, e, pr, "op_profile", err, repeat=r)
            else:
                R.op_times(m, e, pr, r, _phone_op_rows(pd.DataFrame(got), n_ops[m]), latency_note=PHONE_PARTITION_NOTE,
                           **impl)
    logs = []
    if ctx.params["whole_model"] and todo:
        log = ctx.raw_log()
        logs.append(log)
        cfgs = [phone.config(ctx, m, pr, R.group) for m, _e, pr in todo]
        samples = phone.measure(ctx, cfgs, log)
        if len(samples):
            R.frames.append(samples.assign(record="latency", available=True, engine="litert", method=phone.BLOCK_METHOD,
                                           **impl))
        failed = phone.failures(samples, cfgs)
        if len(failed):
            R.frames.append(failed.assign(record="error", available=True, engine="litert",
                                          method="benchmark_model (whole model)", **impl))
    return R.finish(logs)


RECORD_ORDER = ["record", "model", "engine", "processor", "method", "available", "reason", "repeat", "op_index",
                "op_type", "op_name", "placed_on", "delegated", "fallback", "partition", "constant_op",
                "no_kernel", "splittable", "time_ms", "n_runs", "time_method", "profiled_on", "timed",
                "latency_ms", "fully_accelerated", "threads", "core_group", "cores"]


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Columns in a stable order, nullable booleans (Parquet-safe)."""
    for c in RECORD_ORDER:
        if c not in df.columns:
            df[c] = np.nan
    for c in BOOL_COLUMNS:
        if c in df.columns:
            df[c] = df[c].map(lambda v: pd.NA if v is None or (isinstance(v, float) and np.isnan(v)) else bool(v)
                              ).astype("boolean")
    for c in ("reason", "method", "op_type", "op_name", "placed_on", "time_method", "profiled_on"):
        df[c] = df[c].astype("object").where(df[c].notna(), None)
    df["repeat"] = pd.to_numeric(df["repeat"], errors="coerce").astype("Int64")
    rest = [c for c in df.columns if c not in RECORD_ORDER]
    return df[RECORD_ORDER + rest].reset_index(drop=True)


# =========================================================================== analyse
def _rec(data: pd.DataFrame, kind: str) -> pd.DataFrame:
    return data[data["record"] == kind].copy()


def _boolcol(s: pd.Series) -> pd.Series:
    return s.astype("boolean").fillna(False).astype(bool)


def _share_ci(shares: list[float], seed: int) -> tuple[float, float, float, int]:
    """Mean of per-repeat shares with a percentile-bootstrap 95% CI across repeats."""
    a = np.asarray([s for s in shares if s is not None and not np.isnan(s)], dtype=float)
    if a.size == 0:
        return np.nan, np.nan, np.nan, 0
    if a.size < 2:
        return float(a.mean()), np.nan, np.nan, 1
    est, lo, hi = stats.bootstrap_ci(a, stat=np.mean, n_boot=N_BOOT, seed=seed)
    return est, lo, hi, int(a.size)


def _placements(data: pd.DataFrame) -> pd.DataFrame:
    pl = _rec(data, "placement")
    for c in ("delegated", "fallback", "constant_op", "no_kernel", "splittable"):
        pl[c] = _boolcol(pl[c])
    pl["runtime"] = ~pl["constant_op"] & ~pl["no_kernel"]
    return pl


def _times(data: pd.DataFrame) -> pd.DataFrame:
    t = _rec(data, "op_time")
    t["time_ms"] = pd.to_numeric(t["time_ms"], errors="coerce")
    return t


def _weighted_shares(ops: pd.DataFrame, times: pd.DataFrame, flag: str,
                     attributable: bool = True) -> tuple[list[float], list[float], int]:
    """Per repeat: share of timed runtime operators' summed time in operators with ``flag``.
    Rows of ``times`` that time a whole delegate partition (phones) count as delegated time
    in the denominator; where ``flag`` cannot be attributed inside a partition
    (``attributable=False``), a repeat with partition time gives no share.
    Returns (shares, summed times, number of runtime operators never timed on their own)."""
    ops = ops[ops["runtime"]]
    if ops.empty or times.empty:
        return [], [], int(len(ops))
    shares, totals = [], []
    untimed = set(ops["op_name"])
    part = _boolcol(times["partition_row"]) if "partition_row" in times.columns else pd.Series(False, index=times.index)
    for r, tr in times.groupby("repeat"):
        pmask = part.loc[tr.index]
        ptime = float(tr.loc[pmask, "time_ms"].sum())
        j = ops[["op_name", flag]].merge(tr.loc[~pmask, ["op_name", "time_ms"]], on="op_name", how="inner")
        j = j[j["time_ms"].notna()]
        untimed -= set(j["op_name"])
        if ptime > 0 and not attributable:
            continue
        tot = j["time_ms"].sum() + ptime
        if tot > 0:
            shares.append(float(j.loc[j[flag], "time_ms"].sum() / tot))
            totals.append(float(tot))
    return shares, totals, len(untimed)


NOT_ATTRIBUTABLE = ("delegate partitions are timed as one node each (benchmark_model on a phone): the share of "
                    "single operators inside them cannot be attributed")


def _has_partitions(times: pd.DataFrame) -> bool:
    return "partition_row" in times.columns and bool(_boolcol(times["partition_row"]).any())


def _select(df: pd.DataFrame, model: str, engine: str, processor: str) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["model"] == model) & (df["engine"] == engine) & (df["processor"] == processor)]


def _type_counts(types: pd.Series) -> str:
    return ", ".join(f"{t} x{n}" for t, n in types.value_counts().items())


def _method_label(methods: pd.Series) -> str:
    """The timing method of a set of rows, without the per-operator 'not timed' notes."""
    m = methods.dropna().astype(str).str.split("; not timed").str[0]
    return str(m.mode().iloc[0]) if len(m) else ""


def _view_name(engine: str, processor: str, method: str) -> str:
    if method == METHOD_STATIC:
        return f"{processor} (static)"
    return processor


def support_table(data: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per model x engine x processor x method: operators placed / fallen back,
    both ratios (count; latency share with CI), whole-model latency; absent rows with reason."""
    pl, times = _placements(data), _times(data)
    lat = _rec(data, "latency")
    sess = _rec(data, "session")
    rows = []
    for (m, e, pr, meth), g in pl.groupby(["model", "engine", "processor", "method"], sort=True):
        g = g.drop_duplicates("op_name")
        rt = g[g["runtime"]]
        static = meth == METHOD_STATIC
        # latency weights: the processor's own profile; for the static checker, CPU slice times (LiteRT)
        tw = times[(times["model"] == m) & (times["engine"] == e) & (times["processor"] == ("cpu" if static else pr))]
        has_parts = _has_partitions(tw)
        shares, totals, untimed = _weighted_shares(g, tw, "fallback", attributable=not static)
        est, lo, hi, nrep = _share_ci(shares, seed)
        fb = rt[rt["fallback"]]
        parts = g.loc[g["delegated"] & (pd.to_numeric(g["partition"], errors="coerce") >= 0), "partition"]
        row = dict(model=m, engine=e, processor=pr, view=_view_name(e, pr, meth), method=meth, available=True,
                   reason="", n_ops=len(g), n_constant=int(g["constant_op"].sum()),
                   n_no_kernel=int(g["no_kernel"].sum()), n_runtime=len(rt),
                   n_supported=int(len(rt) - len(fb)), n_fallback=len(fb),
                   fallback_count_ratio=len(fb) / len(rt) if len(rt) else np.nan,
                   fallback_types=_type_counts(fb["op_type"]),
                   n_partitions=int(pd.to_numeric(parts, errors="coerce").nunique()) if len(parts) else 0,
                   fallback_latency_share=est, fallback_latency_ci_lo=lo, fallback_latency_ci_hi=hi,
                   n_repeats=nrep, n_untimed=untimed,
                   latency_weights=("CPU slice times (LiteRT op_profile on cpu)" if static else
                                    _method_label(tw["time_method"])),
                   sum_op_ms=float(np.median(totals)) if totals else np.nan,
                   latency_note=(("" if not has_parts else
                                  NOT_ATTRIBUTABLE if static else PHONE_PARTITION_NOTE)))
        if static:
            row["verdict"] = str(g["verdict"].dropna().iloc[0]) if "verdict" in g and g["verdict"].notna().any() else ""
        w = _select(lat, m, e, pr) if not static else lat.iloc[0:0]
        if len(w):
            med, mlo, mhi = stats.median_ci(pd.to_numeric(w["latency_ms"]).to_numpy())
            row.update(whole_ms=med, whole_ci_lo=mlo, whole_ci_hi=mhi, whole_n=len(w),
                       sum_op_over_whole=row["sum_op_ms"] / med if med else np.nan)
        s = _select(sess, m, e, pr) if not static else sess.iloc[0:0]
        if len(s):
            row["fully_accelerated"] = bool(s["fully_accelerated"].iloc[0])
        rows.append(row)
    out = pd.DataFrame(rows)
    # absent combinations and failed placements: the reason, never a number
    extra = []
    for kind in ("absent", "error"):
        r = _rec(data, kind)
        if kind == "error":
            r = r[r["method"].isin(["placement", METHOD_STATIC])]
        for _, a in r.iterrows():
            extra.append(dict(model=a["model"], engine=a["engine"], processor=a["processor"],
                              view=_view_name(a["engine"], a["processor"], a["method"]), method=a["method"],
                              available=kind != "absent", reason=a["reason"]))
    if extra:
        out = pd.concat([out, pd.DataFrame(extra)], ignore_index=True)
    for c in ("whole_ms", "whole_ci_lo", "whole_ci_hi", "whole_n", "sum_op_over_whole", "fully_accelerated", "verdict"):
        if c not in out.columns:
            out[c] = np.nan
    if "fully_accelerated" in out:
        out["fully_accelerated"] = out["fully_accelerated"].map(
            lambda v: pd.NA if v is None or (isinstance(v, float) and np.isnan(v)) else bool(v)).astype("boolean")
    return out.sort_values(["engine", "model", "view"]).reset_index(drop=True)


def coexec_table(data: pd.DataFrame, seed: int = 0,
                 onnx_files: dict[str, list[str] | list[tuple[str, bool]]] | None = None) -> pd.DataFrame:
    """Per model x graph representation x processor whose times weight the latency share:
    operators a channel-wise split cannot split, by count and by latency, and the Amdahl
    bound 2/(1+f) on a two-processor split (f = unsplittable latency share)."""
    pl, times = _placements(data), _times(data)
    pl = pl[pl["method"] != METHOD_STATIC]
    pl["unsplittable"] = ~pl["splittable"]
    rows = []
    for (m, e, pr), g in pl.groupby(["model", "engine", "processor"], sort=True):
        g = g.drop_duplicates("op_name")
        rt = g[g["runtime"]]
        tw = times[(times["model"] == m) & (times["engine"] == e) & (times["processor"] == pr)]
        shares, _, untimed = _weighted_shares(g, tw, "unsplittable", attributable=False)
        est, lo, hi, nrep = _share_ci(shares, seed)
        uns = rt[rt["unsplittable"]]
        rows.append(dict(model=m, engine=e, representation=REPRESENTATION.get(e, e), processor=pr,
                         n_ops=len(g), n_runtime=len(rt), n_unsplittable=len(uns),
                         unsplittable_count_share=len(uns) / len(rt) if len(rt) else np.nan,
                         unsplittable_types=_type_counts(uns["op_type"]),
                         unsplittable_latency_share=est, latency_ci_lo=lo, latency_ci_hi=hi, n_repeats=nrep,
                         n_untimed=untimed, amdahl_bound=amdahl(est), amdahl_ci_lo=amdahl(hi),
                         amdahl_ci_hi=amdahl(lo), latency_note=NOT_ATTRIBUTABLE if _has_partitions(tw) else ""))
    for m, ops in (onnx_files or {}).items():
        # ops: operator types, or (type, splittable) pairs as onnx_file_ops gives them
        ops = [o if isinstance(o, tuple) else (o, splittable("onnxruntime", o)) for o in ops]
        types = [t for t, _ in ops]
        uns = [t for t, ok in ops if not ok]
        rows.append(dict(model=m, engine="onnx", representation=ONNX_FILE, processor="none (static graph)",
                         n_ops=len(types), n_runtime=len(types), n_unsplittable=len(uns),
                         unsplittable_count_share=len(uns) / len(types) if types else np.nan,
                         unsplittable_types=_type_counts(pd.Series(uns, dtype=object)),
                         unsplittable_latency_share=np.nan, latency_ci_lo=np.nan, latency_ci_hi=np.nan, n_repeats=0,
                         n_untimed=len(types), amdahl_bound=np.nan, amdahl_ci_lo=np.nan, amdahl_ci_hi=np.nan,
                         latency_note="static graph of the .onnx file: counts only"))
    cols = ["model", "engine", "representation", "processor", "n_ops", "n_runtime", "n_unsplittable",
            "unsplittable_count_share", "unsplittable_types", "unsplittable_latency_share", "latency_ci_lo",
            "latency_ci_hi", "n_repeats", "n_untimed", "amdahl_bound", "amdahl_ci_lo", "amdahl_ci_hi", "latency_note"]
    return pd.DataFrame(rows, columns=cols)


def amdahl(f: float) -> float:
    """Speedup bound of splitting the splittable part ideally over two equal processors
    while a latency share ``f`` runs on one: 1 / (f + (1 - f) / 2)."""
    if f is None or np.isnan(f):
        return np.nan
    return 1.0 / (f + (1.0 - f) / C2_IDEAL)


def unsupported_types(data: pd.DataFrame) -> pd.DataFrame:
    """Operator types that fell back (per engine, processor, method) and types a
    channel-wise split cannot split (per graph representation), across models."""
    pl, times = _placements(data), _times(data)
    med = (times.groupby(["model", "engine", "processor", "op_name"])["time_ms"].median().rename("time_ms")
           .reset_index()) if len(times) else \
        pd.DataFrame(columns=["model", "engine", "processor", "op_name", "time_ms"])
    rows = []
    fb = pl[pl["fallback"]].drop_duplicates(["model", "engine", "processor", "method", "op_name"])
    fb = fb.drop(columns=["time_ms"]).merge(med, on=["model", "engine", "processor", "op_name"], how="left")
    for (e, pr, meth, t), g in fb.groupby(["engine", "processor", "method", "op_type"], sort=True):
        rows.append(dict(view="fallback", engine=e, processor=_view_name(e, pr, meth), method=meth, op_type=t,
                         n_ops=len(g), n_models=g["model"].nunique(), models=", ".join(sorted(g["model"].unique())),
                         time_ms_median_sum=float(g["time_ms"].sum()) if g["time_ms"].notna().any() else np.nan,
                         placed_on=", ".join(sorted(g["placed_on"].dropna().astype(str).unique())),
                         reason=str(g["reason"].dropna().iloc[0])[:200] if g["reason"].notna().any() else ""))
    meas = pl[(pl["method"] != METHOD_STATIC) & pl["runtime"] & ~pl["splittable"]]
    meas = meas.drop_duplicates(["model", "engine", "op_name"])
    for (e, t), g in meas.groupby(["engine", "op_type"], sort=True):
        rows.append(dict(view="unsplittable (channel-wise co-execution)", engine=e, processor="any",
                         method=REPRESENTATION.get(e, e), op_type=t, n_ops=len(g), n_models=g["model"].nunique(),
                         models=", ".join(sorted(g["model"].unique())), time_ms_median_sum=np.nan, placed_on="",
                         reason="not a convolution / fully connected layer (study.coexec_ops)"))
    cols = ["view", "engine", "processor", "method", "op_type", "n_ops", "n_models", "models", "time_ms_median_sum",
            "placed_on", "reason"]
    return pd.DataFrame(rows, columns=cols)


def latency_table(data: pd.DataFrame) -> pd.DataFrame:
    lat = _rec(data, "latency")
    if lat.empty:
        return pd.DataFrame(columns=["model", "engine", "processor", "n", "median", "ci_lo", "ci_hi"])
    lat["latency_ms"] = pd.to_numeric(lat["latency_ms"])
    return stats.summarize(lat, ["model", "engine", "processor"])


def _verdict(lo: float, hi: float, threshold: float, claimed_above: bool) -> str:
    if np.isnan(lo) or np.isnan(hi):
        return "inconclusive"
    if claimed_above:
        return "reproduced" if lo > threshold else ("contradicted" if hi < threshold else "inconclusive")
    return "reproduced" if hi < threshold else ("contradicted" if lo > threshold else "inconclusive")


def claims(coexec: pd.DataFrame, absent: pd.DataFrame, model: str = "resnet50") -> pd.DataFrame:
    """C1 and C2, one row per graph representation (and processor for C2), on ResNet-50."""
    rows = []
    c = coexec[coexec["model"] == model]
    reps = [(e, REPRESENTATION[e]) for e in ENGINES] + [("onnx", ONNX_FILE)]
    for e, rep in reps:
        sub = c[(c["representation"] == rep)]
        base = dict(claim="C1", form="paper", representation=rep, processor="any",
                    primary=rep == PRIMARY_REPRESENTATION,
                    text=(f"Share of {model}'s runtime operators ({rep}) that a channel-wise CPU+GPU split "
                          f"(muLayer: conv/FC output channels, study.coexec_ops) cannot split; 'a large share' "
                          f"tested as > {C1_THRESHOLD:.0%} (a quarter of the operators serialised on one processor)"),
                    statistic="unsplittable share of operators (count); exact binomial test, Clopper-Pearson CI",
                    paper_value=PAPER_C1, p_value=np.nan)
        if sub.empty:
            why = _absent_reason(absent, model, e)
            rows.append({**base, "effect": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "n": 0,
                         "verdict": "not measurable", "reason": why})
            continue
        r = sub.iloc[0]
        share = float(r["unsplittable_count_share"])
        k, n = int(r["n_unsplittable"]), int(r["n_runtime"])
        p, lo, hi = stats.binom_test(k, n, C1_THRESHOLD)
        v = _verdict(lo, hi, C1_THRESHOLD, True)
        if v == "contradicted" and not hi < C1_THRESHOLD - C.CLAIMS["C1"].margin:
            v = "inconclusive"
        rows.append({**base, "effect": share, "ci_lo": lo, "ci_hi": hi, "p_value": p, "n": n, "verdict": v,
                     "reason": (f"{k} of {n} runtime operators cannot be split: measured share {share:.1%} "
                                f"[{lo:.1%}, {hi:.1%}] (Clopper-Pearson) vs threshold {C1_THRESHOLD:.0%}, exact "
                                f"one-sided binomial p = {p:.2g}; beside the paper's {PAPER_C1_VALUE:.0%}: "
                                f"{(share - PAPER_C1_VALUE) * 100:+.0f} points")})
    for e in ENGINES:
        rep = REPRESENTATION[e]
        for pr in ("cpu", "gpu"):
            sub = c[(c["representation"] == rep) & (c["processor"] == pr)]
            # context of C2 (decided by mulayer_overhead on measured co-execution): the Amdahl bound
            base = dict(claim="C2", form="context", representation=rep, processor=pr,
                        primary=(rep == PRIMARY_REPRESENTATION and pr == "cpu"),
                        text=(f"Amdahl bound on the speedup of a channel-wise two-processor split of {model} "
                              f"({rep}, operator times on {pr}): 1/(f + (1-f)/2), f = latency share of "
                              f"operators it cannot split; 'keeps parallel strategies from their potential' "
                              f"tested as bound < {C2_MATERIAL} (at least 10% below the ideal {C2_IDEAL:.0f}x)"),
                        statistic="Amdahl speedup bound 2/(1+f)", paper_value=PAPER_C2, p_value=np.nan)
            if sub.empty or np.isnan(sub.iloc[0]["unsplittable_latency_share"]):
                why = (_absent_reason(absent, model, e, pr) if sub.empty else
                       (sub.iloc[0].get("latency_note") or "no operator times"))
                rows.append({**base, "effect": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "n": 0,
                             "verdict": "not measurable", "reason": why})
                continue
            r = sub.iloc[0]
            lo, hi = float(r["amdahl_ci_lo"]), float(r["amdahl_ci_hi"])
            v = _verdict(lo, hi, C2_MATERIAL, False)
            f, flo, fhi = r["unsplittable_latency_share"], r["latency_ci_lo"], r["latency_ci_hi"]
            rows.append({**base, "effect": float(r["amdahl_bound"]), "ci_lo": lo, "ci_hi": hi,
                         "n": int(r["n_repeats"]), "verdict": v,
                         "reason": (f"f = {f:.1%} [{flo:.1%}, {fhi:.1%}] (bootstrap over {int(r['n_repeats'])} "
                                    f"per-operator profile repeats); bound {float(r['amdahl_bound']):.2f}x vs "
                                    f"threshold {C2_MATERIAL}x"
                                    + ("; fewer than 2 repeats: no CI" if int(r["n_repeats"]) < 2 else ""))})
    cols = ["claim", "form", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "n", "paper_value",
            "verdict", "reason", "representation", "processor", "primary"]
    return pd.DataFrame(rows, columns=cols)


CLAIMS_TABLES = ["coexec", "availability"]


def claims_from_tables(read, params: dict[str, Any], seed: int = 0) -> pd.DataFrame | None:
    """C1 (and C2's context rows) recomputed with the current code from the ``coexec`` table."""
    co = read("coexec")
    need = {"model", "representation", "processor", "n_unsplittable", "n_runtime", "unsplittable_count_share"}
    if co is None or not need <= set(co.columns):
        return None
    for c in ("unsplittable_latency_share", "latency_ci_lo", "latency_ci_hi", "amdahl_bound", "amdahl_ci_lo",
              "amdahl_ci_hi", "n_repeats", "latency_note"):
        if c not in co:
            co[c] = np.nan if c != "latency_note" else ""
    av = read("availability")
    absent = av[~av["available"].map(C._is_true)] if av is not None and "available" in av else av
    if absent is None or not {"model", "engine", "processor", "reason"} <= set(absent.columns):
        absent = pd.DataFrame(columns=["model", "engine", "processor", "reason"])
    return claims(co, absent)


def _absent_reason(absent: pd.DataFrame, model: str, engine: str, processor: str | None = None) -> str:
    if engine == "onnx":
        return f"{model} not measured (no .onnx file graph read)"
    a = absent[(absent["model"] == model) & (absent["engine"] == engine)]
    if processor is not None:
        a = a[a["processor"] == processor]
    elif (a["processor"] == "cpu").any():
        a = a[a["processor"] == "cpu"]  # the graph is read on the CPU: its reason is the one that matters
    if len(a):
        return "; ".join(f"{engine} on {r['processor']}: {r['reason']}" for _, r in a.iterrows())
    return f"{model} x {engine}{' x ' + processor if processor else ''} not in this run's parameters"


def analyse(ctx, data: pd.DataFrame) -> dict[str, pd.DataFrame]:
    seed = int(getattr(ctx, "seed", 0))
    onnx_files = {}
    for m in sorted(set(data.loc[data["engine"] == "onnxruntime", "model"].dropna())):
        try:
            spec = ctx.model(m)
            if spec.has("onnx"):
                onnx_files[m] = onnx_file_ops(spec.path("onnx"))
        except Exception:  # no manifest, onnx not importable or file unreadable: the static view is skipped
            continue
    absent = pd.concat([_rec(data, "absent"), _rec(data, "error")], ignore_index=True)
    support = support_table(data, seed)
    coexec = coexec_table(data, seed, onnx_files)
    tables = {
        "support": support,
        "coexec": coexec,
        "unsupported_types": unsupported_types(data),
        "latency": latency_table(data),
        "availability": absent[["model", "engine", "processor", "method", "reason"]].reset_index(drop=True)
        if len(absent) else pd.DataFrame(columns=["model", "engine", "processor", "method", "reason"]),
        "claims": claims(coexec, absent),
    }
    for name, df in tables.items():
        ctx.write(df, table=name)
    return tables


# =========================================================================== plot
VIEW_ORDER = ["cpu", "gpu", "gpu (static)", "npu"]


def _stacked(ax, sup: pd.DataFrame, engine: str, value: str, lo: str | None, hi: str | None, title: str):
    from study.plotting import PROCESSOR_COLORS

    s = sup[sup["engine"] == engine]
    # models this engine has a form of (a model with no .onnx / no PyTorch definition is left out)
    has = set(s.loc[s["available"].astype(bool), "model"])
    s = s[s["model"].isin(has)]
    models = [m for m in DEFAULT_MODELS if m in has] + sorted(has - set(DEFAULT_MODELS))
    views = [v for v in VIEW_ORDER if v in set(s["view"])]
    width = 0.8 / max(len(views), 1)
    for j, v in enumerate(views):
        color = PROCESSOR_COLORS.get(v.split(" ")[0], "#777777")
        for i, m in enumerate(models):
            x = i - 0.4 + width * (j + 0.5)
            r = s[(s["model"] == m) & (s["view"] == v)]
            if r.empty:
                continue
            r = r.iloc[0]
            val = r.get(value, np.nan)
            if not bool(r["available"]) or pd.isna(val):
                ax.text(x, 0.02, "absent" if not bool(r["available"]) else "n/a", rotation=90, ha="center",
                        va="bottom", fontsize=6, color="#555555")
                continue
            ax.bar(x, 1 - val, width, color=color, alpha=0.35 if "static" in v else 0.85,
                   hatch="//" if "static" in v else None, edgecolor="white", linewidth=0.3)
            ax.bar(x, val, width, bottom=1 - val, color="#C44E52", edgecolor="white", linewidth=0.3)
            if lo and hi and not pd.isna(r.get(lo, np.nan)):
                ax.errorbar(x, 1 - val, yerr=[[max(0.0, r[hi] - val)], [max(0.0, val - r[lo])]], fmt="none",
                            ecolor="black", elinewidth=0.7, capsize=1.5)
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models, rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    return views


def _support_figure(sup: pd.DataFrame, value: str, lo: str | None, hi: str | None, ylabel: str):
    import matplotlib.patches as mpatches

    from study.plotting import PROCESSOR_COLORS, figure

    engines = [e for e in ENGINES if e in set(sup["engine"])] or ["litert"]
    fig, axes = figure(7.0, 2.6 * len(engines), nrows=len(engines), squeeze=False)
    seen = []
    for ax, e in zip(axes[:, 0], engines):
        seen += _stacked(ax, sup, e, value, lo, hi, e)
        ax.set_ylabel(ylabel, fontsize=8)
    handles = [mpatches.Patch(color=PROCESSOR_COLORS.get(v.split(" ")[0], "#777"),
                              alpha=0.35 if "static" in v else 0.85,
                              hatch="//" if "static" in v else None, label=f"supported on {v}")
               for v in VIEW_ORDER if v in seen]
    handles.append(mpatches.Patch(color="#C44E52", label="fallback"))
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 5), fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def plot(ctx, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    from study.plotting import PROCESSOR_COLORS, figure, mark_paper

    figs = {}
    sup = tables["support"]
    figs["fallback_by_count"] = _support_figure(sup, "fallback_count_ratio", None, None, "share of operators")
    figs["fallback_by_latency"] = _support_figure(sup, "fallback_latency_share", "fallback_latency_ci_lo",
                                                  "fallback_latency_ci_hi", "share of operator time")

    co = tables["coexec"]
    fig, axes = figure(7.0, 6.0, nrows=2, squeeze=False)
    reps = [REPRESENTATION[e] for e in ENGINES] + [ONNX_FILE]
    colors = dict(zip(reps, ["#4C72B0", "#55A868", "#DD8452", "#8172B3"]))
    count = co.drop_duplicates(["model", "representation"])
    models = [m for m in DEFAULT_MODELS if m in set(co["model"])] + sorted(set(co["model"]) - set(DEFAULT_MODELS))
    w = 0.8 / len(reps)
    for k, rep in enumerate(reps):
        for i, m in enumerate(models):
            r = count[(count["model"] == m) & (count["representation"] == rep)]
            if len(r):
                axes[0, 0].bar(i - 0.4 + w * (k + 0.5), r.iloc[0]["unsplittable_count_share"], w, color=colors[rep],
                               label=rep)
            lat = co[(co["model"] == m) & (co["representation"] == rep) & (co["processor"] == "cpu")]
            if len(lat) and not pd.isna(lat.iloc[0]["unsplittable_latency_share"]):
                r = lat.iloc[0]
                x = i - 0.4 + w * (k + 0.5)
                axes[1, 0].bar(x, r["unsplittable_latency_share"], w, color=colors[rep])
                if not pd.isna(r["latency_ci_lo"]):
                    axes[1, 0].errorbar(x, r["unsplittable_latency_share"],
                                        yerr=[[r["unsplittable_latency_share"] - r["latency_ci_lo"]],
                                              [r["latency_ci_hi"] - r["unsplittable_latency_share"]]],
                                        fmt="none", ecolor="black", elinewidth=0.7, capsize=1.5)
    for ax, yl in ((axes[0, 0], "unsplittable share (count)"), (axes[1, 0], "unsplittable share (CPU time)")):
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=30, ha="right", fontsize=7)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(yl, fontsize=8)
        ax.axhline(C1_THRESHOLD, color="#777777", ls=":", lw=1)
    mark_paper(axes[0, 0], PAPER_C1_VALUE, "paper: ResNet-50, Xiaomi 9 (48%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    axes[0, 0].legend(uniq.values(), uniq.keys(), fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                      frameon=False)
    axes[0, 0].set_title("Operators a channel-wise CPU+GPU split cannot split (dotted: C1 threshold)", fontsize=9,
                         pad=20)
    fig.tight_layout()
    figs["coexec_unsplittable"] = fig

    fig, ax = figure(7.0, 3.4)
    am = co[co["amdahl_bound"].notna()]
    procs = sorted(set(am["processor"]))
    keys = [(rep, pr) for rep in reps for pr in procs
            if len(am[(am["representation"] == rep) & (am["processor"] == pr)])]
    w = 0.8 / max(len(keys), 1)
    for k, (rep, pr) in enumerate(keys):
        for i, m in enumerate(models):
            r = am[(am["model"] == m) & (am["representation"] == rep) & (am["processor"] == pr)]
            if r.empty:
                continue
            r = r.iloc[0]
            x = i - 0.4 + w * (k + 0.5)
            ax.bar(x, r["amdahl_bound"] - 1, w, bottom=1, color=colors[rep], alpha=1.0 if pr == "cpu" else 0.5,
                   edgecolor=PROCESSOR_COLORS.get(pr, "black"), linewidth=0.6,
                   label=f"{rep}, {pr} times" if i == 0 else None)
            if not pd.isna(r["amdahl_ci_lo"]):
                ax.errorbar(x, r["amdahl_bound"], yerr=[[r["amdahl_bound"] - r["amdahl_ci_lo"]],
                                                        [r["amdahl_ci_hi"] - r["amdahl_bound"]]],
                            fmt="none", ecolor="black", elinewidth=0.7, capsize=1.5)
    ax.axhline(C2_IDEAL, color="black", lw=0.8)
    ax.axhline(C2_MATERIAL, color="#777777", ls=":", lw=1)
    ax.set_ylim(1, 2.05)
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("Amdahl bound (x)", fontsize=8)
    ax.set_title("Speedup bound of a two-processor channel-wise split (line: ideal 2x; dotted: C2 threshold)",
                 fontsize=9, pad=20)
    if keys:
        ax.legend(fontsize=7, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    figs["amdahl_bound"] = fig

    for name, f in figs.items():
        ctx.save(f, name)
    return figs


# =========================================================================== run
def run(ctx) -> dict[str, Any]:
    from study.common import run_finding

    return run_finding(ctx, measure, analyse, plot)
