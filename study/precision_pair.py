"""Processor-friendly quantization on finding 2's co-execution engine (muLayer, Kim et al.
EuroSys'19): each processor computes its part of a split layer in the precision it is
fast at.

``PrecisionPair`` is a ``study.coexec.Pair`` (operator level: every ``nn.Conv2d`` /
``nn.Linear`` split by output channels, ``a`` = the GPU holds the activations and runs
every operator that is not split, ``b`` = the CPU computes the last ``round(r * units)``
units in the calling thread while the GPU's part runs) whose two sides have their own
precision:

* ``gpu_precision``: ``fp32`` or ``fp16`` (the GPU copy of the model and its
  activations in that type);
* ``cpu_precision``: ``fp32``, ``fp16`` (the CPU copy in half precision) or ``int8``
  (the CPU part of each split layer runs PyTorch's x86 quantized kernels:
  ``study.compress`` int8 modules for the part's output channels, weights int8 per
  channel, input quantized per tensor at run time, convolution outputs requantized with
  the output range calibrated on real frames; built once per layer and split point).

The CPU's part is copied to the host (pinned memory on CUDA), converted to the CPU's
precision, computed, converted back to the GPU's type and concatenated on the GPU;
conversions count as transfer time. It reuses the engine's module wrapping
(``wrap_split``), ``ModelRuntime``, ``Pair.infer`` (one inference and its time
breakdown, ``decompose_steps``) and its per-layer profile (``profile_layers`` /
``predict_ratios``) unchanged; only ``load`` and the two forms of a split layer
(``_alone_a``, ``_split``) are its own.

``device='cpu'`` runs the "GPU" side on the CPU as well (no CUDA events; host clock):
for tests on machines without a GPU; every reported number comes from ``'cuda'``.
"""
from __future__ import annotations

import copy
import time
from typing import Any, Sequence

import torch

from study import coexec as cx
from study import compress

now = time.perf_counter_ns
PRECISIONS_GPU = ("fp32", "fp16")
PRECISIONS_CPU = ("fp32", "fp16", "int8")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "int8": torch.float32}


class PrecisionPair(cx.Pair):
    kind = "cpu+gpu"

    def __init__(self, cpu_threads: int, gpu_precision: str = "fp32", cpu_precision: str = "fp32",
                 device: str = "cuda", reduce_range: bool = True, tf32: bool = False):
        if gpu_precision not in PRECISIONS_GPU:
            raise ValueError(f"gpu_precision {gpu_precision!r} not in {PRECISIONS_GPU}")
        if cpu_precision not in PRECISIONS_CPU:
            raise ValueError(f"cpu_precision {cpu_precision!r} not in {PRECISIONS_CPU}")
        super().__init__("gpu", "cpu", threads_a=cpu_threads, threads_b=cpu_threads)
        self.dev = torch.device(device)
        self.cuda = self.dev.type == "cuda"
        if self.cuda and not torch.cuda.is_available():
            raise cx.CoexecError("PrecisionPair on 'cuda' needs a CUDA GPU: torch.cuda.is_available() is False")
        self.gpu_precision, self.cpu_precision = gpu_precision, cpu_precision
        self.dtype_a = DTYPES[gpu_precision]
        self.dtype_b = DTYPES[cpu_precision]
        self.reduce_range = reduce_range
        self.tf32 = tf32
        self._pinned: dict[Any, torch.Tensor] = {}
        self._events: dict[Any, tuple[Any, Any]] = {}
        self._int8: dict[tuple, torch.nn.Module] = {}
        self._ranges: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
        self._saved_flags = None

    @property
    def label(self) -> str:
        return f"cpu {self.cpu_precision} + gpu {self.gpu_precision}"

    # lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        if self.cuda:
            self._saved_flags = cx.set_tf32(self.tf32)

    def close(self) -> None:
        if self._saved_flags is not None:
            cx.restore_tf32(self._saved_flags)
            self._saved_flags = None
        self._pinned.clear()
        self._events.clear()
        self._int8.clear()
        self.runtimes.clear()

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.current_stream(self.dev).synchronize()

    def to_host(self, y: torch.Tensor) -> torch.Tensor:
        return y.detach().float().cpu()

    # models --------------------------------------------------------------------
    def load(self, key: str, model: torch.nn.Module, x: torch.Tensor, frames: Sequence[torch.Tensor] = (),
             calibration: Sequence[torch.Tensor] = ()) -> cx.ModelRuntime:
        """``model`` (fp32, CPU) prepared on the pair; ``calibration``: inputs for the int8
        output scales (default: ``x``)."""
        model = model.eval()
        model_a = copy.deepcopy(model).to(self.dev, self.dtype_a).eval()
        model_b = copy.deepcopy(model).to("cpu", self.dtype_b).eval()
        rt = cx.ModelRuntime(key=key, pair=self, model_a=model_a, model_b=model_b,
                             x_a=x.to(self.dev, self.dtype_a), x_b=x.detach().clone())
        rt.layers = cx.splittable_layers(model_a)
        rt.layers_b = cx.splittable_layers(model_b)
        rt.op_model = cx.wrap_split(model_a, rt)
        rt.branch_model = None
        rt.branch_note = "operator level only (processor-friendly precision)"
        if self.cpu_precision == "int8":
            self._ranges[key] = compress.output_ranges(copy.deepcopy(model).float().cpu(),
                                                        list(calibration) or [x.float().cpu()])
        self.runtimes[key] = rt
        return rt

    def set_input(self, rt: cx.ModelRuntime, x: torch.Tensor) -> None:
        rt.x_a = x.to(self.dev, self.dtype_a)
        rt.x_b = x.detach().clone()

    # timing helpers ----------------------------------------------------------------
    def _start(self, key):
        if not self.cuda:
            return now()
        e = self._events.get(key)
        if e is None:
            e = self._events[key] = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        e[0].record(torch.cuda.current_stream(self.dev))
        return e

    def _stop(self, key, token):
        if not self.cuda:
            return now() - token
        token[1].record(torch.cuda.current_stream(self.dev))
        return token

    def _wait_ns(self, token) -> int:
        """Wait for the GPU's part (the barrier) and return its compute time in ns."""
        if not self.cuda:
            return int(token)
        token[1].synchronize()
        return int(token[0].elapsed_time(token[1]) * 1e6)

    def _host_copy(self, key, t: torch.Tensor) -> torch.Tensor:
        if not self.cuda:
            return t.detach().clone()
        buf = self._pinned.get(key)
        if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
            buf = self._pinned[key] = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        buf.copy_(t)
        return buf

    # the CPU's part ------------------------------------------------------------------
    def int8_part(self, rt: cx.ModelRuntime, name: str, k_a: int, units: int) -> torch.nn.Module:
        """The int8 module computing units [k_a, units) of layer ``name`` (cached)."""
        key = (rt.key, name, k_a)
        mod = self._int8.get(key)
        if mod is None:
            Conv8, Lin8 = compress.int8_classes()
            layer = rt.layers_b[name]
            _, opu, _ = cx.split_units(layer)
            lo, hi = k_a * opu, units * opu
            if isinstance(layer, torch.nn.Conv2d):
                rng = self._ranges[rt.key].get(name)
                out_range = (float(rng[0][lo:hi].min()), float(rng[1][lo:hi].max())) if rng is not None else 1.0
                mod = Conv8.from_conv(layer, out_range, lo, hi, reduce_range=self.reduce_range)
            else:
                mod = Lin8.from_linear(layer, lo, hi, reduce_range=self.reduce_range)
            self._int8[key] = mod
        return mod

    def cpu_part(self, rt: cx.ModelRuntime, name: str, xb: torch.Tensor, k_a: int, units: int) -> torch.Tensor:
        if self.cpu_precision == "int8":
            return self.int8_part(rt, name, k_a, units)(xb.float())
        return cx.part_forward(rt.layers_b[name], xb.to(self.dtype_b), k_a, units)

    # one split layer (the engine's Pair.split chooses between the two) ------------------
    def _alone_a(self, name, units, layer, x):
        self.sync()
        t1 = now()
        tok = self._start(name)
        y = layer(x)
        ca = self._wait_ns(self._stop(name, tok))
        w = now() - t1
        self.steps.append(cx.Step("alone_a", name, units, 0, 0, ca, 0, w, 0, 0, 0, w))
        return y

    def _split(self, rt, name, layer, x, k_a, units):
        k_b = units - k_a
        self.sync()  # a's preceding work (operators that are not split) is done: solo time
        t1 = now()
        xb = self._host_copy((rt.key, name, "in"), cx.part_input(layer, x, k_a, units))
        t2 = now()
        tok = None
        ya = None
        if k_a:
            tok = self._start(name)
            ya = cx.part_forward(layer, cx.part_input(layer, x, 0, k_a), 0, k_a)  # launched on the GPU
            tok = self._stop(name, tok)
        t3 = now()
        with torch.inference_mode():
            yb = self.cpu_part(rt, name, xb, k_a, units)  # the CPU part, in this thread
        t4 = now()
        ca = self._wait_ns(tok) if k_a else 0  # the barrier
        t5 = now()
        yb = yb.to(self.dev, self.dtype_a)
        t6 = now()
        if ya is not None:
            y = torch.cat((ya, yb), cx.cat_dim(layer))
            self.sync()
        else:
            y = yb
        t7 = now()
        self.steps.append(cx.Step("split", name, k_a, k_b, t2 - t1, ca, t4 - t3, t5 - t2, 0, t6 - t5, t7 - t6,
                                  t7 - t1))
        return y


class PairSession:
    """One co-executed configuration for the harness: operator level at ratio ``ratio``."""

    def __init__(self, pair: PrecisionPair, rt: cx.ModelRuntime, ratio: float | dict[str, float]):
        self.pair, self.rt, self.ratio = pair, rt, ratio
        self.last: dict[str, float] | None = None

    def run(self):
        y, self.last = self.pair.infer(self.rt, "operator", self.ratio)
        return y

    def output(self) -> torch.Tensor:
        return self.pair.to_host(self.run())

    def close(self) -> None:
        pass


def balanced_ratio(pair: PrecisionPair, rt: cx.ModelRuntime, runs: int = 3) -> tuple[float, list[dict[str, Any]]]:
    """The engine's own prediction: per-layer times of each side alone (``profile_layers``)
    -> the global ratio that balances the split layers' summed compute (``predict_ratios``)."""
    recs = cx.profile_layers(pair, rt, runs)
    r, _, rows = cx.predict_ratios(recs)
    return float(r), rows


__all__ = ["PRECISIONS_CPU", "PRECISIONS_GPU", "PairSession", "PrecisionPair", "balanced_ratio"]
