"""LiteRT (``ai-edge-litert``): CPU through XNNPACK, GPU through its GPU accelerator
(WebGPU over Vulkan on a host; OpenCL/OpenGL on phones).

Timing uses the ``CompiledModel`` API, as LiteRT's own ``benchmark_litert_model``
does. A run ends after every output has been read back into host memory, so GPU
work is finished before the clock stops.

Placement:
* CPU: the interpreter's execution plan shows which operators XNNPACK took
  (``DELEGATE`` nodes); the rest run on TFLite's built-in CPU kernels.
* GPU, measured: whole model ``is_fully_accelerated()``; per operator, each operator
  sliced into its own model and compiled for the GPU accelerator alone.
* GPU, static: TFLite's compatibility checker (``ModelAnalyzer``), on any host.
Per-operator time: operator slices timed one by one (``method='slice'``). A slice keeps the
constant operators that compute its operator's weights (fp16 ``DEQUANTIZE``), so the weights
stay constant as in the whole model.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study.engines import tflite_graph as tg
from study.engines.base import (OP_PROFILE_COLUMNS, PLACEMENT_COLUMNS, Engine, EngineUnavailable, Session,
                                captured_native_stderr, seeded_inputs)


@functools.cache
def _environment():
    from ai_edge_litert.compiled_model import _create_default_environment

    with captured_native_stderr():
        return _create_default_environment()


def _options(processor: str, threads: int, gpu_only: bool = False):
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator as HA
    from ai_edge_litert.options import CpuOptions, Options

    if processor == "cpu":
        accel = HA.CPU
    elif processor == "gpu":
        accel = HA.GPU if gpu_only else (HA.GPU | HA.CPU)
    else:
        raise EngineUnavailable(f"LiteRT on this host has no {processor} accelerator")
    return Options(hardware_accelerators=accel, cpu_options=CpuOptions(num_threads=threads))


def compile_model(source: str | Path | bytes, processor: str, threads: int = 1, gpu_only: bool = False):
    """A ``CompiledModel`` plus the native log lines its creation printed."""
    from ai_edge_litert.compiled_model import CompiledModel

    opts = _options(processor, threads, gpu_only)
    env = _environment()
    with captured_native_stderr() as log:
        try:
            if isinstance(source, (bytes, bytearray)):
                cm = CompiledModel.from_buffer(bytes(source), environment=env, options=opts)
            else:
                cm = CompiledModel.from_file(str(source), environment=env, options=opts)
        except Exception as e:  # LiteRT raises RuntimeError with the native status
            cm, err = None, e
        else:
            err = None
    if cm is None:
        reason = "; ".join(ln.strip() for ln in log if "ERROR" in ln or "Failed" in ln)[-400:]
        raise EngineUnavailable(f"LiteRT could not compile for {processor}: {err}; {reason}".strip())
    return cm, log


@dataclass
class LiteRTSession(Session):
    compiled: Any = None
    in_bufs: list = field(default_factory=list)
    out_bufs: list = field(default_factory=list)
    out_sizes: list = field(default_factory=list)
    out_dtypes: list = field(default_factory=list)
    out_shapes: list = field(default_factory=list)

    def run(self) -> None:
        self.compiled.run_by_index(0, self.in_bufs, self.out_bufs)
        for b, n, dt in zip(self.out_bufs, self.out_sizes, self.out_dtypes):
            b.read(n, dt)  # synchronizes with the accelerator

    def outputs(self) -> list[np.ndarray]:
        self.compiled.run_by_index(0, self.in_bufs, self.out_bufs)
        return [b.read(n, dt).reshape(s) for b, n, dt, s in
                zip(self.out_bufs, self.out_sizes, self.out_dtypes, self.out_shapes)]

    def set_inputs(self, arrays: list[np.ndarray]) -> None:
        for b, a in zip(self.in_bufs, arrays):
            b.write(np.ascontiguousarray(a))

    def close(self) -> None:
        self.in_bufs, self.out_bufs, self.compiled = [], [], None


def open_compiled(source: str | Path | bytes, processor: str, threads: int, *, model: str = "?",
                  gpu_only: bool = False, seed: int = 0) -> LiteRTSession:
    cm, log = compile_model(source, processor, threads, gpu_only)
    in_bufs = cm.create_input_buffers(0)
    out_bufs = cm.create_output_buffers(0)
    in_det = [b.get_tensor_details() for b in in_bufs]
    out_det = [b.get_tensor_details() for b in out_bufs]
    s = LiteRTSession(
        engine="litert", processor=processor, model=model, threads=threads, compiled=cm,
        in_bufs=in_bufs, out_bufs=out_bufs,
        out_sizes=[int(np.prod(d["shape"])) for d in out_det],
        out_dtypes=[np.dtype(d["dtype"]) for d in out_det],
        out_shapes=[tuple(d["shape"]) for d in out_det],
        info={"fully_accelerated": bool(cm.is_fully_accelerated()),
              "accelerator": "gpu+cpu-fallback" if processor == "gpu" and not gpu_only else processor,
              "adapter": next((ln.split("Selected adapter:", 1)[1].strip() for ln in log if "Selected adapter" in ln),
                              None)},
    )
    s.set_inputs(seeded_inputs([(tuple(d["shape"]), d["dtype"]) for d in in_det], seed))
    return s


class LiteRTEngine(Engine):
    name = "litert"
    processor_backends = {"cpu": "xnnpack", "gpu": "vulkan"}
    model_form, model_form_text = "tflite", ".tflite file"

    def version(self) -> str:
        from importlib import metadata

        try:
            return metadata.version("ai-edge-litert")
        except metadata.PackageNotFoundError:
            return "not installed"

    def open(self, model, processor: str, threads: int = 1, **options) -> LiteRTSession:
        self.require_model(model)
        return open_compiled(model.path("tflite"), processor, threads, model=model.name,
                             gpu_only=options.get("gpu_only", False), seed=options.get("seed", 0))

    # ------------------------------------------------------------------ placement
    def placement(self, model, processor: str, threads: int = 1) -> pd.DataFrame:
        path = model.path("tflite")
        if processor == "cpu":
            ops, member = tg.xnnpack_partitions(path, threads)
            rows = [dict(op_index=o.index, op_type=o.op_type, op_name=f"{o.index}:{o.op_type}",
                         placed_on="xnnpack" if o.index in member else "cpu-builtin",
                         delegated=o.index in member, partition=member.get(o.index, -1),
                         method="interpreter execution plan (DELEGATE nodes)",
                         reason="" if o.index in member else "not taken by XNNPACK")
                    for o in ops]
        elif processor == "gpu":
            rows = self.gpu_op_support(path)
        else:
            raise EngineUnavailable(f"LiteRT has no {processor} accelerator here")
        df = pd.DataFrame(rows)
        df.insert(0, "processor", processor)
        df.insert(0, "engine", self.name)
        df.insert(0, "model", model.name)
        return df[PLACEMENT_COLUMNS]

    def gpu_op_support(self, path: str | Path) -> list[dict[str, Any]]:
        """Each operator sliced out and compiled for the GPU accelerator alone."""
        rows = []
        for o in tg.graph_ops(path):
            try:
                blob = tg.slice_model(path, tg.with_constant_producers(path, [o.index]))
                cm, _ = compile_model(blob, "gpu", 1, gpu_only=True)
                ok = bool(cm.is_fully_accelerated())
                reason = "" if ok else "GPU accelerator left part of the operator to the CPU"
            except (EngineUnavailable, ValueError, RuntimeError) as e:
                ok, reason = False, str(e)[:300]
            rows.append(dict(op_index=o.index, op_type=o.op_type, op_name=f"{o.index}:{o.op_type}",
                             placed_on="gpu" if ok else "cpu-fallback", delegated=ok, partition=-1,
                             method="single-operator slice compiled for the GPU accelerator", reason=reason))
        return rows

    def gpu_static(self, model) -> pd.DataFrame:
        """TFLite's GPU compatibility checker: runs without a GPU."""
        path = model.path("tflite")
        verdict, warnings = tg.gpu_static_check(path)
        rows = [dict(model=model.name, engine=self.name, processor="gpu", op_index=o.index, op_type=o.op_type,
                     op_name=f"{o.index}:{o.op_type}", placed_on="cpu-fallback" if o.index in warnings else "gpu",
                     delegated=o.index not in warnings, partition=-1,
                     method="static: TFLite GPU compatibility checker (ModelAnalyzer)",
                     reason=warnings.get(o.index, ""))
                for o in tg.graph_ops(path)]
        df = pd.DataFrame(rows, columns=PLACEMENT_COLUMNS)
        df.attrs["verdict"] = verdict
        return df

    # ------------------------------------------------------------------ per-op time
    def op_profile(self, model, processor: str, threads: int = 1, runs: int = 10, warmup: int = 2) -> pd.DataFrame:
        path = model.path("tflite")
        rows = []
        for o in tg.graph_ops(path):
            row = dict(model=model.name, engine=self.name, processor=processor, op_index=o.index, op_type=o.op_type,
                       op_name=f"{o.index}:{o.op_type}", placed_on=processor, time_ms=np.nan, n=0,
                       method="single-operator slice timed alone (CompiledModel, outputs read)")
            try:
                s = open_compiled(tg.slice_model(path, tg.with_constant_producers(path, [o.index])), processor, threads,
                                  model=model.name)
                ts = s.timed_runs(runs, warmup)
                row.update(time_ms=float(np.median(ts)) / 1e6, n=runs,
                           placed_on=processor if s.info["fully_accelerated"] else f"{processor}+cpu-fallback")
                s.close()
            except (EngineUnavailable, ValueError, RuntimeError) as e:
                row["method"] += f"; not timed: {str(e)[:200]}"
            rows.append(row)
        return pd.DataFrame(rows, columns=OP_PROFILE_COLUMNS)
