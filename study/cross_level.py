"""Finding 6: cross-level optimization, where frontend compression meets backend placement (claim C10).

Stage ``cross_level`` (notebook ``06_cross_level.ipynb``).

The paper's first finding: existing parallel strategies stop at the backend (placement,
fusion, parallelism) while models are over-parameterized; choosing frontend compression
(quantization, pruning, low-rank decomposition) together with the backend is the
opportunity (muLayer's processor-friendly quantization, CPU int8 + GPU fp16, is one
instance). This stage builds the frontend variants of each model, measures every
variant x engine x processor, and compares the best joint choice with the best
single-level ones at a fidelity floor.

**Frontend variants** (``study.compress``), built inside the stage into
``data/<device>/cross_level/variants/`` (working files: removed at the end of the run
unless ``keep_variants``; the ``variants`` table keeps their sizes and hashes):

* every model: ``fp32``; ``fp16`` (weights); ``int8_dynamic`` (dynamic-range int8);
  ``int8_static`` (full integer, calibrated on real frames). LiteRT files through
  ``ai-edge-quantizer`` (the trained MediaPipe files first get their fp16 weights folded
  into fp32 constants: their ``fp32`` variant computes exactly what the shipped file
  computes), ONNX files through ``onnxruntime.quantization``. PyTorch (zoo models):
  ``fp16`` = the model cast to half (measured on the GPU; PyTorch's CPU has no fast fp16
  kernels, ``torch_cpu_fp16``), ``int8_dynamic`` = x86 quantized kernels on the CPU
  (weights int8 per channel, activations quantized at run time, convolution outputs
  requantized to a calibrated range; see ``study.compress``);
* PyTorch-defined zoo models also: ``pruned_<s>`` (structured L1 channel pruning,
  strengths ``prune_strengths``) and ``lowrank_<r>`` (truncated-SVD factorization of
  convolutions and linear layers, rank ratios ``lowrank_ratios``), run by PyTorch, exported
  to ONNX, and converted to ``.tflite`` where ``litert-torch`` is installed (a row says
  "not converted: litert-torch not installed" elsewhere). No fine-tuning.

**Per variant x engine x processor**: latency (the harness, on a real frame), model size
(file bytes; PyTorch: parameter, buffer and packed-weight bytes), operator placement and
fallbacks (finding 1's machinery: LiteRT on the CPU = XNNPACK's partitions; LiteRT on the
GPU = TFLite's GPU compatibility checker on every host, plus ``is_fully_accelerated()``
where a GPU runs it; ONNX Runtime / PyTorch on a GPU = their profilers; on the CPU these
two run every operator on the CPU by definition), and fidelity against the fp32 model on
real frames (``study.video`` clips): for the trained MediaPipe models the task's own
measure against the fp32 outputs (face detection: matched-box IoU and score difference;
selfie segmentation: mask mIoU), for the untrained zoo models output *agreement*
(1 - relative L2 error of the outputs; top-1 agreement for classifiers), never accuracy.
The fp32 reference is the engine's own fp32 model on the CPU (so a file whose weights
differed from the PyTorch definition could not pass as a compression error); every other
unit of that engine (its fp32 model on other processors included, e.g. LiteRT's GPU
computing in fp16) is compared with it; the co-execution pairings with PyTorch's.

**Co-execution** (finding 2's engine, ``study.coexec`` through ``study.precision_pair``): for
``coexec_models`` on a host with a CUDA GPU, operator-level CPU+GPU splits in three
precision pairings: both fp32, both fp16, and muLayer's processor-friendly pairing (CPU part
int8, GPU part fp16), each at the ratio the engine's per-layer profile predicts. On a host
without a GPU these rows are ``not measurable`` with the reason (a CPU+CPU pairing is not
run: both sides of it would prefer the same precision, so it says nothing about
processor-friendly quantization).

**Cross-level comparison** per model at the fidelity floor: among the measured units whose
mean fidelity reaches the floor, the best *joint* choice (any variant, any engine x
processor or split), the best *backend-only* choice (fp32: any engine x processor or fp32
split) and the best *frontend-only* choice (any variant on the fixed backend
``frontend_engine`` x ``frontend_processor``). Gains are latency ratios of the medians with
a bootstrap that resamples every candidate's samples and repeats the selection in each
replicate (the interval includes the uncertainty of which configuration is best).

**C10, measurable form**: latency(best joint) / latency(best single-level choice, backend-only
or frontend-only) at the fidelity floor is below ``1 - c10_material`` (the joint choice is
materially faster than either level alone); reproduced if the 95% CI lies below it,
contradicted if above, inconclusive otherwise; one row per model, the ``primary_model``'s
row stands for the claim; the processor-friendly pairing against both single-precision
splits adds rows where a GPU exists.

Tidy dataset: one row per measurement, its kind in ``record``: ``variant`` (a built
variant file or module, or why not), ``absent`` (a unit that cannot run here, with the
reason), ``error`` (a unit that failed, with the error), ``fidelity`` (one frame of one
unit), ``placement`` (one unit's operator placement summary), ``latency`` (one timed call,
from the harness), ``coexec`` (a co-execution pairing's predicted split ratio).
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study import claims as C
from study import devices, phone, stats
from study.devices import PYTHON
from study.logcache import KeyedLog
from study.measure import Config, current_affinity, set_affinity
from study.schema import STAGES, ParamError

FINDING = "cross_level"
RECORDS_LOG = "cross_level-records"   # raw log of builds, fidelity frames and placements
MEDIAPIPE_TASKS = {"face_detection_short_range": "face_detection", "selfie_segmentation": "segmentation"}
ZOO_MODELS = ("resnet50", "vgg16", "mobilenet_v2", "fast_style_transfer", "yolo_det", "transformer_enc")
SUPPORTED = list(ZOO_MODELS) + list(MEDIAPIPE_TASKS)
ENGINES = ("litert", "onnxruntime", "torch")
QUANT = ("fp16", "int8_dynamic", "int8_static")
COEXEC_ENGINE = "coexec"
# pairing name -> (gpu precision, cpu precision, frontend label)
PAIRINGS = {"split_fp32": ("fp32", "fp32", "none"),
            "split_fp16": ("fp16", "fp16", "fp16 (both parts)"),
            "split_int8_fp16": ("fp16", "int8", "cpu int8 + gpu fp16")}
FRIENDLY = "split_int8_fp16"
PAPER_C10 = ("qualitative: stated as an opportunity in the first finding; muLayer's processor-friendly "
             "quantization (CPU int8, GPU fp16) is one instance")
METRIC_LABEL = {"agreement": "output agreement (1 - rel. L2 error)", "det_iou": "detection IoU vs fp32",
                "miou": "mask mIoU vs fp32"}
BOOL_COLUMNS = ["available", "below_floors", "trained", "qualifies", "pareto", "primary"]


PARAMS = STAGES["cross_level"]   # the schema of this stage's section (study.schema)


def check_params(resolved: dict[str, Any], params: dict[str, Any]) -> None:
    from study.config import check_models

    check_models(FINDING, list(resolved["models"]), params)
    if resolved["primary_model"] not in resolved["models"]:
        raise ParamError(f"{FINDING}.primary_model: {resolved['primary_model']!r} is not in models {resolved['models']}")
    bad = [m for m in resolved["coexec_models"] if m not in resolved["models"]]
    if bad:
        raise ParamError(f"{FINDING}.coexec_models: {bad} are not in models {resolved['models']}")
    if resolved["frontend_engine"] not in resolved["engines"]:
        raise ParamError(f"{FINDING}.frontend_engine: {resolved['frontend_engine']!r} is not in engines")
    if resolved["frontend_processor"] not in resolved["processors"]:
        raise ParamError(f"{FINDING}.frontend_processor: {resolved['frontend_processor']!r} is not in processors")


# =========================================================================== names and metrics
def struct_variants(p: dict[str, Any]) -> list[str]:
    return ([f"pruned_{round(s * 100):d}" for s in p["prune_strengths"]]
            + [f"lowrank_{round(r * 100):d}" for r in p["lowrank_ratios"]])


def family(variant: str) -> str:
    if variant == "fp32" or variant == "split_fp32":
        return "fp32"
    if variant.startswith("pruned"):
        return "pruning"
    if variant.startswith("lowrank"):
        return "low-rank"
    return "quantization"


def frontend_of(variant: str) -> str:
    """'none' for units without frontend compression (the backend-only choices)."""
    if variant in PAIRINGS:
        return PAIRINGS[variant][2]
    return "none" if variant == "fp32" else variant


def task_kind(model: str) -> str:
    return MEDIAPIPE_TASKS.get(model, "zoo")


def metric_of(model: str) -> str:
    return {"face_detection": "det_iou", "segmentation": "miou"}.get(task_kind(model), "agreement")


def floor_of(metric: str, p: dict[str, Any]) -> float:
    return {"agreement": p["floor_agreement"], "det_iou": p["floor_det_iou"], "miou": p["floor_seg_miou"]}[metric]


def fidelity(model: str, task: str, ref, test) -> dict[str, Any]:
    """Fidelity of one frame's result against the fp32 result: the primary metric (higher is
    better, in [0, 1]) and a secondary one."""
    from study import reuse

    kind = task_kind(model)
    if kind == "face_detection":
        iou, sd = reuse.det_fidelity(ref, test)
        return dict(metric="det_iou", fidelity=float(iou), metric2="score_abs_diff", fidelity2=float(sd))
    if kind == "segmentation":
        return dict(metric="miou", fidelity=reuse.seg_miou(ref, test), metric2="", fidelity2=np.nan)
    err = reuse.rel_error(ref, test)
    agree = float(min(1.0, max(0.0, 1.0 - err)))
    if task == "classification":
        return dict(metric="agreement", fidelity=agree, metric2="top1_agreement",
                    fidelity2=reuse.top1_agreement(ref, test))
    return dict(metric="agreement", fidelity=agree, metric2="rel_error", fidelity2=float(err))


# =========================================================================== inputs
def model_input(model: str, u8: np.ndarray) -> np.ndarray:
    """A frame (already at the model's input size, uint8 HWC) as the model's input array."""
    from study import mediapipe_io as mio

    if model == "face_detection_short_range":
        return mio.to_tensor(u8, *mio.FACE_INPUT_RANGE)
    if model == "selfie_segmentation":
        return mio.to_tensor(u8, *mio.SELFIE_INPUT_RANGE)
    return np.ascontiguousarray((u8.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])


def resize_for(model: str, frame: np.ndarray) -> np.ndarray:
    from study import mediapipe_io as mio
    from study import video

    if model == "face_detection_short_range":
        return mio.letterbox(frame)[0]
    if model == "selfie_segmentation":
        return mio.stretch(frame)
    from study.models.zoo import ZOO

    h, w = ZOO[model].input_shape[2:]
    return video.resize(frame, (w, h))


def decode(model: str, outs: list[np.ndarray]):
    """Engine outputs -> the result fidelity compares: detections (tensor coordinates),
    the thresholded mask, or the first output without its batch dimension."""
    from study import mediapipe_io as mio

    if model == "face_detection_short_range":
        return mio.decode_faces(outs[0], outs[1], _anchors())
    if model == "selfie_segmentation":
        return np.asarray(outs[0])[0, ..., 0] >= mio.SELFIE_MASK_THRESHOLD
    return np.asarray(outs[0], dtype=np.float32)[0]


_ANCHORS: list = []


def _anchors():
    from study import mediapipe_io as mio

    if not _ANCHORS:
        _ANCHORS.append(mio.face_anchors())
    return _ANCHORS[0]


def frame_sets(model: str, p: dict[str, Any], cache: dict | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(calibration frames, fidelity frames), uint8 at the model's input size: every
    ``frame_stride``-th frame of the clips, alternating between the two sets (distinct frames)."""
    from study import video

    clips = list(p["face_clips"] if model in MEDIAPIPE_TASKS else p["clips"])
    n_cal, n_fid, stride = int(p["calib_frames"]), int(p["fidelity_frames"]), int(p["frame_stride"])
    need = 2 * max(n_cal, n_fid)
    per_clip = int(math.ceil(need / len(clips)))
    frames: list[np.ndarray] = []
    for c in clips:
        key = (c, per_clip * stride)
        if cache is not None and key in cache:
            raw = cache[key]
        else:
            raw = video.load(c, per_clip * stride)
            if cache is not None:
                cache[key] = raw
        frames += [resize_for(model, f) for f in raw[::stride][:per_clip]]
    fid = frames[0::2][:n_fid]
    cal = frames[1::2][:n_cal]
    if len(fid) < 2 or not cal:
        raise ValueError(f"{model}: clips {clips} give too few frames ({len(frames)}) for calibration and fidelity")
    return cal, fid


# =========================================================================== units
@dataclass
class Artifact:
    """One variant in one engine's form: a file or a PyTorch module, or why not."""

    model: str
    variant: str
    engine: str
    path: Path | None = None
    module: Any = None
    status: str = "ok"            # ok | failed | not applicable
    reason: str = ""
    method: str = ""
    size_bytes: float = np.nan
    size_method: str = ""
    sha256: str = ""
    build_s: float = np.nan
    macs: float = np.nan
    details: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def row(self) -> dict[str, Any]:
        return dict(record="variant", model=self.model, variant=self.variant, family=family(self.variant),
                    frontend=frontend_of(self.variant), engine=self.engine,
                    file=str(self.path.name) if self.path is not None else "", status=self.status,
                    reason=self.reason, method=self.method, size_bytes=float(self.size_bytes),
                    size_method=self.size_method, sha256=self.sha256, build_s=float(self.build_s),
                    macs=float(self.macs), details=json.dumps(self.details, default=str))


def _file_size(path: Path) -> tuple[float, str]:
    return float(path.stat().st_size), "file bytes"


def _spec_for(base, path: Path, fmt: str):
    from study.models import ModelSpec

    return ModelSpec(name=base.name, source=base.source, task=base.task, files={fmt: str(path.resolve())},
                     torch_zoo=base.torch_zoo, seed=base.seed, inputs=base.inputs, outputs=base.outputs)


class Builder:
    """Builds the variants of one model (files under ``vdir``), recording each build."""

    def __init__(self, ctx, model: str, vdir: Path, cal_inputs: list[np.ndarray], log):
        self.ctx, self.model, self.vdir, self.log = ctx, model, vdir, log
        self.p = ctx.params
        self.spec = ctx.model(model)
        self.cal = cal_inputs
        self.arts: dict[tuple[str, str], Artifact] = {}
        self.vdir.mkdir(parents=True, exist_ok=True)
        self.threads = max(1, len(ctx.cores_for(self.p["core_group"])))

    def _record(self, a: Artifact) -> Artifact:
        self.arts[(a.variant, a.engine)] = a
        self.log.append({"type": "variant", **a.row(), "t_wall": time.time()})
        return a

    def _build(self, variant: str, engine: str, fn) -> Artifact:
        """Run ``fn() -> Artifact fields``; a failure is recorded with its reason."""
        from study.compress import VariantError

        t0 = time.perf_counter()
        a = Artifact(self.model, variant, engine)
        try:
            out = fn()
            for k, v in out.items():
                setattr(a, k, v)
        except VariantError as e:
            a.status, a.reason = ("not applicable" if str(e).startswith("not ") else "failed"), str(e)
        except Exception as e:  # a variant that fails to build is reported, the others go on
            a.status, a.reason = "failed", f"{type(e).__name__}: {e}"[:500]
        a.build_s = time.perf_counter() - t0
        if a.ok and a.path is not None and a.path.exists():
            from study.compress import sha256_file

            a.sha256 = a.sha256 or sha256_file(a.path)
            if np.isnan(a.size_bytes):
                a.size_bytes, a.size_method = _file_size(a.path)
        return self._record(a)

    def not_applicable(self, variant: str, engine: str, reason: str) -> Artifact:
        return self._record(Artifact(self.model, variant, engine, status="not applicable", reason=reason))

    # ------------------------------------------------------------------ LiteRT
    def litert(self, struct_modules: dict[str, Any]) -> None:
        from study import compress as C

        spec = self.spec
        if not spec.has("tflite"):
            return
        src = spec.path("tflite")
        if self.model in MEDIAPIPE_TASKS:
            dst = self.vdir / f"{self.model}-fp32.tflite"
            a = self._build("fp32", "litert", lambda: dict(
                path=dst, details=C.densify_tflite(src, dst),
                method="shipped fp16 weights folded into fp32 constants (exact), signature added"))
        else:
            a = self._build("fp32", "litert", lambda: dict(path=src, method="the models stage's .tflite (litert-torch)",
                                                           sha256=spec.sha256.get("tflite", "")))
        fp32 = a.path if a.ok else None
        cal = [[x] for x in self.cal]
        for q in self.p["quant_variants"]:
            if fp32 is None:
                self.not_applicable(q, "litert", f"no fp32 .tflite to quantize ({a.reason})")
                continue
            dst = self.vdir / f"{self.model}-{q}.tflite"
            self._build(q, "litert", lambda q=q, dst=dst: dict(
                path=dst, **C.quantize_tflite(fp32, dst, q, cal if q == "int8_static" else (), self.threads)))
            if (q, "litert") in self.arts and self.arts[(q, "litert")].ok:
                art = self.arts[(q, "litert")]
                art.details = {"constant_types": C.tflite_weight_types(art.path)}
        for v, mod in struct_modules.items():
            if mod is None:
                continue
            dst = self.vdir / f"{self.model}-{v}.tflite"
            x = self._torch_example()
            self._build(v, "litert", lambda mod=mod, dst=dst, x=x: dict(path=dst, **C.export_tflite(mod, x, dst)))

    # ------------------------------------------------------------------ ONNX
    def onnx(self, struct_modules: dict[str, Any]) -> None:
        from study import compress as C

        spec = self.spec
        if not spec.has("onnx"):
            return
        src = spec.path("onnx")
        a = self._build("fp32", "onnxruntime", lambda: dict(path=src, method="the models stage's .onnx",
                                                             sha256=spec.sha256.get("onnx", "")))
        for q in self.p["quant_variants"]:
            if not a.ok:
                self.not_applicable(q, "onnxruntime", f"no fp32 .onnx to quantize ({a.reason})")
                continue
            dst = self.vdir / f"{self.model}-{q}.onnx"
            self._build(q, "onnxruntime", lambda q=q, dst=dst: dict(
                path=dst, **C.quantize_onnx(src, dst, q, self.cal if q == "int8_static" else ())))
        for v, mod in struct_modules.items():
            if mod is None:
                continue
            dst = self.vdir / f"{self.model}-{v}.onnx"
            x = self._torch_example()
            self._build(v, "onnxruntime", lambda mod=mod, dst=dst, x=x: dict(path=dst, **C.export_onnx(mod, x, dst)))

    # ------------------------------------------------------------------ PyTorch
    def _torch_example(self):
        import torch

        return torch.from_numpy(self.cal[0])

    def torch_modules(self) -> dict[str, Any]:
        """Builds the PyTorch variants (fp32, fp16, int8, pruned, low rank); returns the
        structural ones (for export) by name."""
        from study import compress as C
        from study.models.zoo import build

        spec = self.spec
        if not spec.has("torch"):
            return {}
        x = self._torch_example()
        fp32 = self._build("fp32", "torch", lambda: _module_fields(build(spec.torch_zoo, spec.seed), x,
                                                                   "zoo definition (study.models.zoo), fp32"))
        out: dict[str, Any] = {}
        if not fp32.ok:
            for v in list(self.p["quant_variants"]) + struct_variants(self.p):
                self.not_applicable(v, "torch", f"no fp32 PyTorch model ({fp32.reason})")
            return {v: None for v in struct_variants(self.p)}
        base = fp32.module
        for q in self.p["quant_variants"]:
            if q == "fp16":
                self._build(q, "torch", lambda: _module_fields(C.cast_model(base, "fp16"), x,
                                                               "the model cast to fp16 (inputs/outputs fp32)",
                                                               macs=fp32.macs))
            elif q == "int8_dynamic":
                import torch

                cal = [torch.from_numpy(c) for c in self.cal]
                self._build(q, "torch", lambda cal=cal: _int8_fields(base, cal, x, bool(self.p["int8_reduce_range"])))
            else:
                self.not_applicable(q, "torch", "not built: PyTorch eager has no full-integer int8 graph here "
                                                "(its int8 variant is int8_dynamic)")
        for s in self.p["prune_strengths"]:
            v = f"pruned_{round(s * 100):d}"
            a = self._build(v, "torch", lambda s=s: _struct_fields(*C.prune_model(base, s, int(self.p["prune_multiple"])),
                                                                    x))
            out[v] = a.module if a.ok else None
        for r in self.p["lowrank_ratios"]:
            v = f"lowrank_{round(r * 100):d}"
            a = self._build(v, "torch", lambda r=r: _struct_fields(*C.lowrank_model(base, r), x))
            out[v] = a.module if a.ok else None
        return out


def _module_fields(mod, x, method: str, macs: float | None = None) -> dict[str, Any]:
    from study import compress as C

    inner = getattr(mod, "inner", mod)
    return dict(module=mod.eval(), method=method, size_bytes=float(C.param_bytes(inner)),
                size_method="parameter + buffer bytes in memory",
                macs=float(C.count_macs(inner, x)) if macs is None else float(macs))


def _struct_fields(mod, info, x) -> dict[str, Any]:
    from study import compress as C

    return dict(module=mod, method=info.pop("method"), details=info, size_bytes=float(C.param_bytes(mod)),
                size_method="parameter + buffer bytes in memory", macs=float(C.count_macs(mod, x)))


def _int8_fields(base, cal, x, reduce_range: bool) -> dict[str, Any]:
    from study import compress as C

    mod, info = C.int8_torch_model(base, cal, reduce_range)
    return dict(module=mod, method=info.pop("method"), details=info, size_bytes=float(C.param_bytes(mod)),
                size_method="parameter + buffer bytes + packed int8 weights", macs=float(C.count_macs(base, x)))


# =========================================================================== sessions
class _TorchVariantEngine:
    """Finding 1's PyTorch placement (``torch.profiler``) on a variant module."""

    @staticmethod
    def make(module):
        from study.engines.torch_engine import TorchEngine, torch_device

        class VariantTorchEngine(TorchEngine):
            def load_module(self, model, processor: str):
                import copy

                return copy.deepcopy(module).to(torch_device(processor)).eval()

        return VariantTorchEngine()


def open_unit(art: Artifact, processor: str, threads: int, seed: int, spec):
    """A session (``run``, ``outputs``, ``set_inputs``) of one variant on one processor."""
    from study.engines.base import captured_native_stderr

    if art.engine == "litert":
        from study.engines.litert import open_compiled

        with captured_native_stderr():
            return open_compiled(art.path, processor, threads, model=f"{art.model}:{art.variant}", seed=seed)
    if art.engine == "onnxruntime":
        from study.engines.onnxrt import OnnxRuntimeEngine

        return OnnxRuntimeEngine().open(_spec_for(spec, art.path, "onnx"), processor, threads, seed=seed)
    if art.engine == "torch":
        import copy

        import torch

        from study.engines.torch_engine import TorchSession, torch_device

        dev = torch_device(processor)
        mod = art.module if dev == "cpu" else copy.deepcopy(art.module).to(dev)
        if dev == "cpu":
            torch.set_num_threads(threads)
        s = TorchSession(engine="torch", processor=processor, model=f"{art.model}:{art.variant}", threads=threads,
                         module=mod.eval(), device=dev, info={"torch": torch.__version__, "device": dev})
        from study.models.zoo import example_input

        s.set_inputs([example_input(spec.torch_zoo, seed).numpy()])
        return s
    raise ValueError(f"unknown engine {art.engine!r}")


_PROBE = r"""
import sys
from study.engines.base import captured_native_stderr
from study.engines.litert import open_compiled
proc = sys.argv[1]
for path in sys.argv[2:]:
    print("start\t" + path, flush=True)
    try:
        with captured_native_stderr():
            s = open_compiled(path, proc, 1)
            s.run()
            s.close()
        print("ok\t" + path, flush=True)
    except Exception as e:
        print("error\t" + path + "\t" + (type(e).__name__ + ": " + str(e)).replace("\n", " ")[:300], flush=True)
"""


def probe_litert(paths: list[str], processor: str = "gpu", timeout_s: float = 300.0,
                 code: str = _PROBE) -> dict[str, str | None]:
    """Compile and run each ``.tflite`` once on ``processor`` in a child process first: a GPU
    accelerator that crashes the process on an operator it cannot handle (a native abort, no
    Python exception) then costs a row with the reason instead of the whole stage. Returns
    path -> None (ran, or raised: the stage reports that error itself) or why it crashed."""
    import os
    import subprocess
    import sys

    from study import paths as P

    out: dict[str, str | None] = {}
    remaining = [str(x) for x in paths]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(P.ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    while remaining:
        try:
            proc = subprocess.run([sys.executable, "-c", code, processor, *remaining], cwd=str(P.ROOT), env=env,
                                  capture_output=True, text=True, timeout=timeout_s)
            lines, rc, err = proc.stdout.splitlines(), proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as e:
            lines = (e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")).splitlines()
            rc, err = None, f"timed out after {timeout_s:g} s"
        started = None
        for line in lines:
            kind, _, rest = line.partition("\t")
            path = rest.split("\t", 1)[0]
            if kind == "start":
                started = path
            elif kind in ("ok", "error"):
                out[path] = None
                started = None
        if rc == 0:
            break
        if started is None:  # died outside any model (import, environment): every remaining one
            why = f"probe process failed ({'exit ' + str(rc) if rc is not None else err}): {err.strip()[-300:]}"
            for x in remaining:
                out.setdefault(x, why)
            break
        out[started] = (f"LiteRT on the {processor} ended the process ({'exit ' + str(rc) if rc is not None else err}) "
                        f"compiling or running this file (probed in a child process)")
        remaining = [x for x in remaining if x not in out]
    for x in remaining:
        out.setdefault(x, None)
    return out


def unit_reason(art: Artifact, processor: str, p: dict[str, Any]) -> str | None:
    """Why a built variant is not run on ``processor`` by design (None: it is run)."""
    if art.engine == "torch" and art.variant == "fp16" and processor == "cpu" and not p["torch_cpu_fp16"]:
        return ("not measured: fp16 is a GPU format for PyTorch here (its CPU has no fast fp16 kernels; "
                "torch_cpu_fp16 turns it on)")
    if art.engine == "torch" and art.variant == "int8_dynamic" and processor == "gpu":
        return "not applicable: PyTorch's int8 kernels (x86 quantized backend) run on the CPU only"
    return None


# =========================================================================== placement
def _annotate(df: pd.DataFrame, constant: set[int] | None) -> pd.DataFrame:
    try:
        from study.operator_support import annotate_ops

        return annotate_ops(df, constant)
    except ImportError:  # finding 1's module absent: the same rule, written out
        df = df.copy()
        df["constant_op"] = (df["engine"] == "litert") & df["op_index"].isin(constant or set())
        df["no_kernel"] = False
        df["fallback"] = ~df["delegated"].astype(bool) & ~df["constant_op"]
        return df


def placement_summary(df: pd.DataFrame, constant: set[int] | None = None) -> dict[str, Any]:
    """Counts of a placement table (``PLACEMENT_COLUMNS``): runtime operators, fallbacks,
    the fallback ratio and the fallen-back operator types."""
    a = _annotate(df, constant)
    runtime = a[~a["constant_op"].astype(bool) & ~a["no_kernel"].astype(bool)]
    fb = runtime[runtime["fallback"].astype(bool)]
    types = fb["op_type"].value_counts()
    return dict(n_ops=int(len(a)), n_runtime=int(len(runtime)), n_fallback=int(len(fb)),
                fallback_ratio=float(len(fb) / len(runtime)) if len(runtime) else np.nan,
                fallback_types=", ".join(f"{t} x{n}" for t, n in types.items()),
                placement_method=str(a["method"].iloc[0]) if len(a) else "")


def measure_placement(art: Artifact, processor: str, threads: int, spec, static: bool = False) -> dict[str, Any]:
    """Placement summary of one unit. ``static``: TFLite's GPU checker (any host)."""
    if art.engine == "litert":
        from study.engines import tflite_graph as tg
        from study.engines.litert import LiteRTEngine

        vspec = _spec_for(spec, art.path, "tflite")
        const = set(tg.constant_ops(art.path))
        if processor == "cpu":
            return placement_summary(LiteRTEngine().placement(vspec, "cpu", threads), const)
        df = LiteRTEngine().gpu_static(vspec)
        out = placement_summary(df, const)
        out["verdict"] = df.attrs.get("verdict", "")
        return out
    if processor == "cpu":
        return dict(n_ops=np.nan, n_runtime=np.nan, n_fallback=0, fallback_ratio=0.0, fallback_types="",
                    placement_method=f"by definition: {art.engine} on the CPU runs every operator on the CPU")
    if art.engine == "onnxruntime":
        from study.engines.onnxrt import OnnxRuntimeEngine

        return placement_summary(OnnxRuntimeEngine().placement(_spec_for(spec, art.path, "onnx"), processor, threads))
    import torch

    eng = _TorchVariantEngine.make(art.module)
    n = torch.get_num_threads()
    try:
        return placement_summary(eng.placement(spec, processor, threads))
    finally:
        torch.set_num_threads(n)  # TorchEngine.open sets the process-wide pool to ``threads``


# =========================================================================== raw-log cache
class _Records(KeyedLog):
    """Fidelity and placement measurements appended to a raw log as taken; a rerun after a
    kill reuses those of the unfinished session under the same key (``base``: the parameters,
    environment and seed they were taken under)."""

    def __init__(self, log, base: dict[str, Any]):
        super().__init__(log, base, field="base")


def _json_safe(v):
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


# =========================================================================== measure
UNIT_COLS = ["model", "variant", "family", "frontend", "engine", "processor"]


def _unit(art_or_model, variant=None, engine=None, processor=None, **extra) -> dict[str, Any]:
    if isinstance(art_or_model, Artifact):
        m, variant, engine = art_or_model.model, art_or_model.variant, art_or_model.engine
    else:
        m = art_or_model
    return dict(model=m, variant=variant, family=family(variant), frontend=frontend_of(variant), engine=engine,
                processor=processor, trained=m in MEDIAPIPE_TASKS, **extra)


def _reference(ctx, model: str, arts: dict[tuple[str, str], Artifact], fid_inputs, threads: int,
               engine: str | None = None):
    """(unit label, results) of the fp32 reference on the CPU: the fp32 form of ``engine``
    (every unit is compared with its own engine's fp32 model, so a file whose weights differ
    from the PyTorch definition cannot pass as a compression error), else the first fp32 form."""
    spec = ctx.model(model)
    order = ([engine] if engine else []) + [e for e in ("torch", "litert", "onnxruntime") if e != engine]
    for eng in order:
        a = arts.get(("fp32", eng))
        if a is None or not a.ok:
            continue
        s = open_unit(a, "cpu", threads, ctx.seed, spec)
        try:
            res = []
            for x in fid_inputs:
                s.set_inputs([x])
                res.append(decode(model, s.outputs()))
        finally:
            s.close()
        return f"fp32/{eng}/cpu", res
    raise RuntimeError(f"{model}: no fp32 form runs on the CPU (no reference for fidelity)")


def _coexec_units(ctx, model: str, base_module, x0, fid_inputs, cal_inputs, ref, spec, rec: _Records,
                  threads: int, cores, reason: str | None):
    """The precision pairings of one model: rows, harness configs and the pairs to close."""
    import torch

    p = ctx.params
    rows: list[dict[str, Any]] = []
    configs, pairs = [], []
    if reason is None and not torch.cuda.is_available():
        reason = "no CUDA GPU visible to PyTorch (torch.cuda.is_available() is False)"
    if reason is not None:
        for v in PAIRINGS:
            rows.append(dict(record="absent", **_unit(model, v, COEXEC_ENGINE, "cpu+gpu"), available=False,
                             reason=f"not measurable: {reason}"))
        return rows, configs, pairs
    try:  # finding 2's engine is another stage's module: an API change costs these rows, not the stage
        from study.precision_pair import PairSession, PrecisionPair, balanced_ratio
    except Exception as e:  # noqa: BLE001
        for v in PAIRINGS:
            rows.append(dict(record="error", **_unit(model, v, COEXEC_ENGINE, "cpu+gpu"), available=True,
                             method="co-execution pairing", reason=f"study.coexec unusable: {type(e).__name__}: {e}"[:500]))
        return rows, configs, pairs

    for v, (gp, cp, _) in PAIRINGS.items():
        try:
            pair = PrecisionPair(threads, gp, cp, device="cuda", reduce_range=bool(p["int8_reduce_range"]))
            pair.start()
            pairs.append(pair)
            rt = pair.load(f"{model}:{v}", base_module, torch.from_numpy(x0),
                           calibration=[torch.from_numpy(c) for c in cal_inputs])
            r, prof = balanced_ratio(pair, rt, int(p["coexec_profile_runs"]))
            rows.append(dict(record="coexec", **_unit(model, v, COEXEC_ENGINE, "cpu+gpu"), ratio=r,
                             n_layers=len(prof), method="study.coexec profile_layers + predict_ratios (global r)"))
            for i, x in enumerate(fid_inputs):
                pair.set_input(rt, torch.from_numpy(x))
                y, _ = pair.infer(rt, "operator", r)
                f = fidelity(model, spec.task, ref[i], pair.to_host(y).numpy()[0])
                rec.log.append({"type": "fidelity", "unit": f"{model}/{v}/coexec/cpu+gpu", "frame": i, **f})
                rows.append(dict(record="fidelity", **_unit(model, v, COEXEC_ENGINE, "cpu+gpu"), frame=i, ratio=r, **f))
            pair.set_input(rt, torch.from_numpy(x0))
            mb = sum(t.numel() * t.element_size() for t in list(rt.model_a.parameters()) + list(rt.model_b.parameters()))
            rows.append(dict(record="variant", model=model, variant=v, family=family(v), frontend=frontend_of(v),
                             engine=COEXEC_ENGINE, file="", status="ok", reason="",
                             method=f"study.precision_pair.PrecisionPair ({pair.label}) on study.coexec",
                             size_bytes=float(mb), size_method="GPU copy + CPU copy parameter bytes", sha256="",
                             build_s=np.nan, macs=np.nan, details=json.dumps({"ratio": r})))
            cols = dict(model=model, variant=v, family=family(v), frontend=frontend_of(v), engine=COEXEC_ENGINE,
                        engine_version=f"torch {torch.__version__}", processor="cpu+gpu", threads=threads,
                        core_group=p["core_group"], ratio=float(r))
            configs.append(Config(columns=cols, opener=lambda pair=pair, rt=rt, r=r: PairSession(pair, rt, r),
                                  cores=cores))
        except Exception as e:  # reported, the others go on
            rows.append(dict(record="error", **_unit(model, v, COEXEC_ENGINE, "cpu+gpu"), available=True,
                             method="co-execution pairing", reason=f"{type(e).__name__}: {e}"[:500]))
    return rows, configs, pairs


PHONE_FIDELITY = ("fidelity of the same .tflite file on the host CPU (LiteRT/XNNPACK): a phone runs no Python and "
                  "benchmark_model gives no outputs; the phone's delegates may round differently")


def measure(ctx) -> pd.DataFrame:
    """Builds the variants and measures every variant x engine x processor; writes the tidy dataset.

    Where the device runs the study's Python engines (``study.devices.PYTHON``: this host) every
    unit opens there: fidelity and placement per processor, the co-execution pairings. Elsewhere
    (a phone: only ``benchmark_model``) the LiteRT variants are built on the host and timed on
    the device's processors (``study.phone``: one row per call, the call's mean as the sample),
    placement comes from the device's op profile and fidelity from the same files on the host
    CPU (said in ``method``); ONNX Runtime, PyTorch and the pairings say why not. Either way
    every unit's latency is one harness run (interleaved, stopping rule)."""
    run = _Measure(ctx)
    t_start = time.time()
    with run.pinned():
        for m in run.p["models"]:
            run.model(m)
        t_built = time.time()
        lat = run.latency()
    data = _tidy(pd.concat([pd.DataFrame(run.rows), lat], ignore_index=True, sort=False))
    data.attrs["seconds"] = {"build_fidelity_placement": round(t_built - t_start, 1),
                             "latency": round(time.time() - t_built, 1)}
    ctx.write(data)
    for lg in (run.log, run.rlog):
        lg.mark_complete(finding=FINDING)
        lg.close()
    if not run.p["keep_variants"] and run.vroot.exists():
        shutil.rmtree(run.vroot, ignore_errors=True)
    return data


class _Measure:
    """The state of one ``measure``: rows, harness configurations, co-execution pairs, logs."""

    def __init__(self, ctx):
        import os

        from study import paths

        self.ctx, self.p = ctx, ctx.params
        self.python = devices.supports(ctx.device_spec, PYTHON)
        self.engines, self.processors = list(self.p["engines"]), list(self.p["processors"])
        self.cores = ctx.cores_for(self.p["core_group"])  # the device's cores (a phone's: pinned there)
        # builds, references and host fidelity run on this host's CPU
        self.host_threads = (ctx.threads_for("cpu", self.cores) if self.python
                             else max(1, min(4, os.cpu_count() or 1)))
        self.log, self.rlog = ctx.raw_log(), ctx.raw_log(RECORDS_LOG)
        self.rec = _Records(self.rlog, {"params": self.p, "env": ctx.env, "seed": ctx.seed})
        self.vroot = paths.aux_dir(ctx.device_spec, FINDING, ctx.data_root) / "variants"
        self.rows: list[dict[str, Any]] = []
        self.configs: list[Any] = []
        self.pairs: list[Any] = []
        self.clip_cache: dict = {}

    @contextlib.contextmanager
    def pinned(self):
        """This process on the stage's cores with TF32 off, where the units run in it; the pairs
        closed (each restores the TF32 flags it found) and everything restored after."""
        if not self.python:  # the device pins its own runs (taskset); the host builds unpinned
            yield
            return
        original = current_affinity()
        set_affinity(self.cores)
        tf32 = _tf32_off()
        try:
            yield
        finally:
            for pair in self.pairs:  # first: a pair restores the TF32 flags it found at its start
                try:
                    pair.close()
                except Exception:  # noqa: BLE001 - closing must not hide the measurement
                    pass
            _tf32_restore(tf32)
            set_affinity(original)

    def model(self, m: str) -> None:
        """Frames, variants and every unit of model ``m``."""
        spec = self.ctx.model(m)
        engines = self.engines if self.python else self._benchmark_engines(m)
        if not engines and not self.python:  # no LiteRT in this run: nothing runs on the device
            return
        try:
            cal_u8, fid_u8 = frame_sets(m, self.p, self.clip_cache)
        except Exception as e:
            self.rows.append(dict(record="error", **_unit(m, "fp32", "" if self.python else "litert", ""),
                                  available=True, method="frames", reason=f"{type(e).__name__}: {e}"[:500]))
            return
        cal_inputs = [model_input(m, u) for u in cal_u8]
        fid_inputs = [model_input(m, u) for u in fid_u8]
        b = Builder(self.ctx, m, self.vroot / m, cal_inputs, self.rlog)
        b.threads = self.host_threads
        struct = b.torch_modules()  # also the fp32 reference of zoo models, whatever the engines
        if "litert" in engines:
            b.litert(struct)
        if "onnxruntime" in engines:
            b.onnx(struct)
        arts = {k: a for k, a in b.arts.items() if a.engine in engines}
        self.rows += [a.row() for a in arts.values()]
        if self.python:
            self._python_units(m, spec, b, arts, cal_inputs, fid_inputs)
        else:
            self._benchmark_units(m, spec, b, arts, fid_inputs)

    def latency(self) -> pd.DataFrame:
        """Every unit that opened, one harness run; the failed ones as error rows."""
        lat = pd.DataFrame()
        if not self.configs:
            return lat
        lat = self.ctx.harness(self.log).run(self.configs)
        if len(lat):
            lat = lat.assign(record="latency", trained=lat["model"].isin(list(MEDIAPIPE_TASKS)))
            if "aggregate" in lat.columns:  # blocks the device timed: their means are the samples
                lat["method"] = phone.BLOCK_METHOD
        for _, f in self.ctx.failures(self.log, self.configs).iterrows():
            self.rows.append(dict(record="error", **{k: f.get(k) for k in UNIT_COLS}, available=True,
                                  method="harness" if self.python else "benchmark_model", reason=str(f["reason"])))
        return lat

    def _config(self, a: "Artifact", e: str, pr: str, th: int, opener) -> None:
        """The harness configuration of one unit (the device's engine: version, implementation)."""
        eng = self.ctx.device.engine(e)
        impl = {} if eng.name == e else {"engine_impl": eng.name}
        cols = dict(model=a.model, variant=a.variant, family=family(a.variant), frontend=frontend_of(a.variant),
                    engine=e, **impl, engine_version=eng.version(), processor=pr, threads=th,
                    core_group=self.p["core_group"], ratio=np.nan)
        self.configs.append(Config(columns=cols, opener=opener, cores=self.cores))

    # -- a device that runs the study's Python engines ----------------------------------
    def _python_units(self, m: str, spec, b: "Builder", arts: dict, cal_inputs, fid_inputs) -> None:
        refs: dict[str, tuple[str, Any]] = {}

        def ref_of(e: str) -> tuple[str, Any]:  # the fp32 reference of each engine (CPU) for fidelity
            if e not in refs:
                try:
                    refs[e] = _reference(self.ctx, m, b.arts, fid_inputs, self.host_threads, e)
                except Exception as ex:
                    self.rows.append(dict(record="error", **_unit(m, "fp32", e, "cpu"), available=True,
                                          method="fp32 reference", reason=f"{type(ex).__name__}: {ex}"[:500]))
                    refs[e] = ("", None)
            return refs[e]

        avail = self.ctx.availability([m], self.engines, self.processors)
        crashed: dict[str, str | None] = {}
        lg = avail[(avail["engine"] == "litert") & (avail["processor"] == "gpu")]
        if len(lg) and bool(lg.iloc[0]["available"]):  # a GPU accelerator may abort the process: probe first
            crashed = probe_litert([str(a.path) for (_, eng), a in arts.items() if eng == "litert" and a.ok], "gpu")
        for _, av in avail.iterrows():
            e, pr = av["engine"], av["processor"]
            th = self.ctx.threads_for(pr, self.cores)
            if not any(eng == e for (_, eng) in arts):
                self.rows.append(dict(record="absent", **_unit(m, "fp32", e, pr), available=False,
                                      reason=av["reason"] or f"{m} has no {e} form"))
                continue
            ref_label, ref = ref_of(e)
            for (v, eng), a in sorted(arts.items()):
                if eng == e:
                    self._python_unit(spec, a, av, th, ref_label, ref, crashed, fid_inputs)
        self._coexec(m, spec, b, avail, ref_of, cal_inputs, fid_inputs)

    def _python_unit(self, spec, a: "Artifact", av, th: int, ref_label: str, ref, crashed: dict,
                     fid_inputs) -> None:
        """Static GPU view, fidelity on real frames (the session's first life), measured
        placement and the harness configuration of one unit."""
        m, v, e, pr = a.model, a.variant, a.engine, av["processor"]
        unit = _unit(a, processor=pr, threads=th, core_group=self.p["core_group"], reference=ref_label)
        if a.ok and e == "litert" and pr == "gpu":  # static GPU view of every .tflite variant, on every host
            r0 = self._placement(a, "static", [m, v, e, pr], lambda: measure_placement(a, "gpu", th, spec, static=True))
            if r0["summary"] is not None:
                self.rows.append(dict(record="placement", **unit, view="gpu (static)", available=bool(av["available"]),
                                      **r0["summary"]))
        why = (av["reason"] if not av["available"] else f"variant {a.status}: {a.reason}" if not a.ok
               else unit_reason(a, pr, self.p) or None)
        if why is not None:
            self.rows.append(dict(record="absent", **unit, available=False, reason=why))
            return
        if e == "litert" and pr == "gpu" and crashed.get(str(a.path)):
            self.rows.append(dict(record="error", **unit, available=True, method="GPU probe",
                                  reason=crashed[str(a.path)]))
            return
        if ref is None:
            self.rows.append(dict(record="error", **unit, available=True, method="fidelity",
                                  reason="no fp32 reference"))
            return
        info: dict[str, Any] = {}
        try:
            for i, f in _fidelity_frames(a, pr, th, self.ctx.seed, spec, ref, fid_inputs, info):
                self.rlog.append({"type": "fidelity", "unit": [m, v, e, pr], "frame": i, **f, "t_wall": time.time()})
                self.rows.append(dict(record="fidelity", **unit, frame=i, **f))
        except Exception as ex:
            self.rows.append(dict(record="error", **unit, available=True, method="open / fidelity",
                                  reason=f"{type(ex).__name__}: {ex}"[:500]))
            return
        r0 = self._placement(a, "measured", [m, v, e, pr], lambda: _measured_placement(a, pr, th, spec, info, self.p),
                             threads=th)
        if r0["summary"] is not None:
            self.rows.append(dict(record="placement", **unit, view=pr, available=True,
                                  fully_accelerated=info.get("fully_accelerated", np.nan), **r0["summary"]))
        else:
            self.rows.append(dict(record="error", **unit, available=True, method="placement", reason=r0["error"]))

        def opener(a=a, pr=pr, th=th, x0=fid_inputs[0], spec=spec):
            s = open_unit(a, pr, th, self.ctx.seed, spec)
            s.set_inputs([x0])
            return s

        self._config(a, e, pr, th, opener)

    def _placement(self, a: "Artifact", view: str, unit: list, summarize, **key) -> dict[str, Any]:
        """A placement summary from the raw-log cache, else measured now (and cached)."""
        from study.engines.base import captured_native_stderr

        k = self.rec.key(kind="placement", view=view, unit=unit, sha=a.sha256, **key)
        r0 = self.rec.get(k)
        if r0 is None:
            try:
                with captured_native_stderr():
                    s = summarize()
                r0 = self.rec.put(k, "placement", summary={kk: _json_safe(vv) for kk, vv in s.items()}, error=None)
            except Exception as ex:
                r0 = self.rec.put(k, "placement", summary=None, error=f"{type(ex).__name__}: {ex}"[:500])
        return r0

    def _coexec(self, m: str, spec, b: "Builder", avail: pd.DataFrame, ref_of, cal_inputs, fid_inputs) -> None:
        """The co-execution pairings of ``m`` (finding 2's engine)."""
        p = self.p
        if m not in p["coexec_models"]:
            return
        ref = ref_of("torch")[1] if ("fp32", "torch") in b.arts and b.arts[("fp32", "torch")].ok else None
        if ref is None:
            for v in PAIRINGS:
                self.rows.append(dict(record="absent", **_unit(m, v, COEXEC_ENGINE, "cpu+gpu"), available=False,
                                      reason="not measurable: no fp32 PyTorch model or reference"))
            return
        why = None
        if "torch" not in self.engines or "gpu" not in self.processors:
            why = "the torch engine on the gpu is not in this run's parameters"
        else:
            a_t = avail[(avail["engine"] == "torch") & (avail["processor"] == "gpu")]
            if len(a_t) and not bool(a_t.iloc[0]["available"]):
                why = str(a_t.iloc[0]["reason"])
        crow, ccfg, cpairs = _coexec_units(self.ctx, m, b.arts[("fp32", "torch")].module, fid_inputs[0], fid_inputs,
                                           cal_inputs, ref, spec, self.rec, self.host_threads, self.cores, why)
        self.rows += crow
        self.configs += ccfg
        self.pairs += cpairs

    # -- a device that runs only benchmark_model (a phone) -------------------------------
    def _benchmark_engines(self, m: str) -> list[str]:
        """The engines that run on the device (LiteRT as benchmark_model); the others and the
        co-execution pairings as absent rows with the reason."""
        from study import stages

        for e in self.engines:
            if e == "litert":
                continue
            for pr in self.processors:
                self.rows.append(dict(record="absent", **_unit(m, "fp32", e, pr), available=False,
                                      reason=phone.engine_reason(e) or f"{e} is not run on a phone"))
        if m in self.p["coexec_models"]:
            for v in PAIRINGS:
                self.rows.append(dict(record="absent", **_unit(m, v, COEXEC_ENGINE, "cpu+gpu"), available=False,
                                      reason="not measurable on a phone: " + stages.get("mulayer_overhead").phone_why))
        return ["litert"] if "litert" in self.engines else []

    def _benchmark_units(self, m: str, spec, b: "Builder", arts: dict, fid_inputs) -> None:
        from study.engines import tflite_graph as tg

        try:
            ref_label, ref = _reference(self.ctx, m, b.arts, fid_inputs, self.host_threads, "litert")
        except Exception as ex:
            ref_label, ref = "", None
            self.rows.append(dict(record="error", **_unit(m, "fp32", "litert", "cpu"), available=True,
                                  method="fp32 reference", reason=f"{type(ex).__name__}: {ex}"[:500]))
        bench = self.ctx.device.engine("litert")
        host_fid: dict[str, list[dict[str, Any]]] = {}
        for pr in self.processors:
            why = phone.availability(self.ctx, m, "litert", pr)
            th = self.ctx.threads_for(pr, self.cores)
            for (v, _), a in sorted(arts.items()):
                unit = _unit(a, processor=pr, threads=th, core_group=self.p["core_group"], reference=ref_label,
                             engine_impl=bench.name)
                why_unit = why or (f"variant {a.status}: {a.reason}" if not a.ok else None)
                if why_unit:
                    self.rows.append(dict(record="absent", **unit, available=False, reason=why_unit))
                    continue
                if ref is not None and v not in host_fid:
                    host_fid[v] = self._host_fidelity(a, spec, ref, fid_inputs, unit)
                for f in host_fid.get(v, []):
                    self.rows.append(dict(record="fidelity", **unit, method=PHONE_FIDELITY, **f))
                vspec = _spec_for(spec, a.path, "tflite")
                try:
                    summ = placement_summary(bench.placement(vspec, pr, th), set(tg.constant_ops(a.path)))
                    self.rows.append(dict(record="placement", **unit, view=pr, available=True, **summ))
                except Exception as ex:
                    self.rows.append(dict(record="error", **unit, available=True, method="placement (phone)",
                                          reason=f"{type(ex).__name__}: {ex}"[:500]))
                self._config(a, "litert", pr, th, lambda vspec=vspec, pr=pr, th=th: self.ctx.device.open_session(
                    bench, vspec, pr, th, self.cores, self.ctx.seed))

    def _host_fidelity(self, a: "Artifact", spec, ref, fid_inputs, unit: dict[str, Any]) -> list[dict[str, Any]]:
        """Fidelity of the variant's file on the host CPU (the device gives no outputs)."""
        m, v = a.model, a.variant
        try:
            fr = [dict(frame=i, **f) for i, f in _fidelity_frames(a, "cpu", self.host_threads, self.ctx.seed, spec, ref,
                                                                  fid_inputs)]
        except Exception as ex:
            self.rows.append(dict(record="error", **unit, available=True, method="host fidelity",
                                  reason=f"{type(ex).__name__}: {ex}"[:500]))
            return []
        for f in fr:
            self.rlog.append({"type": "fidelity", "unit": [m, v, "litert", "host-cpu"], **f, "t_wall": time.time()})
        return fr


def _fidelity_frames(a: "Artifact", processor: str, threads: int, seed: int, spec, ref, fid_inputs,
                     info: dict[str, Any] | None = None):
    """(frame, fidelity against ``ref``) of a session of the unit on each fidelity frame, as each
    is computed; ``info``: filled with the session's info (its delegation)."""
    from study.engines.base import captured_native_stderr

    with captured_native_stderr():
        s = open_unit(a, processor, threads, seed, spec)
    if info is not None:
        info.update(getattr(s, "info", {}) or {})
    try:
        for i, x in enumerate(fid_inputs):
            s.set_inputs([x])
            yield i, fidelity(a.model, spec.task, ref[i], decode(a.model, s.outputs()))
    finally:
        s.close()


def _measured_placement(a: "Artifact", pr: str, th: int, spec, info: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """The placement a session of the unit had: LiteRT on the GPU per operator (``gpu_op_placement``)
    or its whole-model delegation; the others from ``measure_placement``."""
    e = a.engine
    if e == "litert" and pr == "gpu" and p["gpu_op_placement"]:
        from study.engines import tflite_graph as tg
        from study.engines.litert import LiteRTEngine

        return placement_summary(LiteRTEngine().placement(_spec_for(spec, a.path, "tflite"), "gpu", th),
                                 set(tg.constant_ops(a.path)))
    if e == "litert" and pr == "gpu":  # measured: the whole model's delegation
        full = bool(info.get("fully_accelerated"))
        return dict(n_ops=np.nan, n_runtime=np.nan, n_fallback=0 if full else np.nan,
                    fallback_ratio=0.0 if full else np.nan,
                    fallback_types="" if full else "some operators left to the CPU (per operator: the static view)",
                    placement_method="measured: CompiledModel.is_fully_accelerated() on the GPU")
    return measure_placement(a, pr, th, spec)


def _tf32_off():
    """fp32 on a GPU means fp32 in this stage: TF32 off for convolutions and matmuls while it
    measures (PyTorch leaves it on for cuDNN convolutions by default); returns the old flags."""
    try:
        from study.coexec import set_tf32
    except Exception:  # noqa: BLE001 - no torch: nothing to set
        return None
    return set_tf32(False)


def _tf32_restore(old) -> None:
    if old is not None:
        from study.coexec import restore_tf32

        restore_tf32(old)


def _tidy(data: pd.DataFrame) -> pd.DataFrame:
    for c in BOOL_COLUMNS:
        if c in data.columns:
            data[c] = data[c].map(lambda v: bool(v) if isinstance(v, (bool, np.bool_)) or v in (0, 1) else False)
    for c in ("record", "model", "variant", "family", "frontend", "engine", "processor", "reason", "method", "view",
              "metric", "metric2", "fallback_types", "placement_method", "reference", "status", "file", "sha256",
              "size_method", "details", "verdict", "core_group", "engine_version"):
        if c in data.columns:
            data[c] = data[c].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    if "fully_accelerated" in data.columns:
        data["fully_accelerated"] = data["fully_accelerated"].map(
            lambda v: float(v) if isinstance(v, (bool, np.bool_, int, float)) and not pd.isna(v) else np.nan)
    for c in ("latency_ms", "fidelity", "fidelity2", "size_bytes", "fallback_ratio", "ratio", "n_fallback",
              "n_runtime", "n_ops", "build_s", "macs", "frame", "threads"):
        if c in data.columns:
            data[c] = pd.to_numeric(data[c], errors="coerce")
    return data


# =========================================================================== analyse
KEY = ["model", "variant", "engine", "processor"]


def _rec(data: pd.DataFrame, kind: str) -> pd.DataFrame:
    if "record" not in data.columns:
        return data.iloc[0:0].copy()
    return data[data["record"] == kind].copy()


def label(r) -> str:
    return f"{r['variant']} / {r['engine']} / {r['processor']}"


def summary_table(data: pd.DataFrame, p: dict[str, Any], seed: int = 0) -> pd.DataFrame:
    """One row per unit (model x variant x engine x processor, splits included): latency,
    size, fallbacks, fidelity, or why not."""
    lat = _rec(data, "latency")
    fid = _rec(data, "fidelity")
    pla = _rec(data, "placement")
    var = _rec(data, "variant")
    absent = pd.concat([_rec(data, "absent"), _rec(data, "error")], ignore_index=True)
    keys = set()
    for df in (lat, fid, absent):
        if len(df):
            keys |= set(map(tuple, df[KEY].dropna().astype(str).to_numpy()))
    keys |= set(map(tuple, pla[pla["view"] != "gpu (static)"][KEY].astype(str).to_numpy())) if len(pla) else set()
    rows = []
    for k in sorted(keys):
        m, v, e, pr = k
        if not e:
            continue
        sel = lambda df: df[(df["model"] == m) & (df["variant"] == v) & (df["engine"] == e) & (df["processor"] == pr)] \
            if len(df) else df
        r: dict[str, Any] = dict(model=m, variant=v, family=family(v), frontend=frontend_of(v), engine=e, processor=pr,
                                 trained=m in MEDIAPIPE_TASKS)
        l_ = sel(lat)
        x = l_["latency_ms"].to_numpy(dtype=float) if len(l_) else np.array([])
        med, lo, hi = stats.median_ci(x) if x.size else (np.nan, np.nan, np.nan)
        r.update(n=int(x.size), median_ms=med, ci_lo_ms=lo, ci_hi_ms=hi,
                 stop_reason=str(l_["stop_reason"].iloc[0]) if len(l_) and "stop_reason" in l_ else "",
                 ratio=float(l_["ratio"].iloc[0]) if len(l_) and "ratio" in l_ and not pd.isna(l_["ratio"].iloc[0])
                 else np.nan)
        va = var[(var["model"] == m) & (var["variant"] == v) & (var["engine"] == e)] if len(var) else var
        r.update(size_bytes=float(va["size_bytes"].iloc[0]) if len(va) else np.nan,
                 size_method=str(va["size_method"].iloc[0]) if len(va) else "",
                 macs=float(va["macs"].iloc[0]) if len(va) and "macs" in va else np.nan,
                 variant_method=str(va["method"].iloc[0]) if len(va) else "")
        pl = sel(pla)
        pl = pl[pl["view"] != "gpu (static)"] if len(pl) else pl
        st = pla[(pla["model"] == m) & (pla["variant"] == v) & (pla["engine"] == e) & (pla["view"] == "gpu (static)")] \
            if len(pla) and pr == "gpu" else pla.iloc[0:0] if len(pla) else pla
        r.update(fallback_ratio=float(pl["fallback_ratio"].iloc[0]) if len(pl) else np.nan,
                 n_fallback=float(pl["n_fallback"].iloc[0]) if len(pl) else np.nan,
                 n_runtime=float(pl["n_runtime"].iloc[0]) if len(pl) else np.nan,
                 fallback_types=str(pl["fallback_types"].iloc[0]) if len(pl) else "",
                 placement_method=str(pl["placement_method"].iloc[0]) if len(pl) else "",
                 static_fallback_ratio=float(st["fallback_ratio"].iloc[0]) if len(st) else np.nan,
                 static_fallback_types=str(st["fallback_types"].iloc[0]) if len(st) else "",
                 fully_accelerated=pl["fully_accelerated"].iloc[0] if len(pl) and "fully_accelerated" in pl else np.nan)
        f_ = sel(fid)
        metric = metric_of(m)
        floor = floor_of(metric, p)
        if len(f_):
            vals = f_["fidelity"].to_numpy(dtype=float)
            mean, flo, fhi = stats.bootstrap_ci(vals, np.mean, n_boot=int(p.get("n_boot", 1000)), seed=seed)
            v2 = f_["fidelity2"].to_numpy(dtype=float) if "fidelity2" in f_ else np.array([np.nan])
            r.update(metric=metric, fidelity=mean, fidelity_ci_lo=flo, fidelity_ci_hi=fhi, n_frames=int(len(vals)),
                     metric2=str(f_["metric2"].iloc[0]), fidelity2=float(np.nanmean(v2)) if np.isfinite(v2).any()
                     else np.nan)
        else:
            r.update(metric=metric, fidelity=np.nan, fidelity_ci_lo=np.nan, fidelity_ci_hi=np.nan, n_frames=0,
                     metric2="", fidelity2=np.nan)
        r["floor"] = floor
        r["qualifies"] = bool(x.size and not np.isnan(r["fidelity"]) and r["fidelity"] >= floor)
        a_ = sel(absent)
        if x.size:
            status, why = "measured", ""
        elif len(a_):
            status = "not measurable" if str(a_["record"].iloc[0]) == "absent" else "failed"
            why = "; ".join(dict.fromkeys(a_["reason"].astype(str)))
        else:
            status, why = "failed", "no latency samples"
        r.update(status=status, reason=why)
        rows.append(r)
    cols = ["model", "variant", "family", "frontend", "engine", "processor", "trained", "status", "reason", "n",
            "median_ms", "ci_lo_ms", "ci_hi_ms", "stop_reason", "ratio", "size_bytes", "size_method", "macs",
            "fallback_ratio", "n_fallback", "n_runtime", "fallback_types", "placement_method", "static_fallback_ratio",
            "static_fallback_types", "fully_accelerated", "metric", "fidelity", "fidelity_ci_lo", "fidelity_ci_hi",
            "n_frames", "metric2", "fidelity2", "floor", "qualifies", "variant_method"]
    out = pd.DataFrame(rows, columns=cols)
    out["pareto"] = pareto_flags(out)
    return out


def pareto_flags(s: pd.DataFrame) -> pd.Series:
    """Per model: units with latency and fidelity that no other unit beats on both (lower
    or equal latency and higher or equal fidelity, one strictly)."""
    flags = pd.Series(False, index=s.index)
    ok = s["median_ms"].notna() & s["fidelity"].notna()
    for _, g in s[ok].groupby("model"):
        lat, fid = g["median_ms"].to_numpy(), g["fidelity"].to_numpy()
        for i, idx in enumerate(g.index):
            dominated = np.any((lat <= lat[i]) & (fid >= fid[i]) & ((lat < lat[i]) | (fid > fid[i])))
            flags[idx] = not dominated
    return flags


def boot_medians(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.median(x[rng.integers(0, x.size, size=(n_boot, x.size))], axis=1)


def best_ratio(samples: dict[Any, np.ndarray], num: list, den: list, n_boot: int = 1000, seed: int = 0,
               threshold: float | None = None) -> dict[str, Any]:
    """min median over ``num`` / min median over ``den``, with a percentile bootstrap CI that
    resamples every candidate's samples and repeats both selections in each replicate
    (so the interval carries the uncertainty of which candidate is best). ``p_value``:
    one-sided, share of replicates at or above ``threshold``."""
    out = dict(point=np.nan, ci_lo=np.nan, ci_hi=np.nan, p_value=np.nan, best_num=None, best_den=None)
    num = [k for k in num if k in samples and len(samples[k])]
    den = [k for k in den if k in samples and len(samples[k])]
    if not num or not den:
        return out
    med = {k: float(np.median(samples[k])) for k in set(num) | set(den)}
    bn = min(num, key=lambda k: med[k])
    bd = min(den, key=lambda k: med[k])
    rng = np.random.default_rng(seed)
    reps = {k: boot_medians(samples[k], n_boot, rng) for k in sorted(set(num) | set(den), key=str)}
    rn = np.min(np.stack([reps[k] for k in num]), axis=0)
    rd = np.min(np.stack([reps[k] for k in den]), axis=0)
    r = rn / rd
    out.update(point=med[bn] / med[bd], ci_lo=float(np.quantile(r, 0.025)), ci_hi=float(np.quantile(r, 0.975)),
               best_num=bn, best_den=bd)
    if threshold is not None:
        out["p_value"] = float((np.sum(r >= threshold) + 1) / (r.size + 1))
    return out


def comparison_table(summary: pd.DataFrame, data: pd.DataFrame, p: dict[str, Any], seed: int = 0) -> pd.DataFrame:
    """Per model: best joint vs best backend-only vs best frontend-only at the fidelity floor."""
    lat = _rec(data, "latency")
    n_boot = int(p.get("n_boot", 1000))
    thr = 1.0 - float(p.get("c10_material", 0.05))
    fe, fp = p["frontend_engine"], p["frontend_processor"]
    rows = []
    for m in [x for x in p["models"] if x in set(summary["model"])]:
        s = summary[(summary["model"] == m)]
        cand = s[s["qualifies"].astype(bool)]
        samples = {}
        for _, r in cand.iterrows():
            g = lat[(lat["model"] == m) & (lat["variant"] == r["variant"]) & (lat["engine"] == r["engine"])
                    & (lat["processor"] == r["processor"])]
            samples[label(r)] = g["latency_ms"].to_numpy(dtype=float)
        # joint = changes both levels: a compressed variant (frontend) on another placement than the fixed
        # frontend backend; single-level = fp32 anywhere (backend-only) or any variant on that backend
        # (frontend-only). The two sets are disjoint, so the ratio is not at most 1 by construction.
        backend = [label(r) for _, r in cand.iterrows() if r["frontend"] == "none"]
        front = [label(r) for _, r in cand.iterrows() if r["engine"] == fe and r["processor"] == fp]
        joint = [label(r) for _, r in cand.iterrows()
                 if r["frontend"] != "none" and not (r["engine"] == fe and r["processor"] == fp)]
        single = sorted(set(backend) | set(front))
        jb = best_ratio(samples, joint, backend, n_boot, seed)
        jf = best_ratio(samples, joint, front, n_boot, seed + 1)
        js = best_ratio(samples, joint, single, stats.p_resamples(n_boot), seed + 2, threshold=thr)
        procs = sorted({str(r["processor"]) for _, r in cand.iterrows()})
        backends = sorted({f"{r['engine']}/{r['processor']}" for _, r in s.iterrows() if r["status"] == "measured"})
        why = []
        if not backend:
            why.append("no backend-only (fp32) unit reaches the floor")
        if not front:
            why.append(f"no variant on the fixed backend {fe}/{fp} reaches the floor")
        if not joint:
            why.append(f"no compressed variant on another placement than {fe}/{fp} reaches the floor")
        med = {k: float(np.median(v)) for k, v in samples.items()}
        rows.append(dict(
            model=m, trained=m in MEDIAPIPE_TASKS, metric=metric_of(m), floor=floor_of(metric_of(m), p),
            n_units=int((s["status"] == "measured").sum()), n_candidates=len(joint), backends=", ".join(backends),
            frontend_backend=f"{fe}/{fp}",
            best_joint=jb["best_num"] or js["best_num"] or "", best_joint_ms=med.get(jb["best_num"] or js["best_num"], np.nan),
            best_backend=jb["best_den"] or "", best_backend_ms=med.get(jb["best_den"], np.nan),
            best_frontend=jf["best_den"] or "", best_frontend_ms=med.get(jf["best_den"], np.nan),
            ratio_vs_backend=jb["point"], ratio_vs_backend_lo=jb["ci_lo"], ratio_vs_backend_hi=jb["ci_hi"],
            ratio_vs_frontend=jf["point"], ratio_vs_frontend_lo=jf["ci_lo"], ratio_vs_frontend_hi=jf["ci_hi"],
            ratio_vs_single=js["point"], ratio_vs_single_lo=js["ci_lo"], ratio_vs_single_hi=js["ci_hi"],
            p_value=js["p_value"], best_single=js["best_den"] or "",
            gain_vs_backend=_inv(jb["point"]), gain_vs_backend_lo=_inv(jb["ci_hi"]), gain_vs_backend_hi=_inv(jb["ci_lo"]),
            gain_vs_frontend=_inv(jf["point"]), gain_vs_frontend_lo=_inv(jf["ci_hi"]),
            gain_vs_frontend_hi=_inv(jf["ci_lo"]),
            gain_vs_single=_inv(js["point"]), gain_vs_single_lo=_inv(js["ci_hi"]), gain_vs_single_hi=_inv(js["ci_lo"]),
            processors=", ".join(procs),
            reason="; ".join(why)))
    return pd.DataFrame(rows)


def _inv(x: float) -> float:
    return 1.0 / x if x and not np.isnan(x) else np.nan


def pairing_table(summary: pd.DataFrame, data: pd.DataFrame, p: dict[str, Any], seed: int = 0) -> pd.DataFrame:
    """The processor-friendly pairing (CPU int8 + GPU fp16) against both single-precision
    splits (latency ratio of medians, bootstrap CI) and the fidelity of each."""
    lat = _rec(data, "latency")
    rows = []
    for m in p["coexec_models"]:
        s = summary[(summary["model"] == m) & (summary["engine"] == COEXEC_ENGINE)]
        fr = s[s["variant"] == FRIENDLY]
        for other in ("split_fp32", "split_fp16"):
            o = s[s["variant"] == other]
            base = dict(model=m, pairing=FRIENDLY, against=other)
            if fr.empty or o.empty or fr.iloc[0]["status"] != "measured" or o.iloc[0]["status"] != "measured":
                why = "; ".join(dict.fromkeys([str(x) for x in list(fr["reason"]) + list(o["reason"]) if str(x)])) \
                    or "co-execution not measured"
                rows.append({**base, "ratio": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "n": 0, "status": "not measurable",
                             "reason": why})
                continue
            a = lat[(lat["model"] == m) & (lat["engine"] == COEXEC_ENGINE) & (lat["variant"] == FRIENDLY)]["latency_ms"]
            b = lat[(lat["model"] == m) & (lat["engine"] == COEXEC_ENGINE) & (lat["variant"] == other)]["latency_ms"]
            r, lo, hi = stats.ratio_of_medians_ci(a.to_numpy(float), b.to_numpy(float), n_boot=int(p.get("n_boot", 1000)),
                                                   seed=seed)
            rows.append({**base, "ratio": r, "ci_lo": lo, "ci_hi": hi, "n": int(min(len(a), len(b))),
                         "friendly_ms": float(fr.iloc[0]["median_ms"]), "other_ms": float(o.iloc[0]["median_ms"]),
                         "friendly_ratio_r": float(fr.iloc[0]["ratio"]), "other_ratio_r": float(o.iloc[0]["ratio"]),
                         "friendly_fidelity": float(fr.iloc[0]["fidelity"]), "other_fidelity": float(o.iloc[0]["fidelity"]),
                         "friendly_qualifies": bool(fr.iloc[0]["qualifies"]), "other_qualifies": bool(o.iloc[0]["qualifies"]),
                         "status": "measured", "reason": ""})
    cols = ["model", "pairing", "against", "ratio", "ci_lo", "ci_hi", "n", "friendly_ms", "other_ms", "friendly_ratio_r",
            "other_ratio_r", "friendly_fidelity", "other_fidelity", "friendly_qualifies", "other_qualifies", "status",
            "reason"]
    return pd.DataFrame(rows, columns=cols)


def _verdict(lo: float, hi: float, threshold: float) -> str:
    """Claimed side: below ``threshold``."""
    if np.isnan(lo) or np.isnan(hi):
        return "inconclusive"
    return "reproduced" if hi < threshold else ("contradicted" if lo > threshold else "inconclusive")


CLAIM_COLS = ["claim", "form", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "n", "paper_value", "verdict",
              "reason", "model", "primary", "threshold", "direction", "comparison"]


def _c10_form(r: pd.Series) -> str:
    """Paper form: the candidates span at least two processors (CPU and a GPU, or a CPU+GPU
    split); on one processor, engines stand in for placements: the host form."""
    procs = {x.strip() for x in str(r.get("processors") or "").split(",") if x.strip()}
    return "paper" if any(x != "cpu" for x in procs) else "host"


def claims_table(comp: pd.DataFrame, pairing: pd.DataFrame, p: dict[str, Any]) -> pd.DataFrame:
    thr = 1.0 - float(p["c10_material"])
    fe, fp = p["frontend_engine"], p["frontend_processor"]
    rows = []
    text = (f"At the fidelity floor (agreement >= {p['floor_agreement']} for untrained zoo models, detection IoU >= "
            f"{p['floor_det_iou']} / mask mIoU >= {p['floor_seg_miou']} against fp32 for the trained ones), the best "
            f"configuration that changes both levels (a compressed variant on another engine/processor or CPU+GPU "
            f"split than {fe}/{fp}) is materially faster than the best single-level one (backend-only: fp32 on any "
            f"backend; frontend-only: any variant on {fe}/{fp}): latency ratio joint / single < {thr:g}")
    stat = ("latency ratio: best joint (both levels changed) / best single-level at the fidelity floor; one-sided "
            "bootstrap p, both selections repeated in each resample")
    for m in p["models"]:
        base = dict(claim="C10", text=text, statistic=stat, paper_value=PAPER_C10, model=m,
                    primary=m == p["primary_model"], threshold=thr, direction="less", comparison="joint vs single-level")
        c = comp[comp["model"] == m] if len(comp) else comp
        if c.empty or np.isnan(c.iloc[0]["ratio_vs_single"]):
            why = (c.iloc[0]["reason"] if len(c) and c.iloc[0]["reason"] else "no unit of this model was measured "
                   "with its fidelity at or above the floor")
            rows.append({**base, "form": "paper", "effect": np.nan, "ci_lo": np.nan, "ci_hi": np.nan,
                         "p_value": np.nan, "n": 0, "verdict": "not measurable", "reason": why})
            continue
        r = c.iloc[0]
        form = _c10_form(r)
        v = _verdict(r["ratio_vs_single_lo"], r["ratio_vs_single_hi"], thr)
        if v == "contradicted" and not r["ratio_vs_single_lo"] > thr + C.CLAIMS["C10"].margin:
            v = "inconclusive"
        host = ("" if form == "paper" else
                f"host form: every qualifying candidate runs on the CPU ({r.get('processors', 'cpu')}), so engines "
                f"stand in for placements on processors; ")
        rows.append({**base, "form": form, "effect": r["ratio_vs_single"], "ci_lo": r["ratio_vs_single_lo"],
                     "ci_hi": r["ratio_vs_single_hi"], "p_value": r["p_value"], "n": int(r["n_candidates"]),
                     "verdict": v,
                     "reason": (f"{host}best joint {r['best_joint']} ({r['best_joint_ms']:.3g} ms) vs best single-level "
                                f"{r['best_single']}; backend-only best {r['best_backend'] or 'none'}, frontend-only "
                                f"best {r['best_frontend'] or 'none'}; ratio {r['ratio_vs_single']:.3f} "
                                f"[{r['ratio_vs_single_lo']:.3f}, {r['ratio_vs_single_hi']:.3f}] (bootstrap over every "
                                f"candidate's samples, selection repeated per replicate) vs threshold {thr:g}; "
                                f"{int(r['n_candidates'])} of {int(r['n_units'])} measured units reach the floor; "
                                f"backends measured here: {r['backends']}"
                                + (f"; {r['reason']}" if r["reason"] else ""))})
        if form == "host":
            rows.append({**base, "form": "paper", "effect": np.nan, "ci_lo": np.nan, "ci_hi": np.nan,
                         "p_value": np.nan, "n": 0, "verdict": "not measurable",
                         "reason": (f"the paper's form needs compressed variants placed on at least two processors; "
                                    f"every qualifying candidate of {m} ran on the CPU (engines only): see the host "
                                    f"form row")})
    for _, r in pairing.iterrows():
        base = dict(claim="C10", form="paper", model=r["model"], primary=False, threshold=thr, direction="less",
                    comparison=f"processor-friendly pairing vs {r['against']}",
                    text=(f"muLayer's processor-friendly quantization: a CPU+GPU channel-wise split with the CPU part "
                          f"int8 and the GPU part fp16 is materially faster than the {r['against']} split "
                          f"(latency ratio < {thr:g}), each at the ratio the engine's profile predicts"),
                    statistic=f"latency ratio: split cpu int8 + gpu fp16 / {r['against']}", paper_value=PAPER_C10)
        if r["status"] != "measured":
            rows.append({**base, "effect": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "p_value": np.nan, "n": 0,
                         "verdict": "not measurable", "reason": r["reason"]})
            continue
        v = _verdict(r["ci_lo"], r["ci_hi"], thr)
        rows.append({**base, "effect": r["ratio"], "ci_lo": r["ci_lo"], "ci_hi": r["ci_hi"], "p_value": np.nan,
                     "n": int(r["n"]), "verdict": v,
                     "reason": (f"{r['friendly_ms']:.3g} ms (r = {r['friendly_ratio_r']:.3f}) vs {r['other_ms']:.3g} ms "
                                f"(r = {r['other_ratio_r']:.3f}); fidelity {r['friendly_fidelity']:.3f} vs "
                                f"{r['other_fidelity']:.3f}; ratio of medians with a bootstrap CI")})
    return pd.DataFrame(rows, columns=CLAIM_COLS)


CLAIMS_TABLES = [None, "summary", "pairing"]


def claims_from_tables(read, params: dict[str, Any], seed: int = 0) -> pd.DataFrame | None:
    """C10 recomputed with the current code from the ``summary`` table and the timed samples."""
    data, summary, pairing = read(None), read("summary"), read("pairing")
    need = {"model", "variant", "frontend", "engine", "processor", "qualifies", "status"}
    if data is None or summary is None or not need <= set(summary.columns) or "record" not in data:
        return None
    p = {**{k: f.default for k, f in PARAMS.items()}, **params}
    p["models"] = [m for m in p["models"] if m in set(summary["model"])] or sorted(set(summary["model"]))
    comp = comparison_table(summary, data, p, seed)
    if pairing is None or "status" not in pairing:
        pairing = pd.DataFrame(columns=["model", "against", "status", "reason"])
    return claims_table(comp, pairing, p)


def variants_table(data: pd.DataFrame) -> pd.DataFrame:
    v = _rec(data, "variant")
    cols = ["model", "variant", "family", "frontend", "engine", "file", "status", "reason", "method", "size_bytes",
            "size_method", "sha256", "build_s", "macs", "details"]
    return v[[c for c in cols if c in v.columns]].reset_index(drop=True) if len(v) else pd.DataFrame(columns=cols)


def analyse(ctx, data: pd.DataFrame) -> dict[str, pd.DataFrame]:
    p = ctx.params
    seed = int(getattr(ctx, "seed", 0))
    summary = summary_table(data, p, seed)
    comp = comparison_table(summary, data, p, seed)
    pairing = pairing_table(summary, data, p, seed)
    static = _rec(data, "placement")
    static = static[static["view"] == "gpu (static)"] if len(static) else static
    tables = {
        "summary": summary,
        "comparison": comp,
        "pairing": pairing,
        "variants": variants_table(data),
        "gpu_static": static.reset_index(drop=True),
        "claims": claims_table(comp, pairing, p),
    }
    for name, df in tables.items():
        ctx.write(df, table=name)
    return tables


# =========================================================================== plot
ENGINE_MARKERS = {"litert": "o", "onnxruntime": "s", "torch": "^", COEXEC_ENGINE: "D"}


def _log_x(ax, values=()) -> None:
    """Log latency axis with plain-number labels (1, 2, 5 x 10^k; decades only over a wide range)."""
    from matplotlib import ticker

    v = np.asarray([x for x in values if x > 0], dtype=float)
    wide = v.size and v.max() / v.min() > 50
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _models(tables, key="summary") -> list[str]:
    s = tables[key]
    return list(dict.fromkeys(s["model"])) if len(s) else []


def _grid(n: int) -> tuple[int, int]:
    """(rows, columns) of one panel per model, at most three columns."""
    ncols = min(3, n)
    return int(math.ceil(n / ncols)), ncols


def _fidelity_legend() -> list:
    import matplotlib.lines as mlines

    from study.plotting import PROCESSOR_COLORS

    handles = [mlines.Line2D([], [], color=PROCESSOR_COLORS.get(pr, "#777"), marker="o", ls="", label=pr)
               for pr in ("cpu", "gpu", "cpu+gpu")]
    handles += [mlines.Line2D([], [], color="#555", marker=mk, ls="", label=e) for e, mk in ENGINE_MARKERS.items()]
    handles += [mlines.Line2D([], [], color="#555", marker="o", ls="", markerfacecolor="none",
                              label="hollow: below the floor"),
                mlines.Line2D([], [], color="#333", lw=0.9, label="Pareto front"),
                mlines.Line2D([], [], color="#C44E52", ls=":", label="fidelity floor")]
    return handles


def _fidelity_panel(ax, g: pd.DataFrame, m: str) -> None:
    """One model: each configuration's median latency vs fidelity (hollow below the floor),
    the Pareto front and the floor."""
    from study.plotting import PROCESSOR_COLORS

    for _, r in g.iterrows():
        c = PROCESSOR_COLORS.get(r["processor"], "#777777")
        ax.scatter(r["median_ms"], r["fidelity"], marker=ENGINE_MARKERS.get(r["engine"], "x"), s=28,
                   facecolors=c if r["qualifies"] else "none", edgecolors=c, linewidths=1.0, zorder=3)
        ax.annotate(r["variant"].replace("int8_", "i8").replace("split_", "sp:"), (r["median_ms"], r["fidelity"]),
                    fontsize=5.5, xytext=(2, 2), textcoords="offset points", color="#444444")
    front = g[g["pareto"].astype(bool)].sort_values("median_ms") if len(g) else g
    if len(front):
        ax.step(front["median_ms"], front["fidelity"], where="post", color="#333333", lw=0.9, ls="-", zorder=2)
    if len(g):
        _log_x(ax, g["median_ms"].to_numpy())
        ax.axhline(float(g["floor"].iloc[0]), color="#C44E52", ls=":", lw=1)
        ax.set_ylabel(METRIC_LABEL.get(str(g["metric"].iloc[0]), "fidelity"), fontsize=7)
    ax.set_xlabel("median latency (ms)", fontsize=7)
    ax.set_title(m + (" (trained)" if m in MEDIAPIPE_TASKS else " (untrained: agreement)"), fontsize=8)
    ax.tick_params(labelsize=7)


def _plot_latency_vs_fidelity(s: pd.DataFrame, models: list[str]):
    from study.plotting import figure

    n = len(models)
    nrows, ncols = _grid(n)
    fig, axes = figure(3.4 * ncols, 3.0 * nrows + 0.6, nrows=nrows, ncols=ncols, squeeze=False)
    for ax, m in zip(axes.flat, models):
        _fidelity_panel(ax, s[(s["model"] == m) & s["median_ms"].notna() & s["fidelity"].notna()] if len(s) else s, m)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.legend(handles=_fidelity_legend(), loc="upper center", ncol=6, fontsize=6.5, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (3.0 * nrows + 0.6)))
    return fig


def _fallback_views(g: pd.DataFrame, static: pd.DataFrame, m: str) -> pd.DataFrame:
    """One model's fallback ratios: each measured variant x engine/processor, and the GPU's
    static analysis."""
    views = []
    for _, r in g[g["status"] == "measured"].iterrows() if len(g) else []:
        views.append(dict(variant=r["variant"], view=f"{r['engine']}/{r['processor']}", value=r["fallback_ratio"],
                          why=r["status"]))
    if len(static):
        for _, r in static[static["model"] == m].iterrows():
            views.append(dict(variant=r["variant"], view=f"{r['engine']}/gpu (static)", value=r["fallback_ratio"],
                              why="static"))
    return pd.DataFrame(views)


def _fallback_panel(ax, vdf: pd.DataFrame, m: str) -> None:
    """One model: a bar per variant and view (n/a where not measured)."""
    variants = list(dict.fromkeys(vdf["variant"]))
    vv = sorted(set(vdf["view"]))
    w = 0.8 / max(len(vv), 1)
    cmap = dict(zip(vv, ["#4C72B0", "#DD8452", "#55A868", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974"]))
    for j, view in enumerate(vv):
        for i, v in enumerate(variants):
            r = vdf[(vdf["variant"] == v) & (vdf["view"] == view)]
            x = i - 0.4 + w * (j + 0.5)
            if r.empty:
                continue
            val = r.iloc[0]["value"]
            if pd.isna(val):
                ax.text(x, 0.01, "n/a", rotation=90, fontsize=5, ha="center", va="bottom", color="#777")
                continue
            ax.bar(x, max(float(val), 0.012), w, color=cmap[view], label=view if i == 0 else None,
                   hatch="//" if "static" in view else None, edgecolor="white", linewidth=0.3)
    ax.set_xticks(range(len(variants)))
    ax.set_xticklabels(variants, rotation=40, ha="right", fontsize=6)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("fallback share of runtime operators", fontsize=7)
    ax.set_title(f"{m} (thin bar: no fallback)", fontsize=8)
    ax.tick_params(labelsize=6)
    h, lab = ax.get_legend_handles_labels()
    ax.legend(dict(zip(lab, h)).values(), dict(zip(lab, h)).keys(), fontsize=5.5, loc="upper left")


def _plot_fallback_ratio(s: pd.DataFrame, static: pd.DataFrame, models: list[str]):
    from study.plotting import figure

    n = len(models)
    nrows, ncols = _grid(n)
    fig, axes = figure(3.6 * ncols, 2.8 * nrows + 0.4, nrows=nrows, ncols=ncols, squeeze=False)
    for ax, m in zip(axes.flat, models):
        vdf = _fallback_views(s[(s["model"] == m) & (s["engine"] != COEXEC_ENGINE)] if len(s) else s, static, m)
        if vdf.empty:
            ax.set_visible(False)
            continue
        _fallback_panel(ax, vdf, m)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _plot_joint_gain(comp: pd.DataFrame, material: float):
    """Joint vs single-level gains with 95% CIs; dotted: C10's materiality."""
    from study.plotting import figure

    fig, ax = figure(max(4.0, 1.3 * max(len(comp), 1) + 2), 3.2)
    thr = 1.0 / (1.0 - float(material))
    for i, (_, r) in enumerate(comp.iterrows()):
        for j, (k, col, lab) in enumerate((("vs_backend", "#4C72B0", "joint vs backend-only"),
                                           ("vs_frontend", "#DD8452", "joint vs frontend-only"),
                                           ("vs_single", "#55A868", "joint vs best single-level (C10)"))):
            g, lo, hi = r[f"gain_{k}"], r[f"gain_{k}_lo"], r[f"gain_{k}_hi"]
            x = i - 0.27 + 0.27 * j
            if pd.isna(g):
                ax.text(x, 1.0, "n/a", ha="center", va="bottom", fontsize=6, color="#777")
                continue
            ax.bar(x, max(g - 1, 0.002), 0.25, bottom=1, color=col, label=lab if i == 0 else None)
            ax.errorbar(x, g, yerr=[[max(g - lo, 0)], [max(hi - g, 0)]], fmt="none", ecolor="black", capsize=2,
                        elinewidth=0.8)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.axhline(thr, color="#777777", ls=":", lw=1)
    ax.set_xticks(range(len(comp)))
    ax.set_xticklabels(list(comp["model"]) if len(comp) else [], rotation=20, ha="right", fontsize=7)
    ax.set_ylabel("latency gain of the joint choice (x)", fontsize=8)
    ax.set_title("Joint frontend x backend choice vs single-level choices at the fidelity floor (95% CI; "
                 "dotted: C10 materiality)", fontsize=8)
    if len(comp):
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def _plot_pairing(s: pd.DataFrame, pr: pd.DataFrame):
    """The processor-friendly pairing where measured; else why not."""
    from study.plotting import PROCESSOR_COLORS, figure

    fig, ax = figure(5.0, 3.0)
    cs = s[s["engine"] == COEXEC_ENGINE] if len(s) else s
    cs = cs[cs["median_ms"].notna()] if len(cs) else cs
    if len(cs):
        for i, (_, r) in enumerate(cs.iterrows()):
            ax.bar(i, r["median_ms"], 0.6, color=PROCESSOR_COLORS["cpu+gpu"] if r["variant"] != FRIENDLY else "#C44E52")
            ax.errorbar(i, r["median_ms"], yerr=[[r["median_ms"] - r["ci_lo_ms"]], [r["ci_hi_ms"] - r["median_ms"]]],
                        fmt="none", ecolor="black", capsize=2)
        ax.set_xticks(range(len(cs)))
        ax.set_xticklabels([f"{r['model']}\n{r['variant']}" for _, r in cs.iterrows()], fontsize=6, rotation=20)
        ax.set_ylabel("median latency (ms)", fontsize=8)
        ax.set_title("CPU+GPU splits: single precision vs processor-friendly (CPU int8 + GPU fp16)", fontsize=8)
    else:
        import textwrap

        why = "; ".join(dict.fromkeys(pr["reason"].astype(str))) if len(pr) else "no co-execution model in the parameters"
        ax.text(0.5, 0.5, "CPU+GPU precision pairings not measurable here:\n" + textwrap.fill(why[:500], 90),
                ha="center", va="center", fontsize=7, transform=ax.transAxes)
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def plot(ctx, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    s = tables["summary"]
    models = _models(tables) or ["(no data)"]
    figs: dict[str, Any] = {
        "latency_vs_fidelity": _plot_latency_vs_fidelity(s, models),
        "fallback_ratio": _plot_fallback_ratio(s, tables.get("gpu_static", pd.DataFrame()), models),
        "joint_gain": _plot_joint_gain(tables["comparison"], ctx.params.get("c10_material", 0.05)),
        "pairing": _plot_pairing(s, tables["pairing"]),
    }
    for name, f in figs.items():
        ctx.save(f, name)
        plt.close(f)  # saved; the notebook displays the returned figures once
    return figs


# =========================================================================== run
def replicate_params(p: dict[str, Any]) -> dict[str, Any]:
    """What an independent run measures (``study.replicate``): C10's primary model, every
    variant x backend of it (the joint and single-level candidates); no pairing split."""
    prim = p["primary_model"]
    return {**p, "models": [prim] if prim in p["models"] else list(p["models"])[:1], "coexec_models": []}


def run(ctx) -> dict[str, Any]:
    from study import replicate

    ctx.write_fingerprint()
    data = measure(ctx)
    tables = replicate.independent_runs(ctx, analyse(ctx, data), replicate_params(ctx.params))
    return {"data": data, "tables": tables, "figures": plot(ctx, tables)}
