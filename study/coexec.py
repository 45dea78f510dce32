"""A real co-execution engine for PyTorch models on two processors (muLayer style).

muLayer (Kim et al., EuroSys'19) splits the output channels of every convolution and
fully connected layer between the CPU and the GPU, runs both parts at once and merges
them; every other operator runs whole on one processor. This module does that for the
zoo's PyTorch models, at three granularities:

* **operator level** (``granularity='operator'``): each ``nn.Conv2d`` / ``nn.Linear``
  (``study.coexec_ops.TORCH_MODULES``) is split by output channels (grouped and
  depthwise convolutions by channel groups): processor ``b`` computes the last
  ``round(r * units)`` units, processor ``a`` the rest, at the same time; the parts are
  concatenated on ``a``. ``r`` is one global ratio or one ratio per layer.
* **branch level** (``'branch'``): whole operators of independent branches run on
  different processors: the downsample projection of a ResNet bottleneck on ``b`` while
  ``a`` runs the bottleneck's main path; the stride-8 detection head of the YOLO
  detector on ``b`` while ``a`` runs the rest of the PAN neck and the two other heads.
  Models without independent branches that compute (MobileNetV2 and Fast Style Transfer
  have identity shortcuts only) have no branch level (``branch_points`` says so).
* **frame level** (``'frame'``): whole inferences of a burst of frames go to either
  processor (strictly alternating, or in proportion to the processors' speeds); both
  processors work at once, each on its own frames.

The pair of processors: one interface, ``Pair``, whose base class holds the scheduling both
back ends share (``load``: the model's copies, then the operator- and branch-level wrappers;
``split``: the units of each layer at the ratio, a layer with none on ``b`` whole on ``a``;
``frame_burst``: ``a``'s frames in the calling thread while a helper thread has ``b`` run its
own, every frame an interval on one clock). A back end supplies where the model and its
inputs live (``_runtime``) and how one step runs on its two processors (``_alone_a``,
``_split``, ``branch``, ``_frame_b``, ``sync``):

* ``CudaPair`` (a host with a CUDA GPU): ``a`` = the GPU (it holds the activations and
  runs every operator that is not split), ``b`` = the CPU. At a split layer the calling
  thread copies the input to pinned host memory, launches the GPU's part asynchronously
  on the current CUDA stream, computes the CPU's part itself with PyTorch's CPU kernels,
  waits for the GPU's part (the per-layer synchronization), copies the CPU's part to the
  GPU and concatenates there. The input copy is not overlapped with the GPU's part, so
  every transfer lies on the critical path (muLayer avoids copies with the unified
  memory of mobile SoCs; a discrete GPU cannot).
* ``CpuWorkerPair`` (any host with two disjoint CPU core groups): ``a`` = this process
  pinned to the first group (the harness pins it), ``b`` = a worker process pinned to
  the second group (``os.sched_setaffinity``, its own ``torch.set_num_threads``) that
  holds a copy of the model. PyTorch's intra-op thread pool is process-wide, so two
  threads of one process could not keep separate core sets. Activations go through two
  shared-memory buffers; each request is one message over a pipe and one reply (the
  per-layer synchronization). The worker is always ended: context manager, a finalizer,
  and ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` so that a parent killed with SIGKILL leaves no
  worker behind.

Time of each inference, on one clock (``time.perf_counter_ns``: CLOCK_MONOTONIC, shared
by every process of the host): every cooperative step (a split layer, a branch pair)
records the copy of the input to ``b`` (``t_in``), the parallel section's wall time
(``par``, from both parts starting to the barrier passed), each processor's compute
time in it (``ca``, ``cb``: host clock for the CPU sides, CUDA events for the GPU),
the copies inside it (``inner``, the worker writing its result) and after it (``t_out``)
and the merge. ``decompose_steps`` turns these into a partition of the inference's wall
time: ``solo`` (outside any step: ``a`` runs the operators that are not split while
``b`` idles), ``parallel`` (both compute: the shorter part), ``imbalance`` (one part
finished, its processor waits at the barrier for the other), ``sync`` (the barrier
passed later than the slower part finished: signalling, wake-up, launches), ``transfer``,
``merge`` and ``other`` (bookkeeping). Frame level uses the intervals themselves
(``decompose_frames``). ``wait`` = imbalance + sync; ``overhead`` = sync + transfer +
merge + other: the time in which neither processor computes.
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from study.coexec_ops import TORCH_MODULES
from study.models.zoo import Bottleneck, YoloDetector, forward_hooked

now = time.perf_counter_ns  # CLOCK_MONOTONIC on Linux: the same clock in the worker process

SPLIT_TYPES: tuple[type, ...] = tuple(getattr(nn, n) for n in TORCH_MODULES)
PHASES = ("solo", "parallel", "imbalance", "sync", "transfer", "merge", "other")
FRAME_KEYS = ("frames", "frames_a", "frames_b", "throughput_fps", "frame_latency_ms", "frame_latency_max_ms")


class CoexecError(RuntimeError):
    """The co-execution worker failed, died or did not answer."""


# --------------------------------------------------------------------------- splitting
def set_tf32(enabled: bool) -> tuple[bool, bool]:
    """TF32 on or off for cuDNN convolutions and CUDA matmuls; returns the flags it replaced."""
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled
    return old


def restore_tf32(old: tuple[bool, bool]) -> None:
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def is_splittable(m: nn.Module) -> bool:
    return isinstance(m, SPLIT_TYPES)


def split_units(layer: nn.Module) -> tuple[int, int, int | None]:
    """(units, output channels per unit, input channels per unit or None).

    A unit is one output channel (dense convolution, linear layer) or one channel group
    (grouped and depthwise convolutions: a group's outputs need only its own inputs, so
    each part gets only its groups' input channels). ``None``: every part needs the
    whole input."""
    if isinstance(layer, nn.Conv2d):
        g = layer.groups
        if g > 1:
            return g, layer.out_channels // g, layer.in_channels // g
        return layer.out_channels, 1, None
    if isinstance(layer, nn.Linear):
        return layer.out_features, 1, None
    raise TypeError(f"{type(layer).__name__} is not splittable (splittable: {TORCH_MODULES})")


def units_b(units: int, r: float) -> int:
    """Units on processor ``b`` for ratio ``r`` (round half up, clipped to [0, units])."""
    return min(units, max(0, int(math.floor(r * units + 0.5))))


def cat_dim(layer: nn.Module) -> int:
    return 1 if isinstance(layer, nn.Conv2d) else -1


def part_input(layer: nn.Module, x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """The input that units [lo, hi) need: all of ``x``, or their groups' channels."""
    _, _, ipu = split_units(layer)
    return x if ipu is None else x[:, lo * ipu:hi * ipu]


def part_forward(layer: nn.Module, x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Output units [lo, hi) of ``layer`` from ``x = part_input(layer, ., lo, hi)``."""
    _, opu, ipu = split_units(layer)
    w = layer.weight[lo * opu:hi * opu]
    b = None if layer.bias is None else layer.bias[lo * opu:hi * opu]
    if isinstance(layer, nn.Linear):
        return F.linear(x, w, b)
    groups = (hi - lo) if ipu is not None else 1
    if layer.padding_mode != "zeros":
        x = F.pad(x, layer._reversed_padding_repeated_twice, mode=layer.padding_mode)
        return F.conv2d(x, w, b, layer.stride, 0, layer.dilation, groups)
    return F.conv2d(x, w, b, layer.stride, layer.padding, layer.dilation, groups)


def split_reference(layer: nn.Module, x: torch.Tensor, r: float) -> torch.Tensor:
    """Both parts computed one after the other on one processor and merged: what the
    concurrent engine must reproduce (tests)."""
    units, _, _ = split_units(layer)
    k_b = units_b(units, r)
    k_a = units - k_b
    parts = [part_forward(layer, part_input(layer, x, lo, hi), lo, hi) for lo, hi in ((0, k_a), (k_a, units)) if hi > lo]
    return torch.cat(parts, cat_dim(layer)) if len(parts) > 1 else parts[0]


def splittable_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if is_splittable(m)}


def layer_op(m: nn.Module) -> str:
    if isinstance(m, nn.Conv2d):
        if m.groups == 1:
            return "conv"
        return "depthwise_conv" if m.groups == m.in_channels else "grouped_conv"
    return "linear"


# --------------------------------------------------------------------------- module trees
def clone_tree(m: nn.Module) -> nn.Module:
    """A copy of the module tree whose leaves share parameters and buffers with ``m``
    (wrappers can replace children without touching the original model)."""
    c = copy.copy(m)
    c._modules = type(m._modules)((k, None if v is None else clone_tree(v)) for k, v in m._modules.items())
    return c


def replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


class _SplitLayer(nn.Module):
    """Stands in for one splittable layer: the runtime's pair runs it split."""

    def __init__(self, rt: "ModelRuntime", name: str, layer: nn.Module):
        super().__init__()
        self.layer = layer
        self.lname = name
        object.__setattr__(self, "rt", rt)

    def forward(self, x):
        return self.rt.pair.split(self.rt, self.lname, self.layer, x)


class _BranchBottleneck(nn.Module):
    """ResNet bottleneck with a downsample projection: the projection on ``b`` while ``a``
    runs conv1-conv2-conv3 (same arithmetic as ``zoo.Bottleneck.forward``)."""

    def __init__(self, rt: "ModelRuntime", name: str, block: nn.Module):
        super().__init__()
        self.block = block
        self.bname = f"{name}.downsample"
        object.__setattr__(self, "rt", rt)

    def forward(self, x):
        blk = self.block

        def main_path():
            y = F.relu(blk.bn1(blk.conv1(x)))
            y = F.relu(blk.bn2(blk.conv2(y)))
            return blk.bn3(blk.conv3(y))

        y, idt = self.rt.pair.branch(self.rt, self.bname, main_path, x)
        return F.relu(y + idt)


class _BranchYolo(nn.Module):
    """YOLO detector: the stride-8 head (``heads.0``, the largest) on ``b`` as soon as its
    input exists, while ``a`` runs the rest of the PAN neck and the other two heads
    (same arithmetic as ``zoo.YoloDetector.forward``)."""

    def __init__(self, rt: "ModelRuntime", det: nn.Module):
        super().__init__()
        self.det = det
        object.__setattr__(self, "rt", rt)

    def forward(self, x):
        m = self.det
        n3, n4, p5 = m.top_down(x)

        def rest():
            o4, o5 = m.bottom_up(n3, n4, p5)
            return m.heads[1](o4).flatten(2), m.heads[2](o5).flatten(2)

        (h1, h2), h0 = self.rt.pair.branch(self.rt, "heads.0", rest, n3)
        return torch.cat((h0.flatten(2), h1, h2), 2).transpose(1, 2)


def branch_points(model: nn.Module) -> list[str]:
    """Modules that branch level runs on ``b`` concurrently with ``a``'s work (empty: the
    model has no independent branches that compute)."""
    if isinstance(model, YoloDetector):
        return ["heads.0"]
    return [f"{n}.downsample" for n, m in model.named_modules() if isinstance(m, Bottleneck) and m.downsample is not None]


def branch_note(model: nn.Module) -> str:
    if isinstance(model, YoloDetector):
        return "stride-8 detection head (heads.0) on b || rest of the PAN neck + heads 1-2 on a"
    n = len(branch_points(model))
    if n:
        return f"{n} bottlenecks: downsample projection on b || conv1-conv2-conv3 on a"
    if any(isinstance(m, Bottleneck) for m in model.modules()):
        return "no bottleneck with a projection"
    return "no independent branches that compute (identity shortcuts only)"


def wrap_split(model: nn.Module, rt: "ModelRuntime") -> nn.Module:
    c = clone_tree(model)
    for name, layer in splittable_layers(model).items():
        if not name:
            raise ValueError("the model itself is a single layer: wrap it in a container")
        replace(c, name, _SplitLayer(rt, name, layer))
    return c


def wrap_branches(model: nn.Module, rt: "ModelRuntime") -> nn.Module | None:
    points = branch_points(model)
    if not points:
        return None
    if isinstance(model, YoloDetector):
        return _BranchYolo(rt, model)
    c = clone_tree(model)
    for p in points:
        name = p.rsplit(".", 1)[0]
        replace(c, name, _BranchBottleneck(rt, name, model.get_submodule(name)))
    return c


def max_activation_numel(model: nn.Module, x: torch.Tensor) -> int:
    """The largest input or output of any module in one forward pass (buffer sizing)."""
    best = [x.numel()]

    def hook(_m, inp, out):
        for t in list(inp) + ([out] if isinstance(out, torch.Tensor) else list(out) if isinstance(out, (tuple, list)) else []):
            if isinstance(t, torch.Tensor):
                best[0] = max(best[0], t.numel())

    forward_hooked(model, x, lambda m: hook)
    return int(best[0])


# --------------------------------------------------------------------------- time accounting
class Step(NamedTuple):
    """One cooperative step of an inference (times in ns)."""
    kind: str          # split | branch | alone_a (profiling only)
    name: str
    k_a: int           # units (or 1/0 for a branch) on a
    k_b: int
    t_in: int          # copy of b's input (before the parallel section)
    ca: int            # a's compute time in the section
    cb: int            # b's compute time in the section
    par: int           # wall time of the parallel section (both start -> barrier passed)
    inner: int         # copies inside the section (the worker writing its result)
    t_out: int         # copy of b's result to a (after the section)
    merge: int         # concatenation on a
    wall: int          # the whole step


def decompose_steps(steps: Sequence[Step], wall_ns: int) -> dict[str, float]:
    """Partition of an inference's wall time (ms) from its steps; see the module doc."""
    par_t = imb = syn = tr = mg = oth = ca = cb = inside = 0
    for s in steps:
        p = max(s.par - s.inner, 0)
        both = min(s.ca, s.cb, p)
        one = min(max(s.ca, s.cb), p) - both
        par_t += both
        imb += one
        syn += p - both - one
        tr += s.t_in + s.inner + s.t_out
        mg += s.merge
        oth += max(s.wall - (s.t_in + s.par + s.t_out + s.merge), 0)
        ca += s.ca
        cb += s.cb
        inside += s.wall
    solo = max(wall_ns - inside, 0)
    ms = 1e-6
    out = {"t_solo_ms": solo * ms, "t_parallel_ms": par_t * ms, "t_imbalance_ms": imb * ms, "t_sync_ms": syn * ms,
           "t_transfer_ms": tr * ms, "t_merge_ms": mg * ms, "t_other_ms": oth * ms, "engine_wall_ms": wall_ns * ms,
           "compute_a_ms": (solo + ca) * ms, "compute_b_ms": cb * ms, "n_steps": len(steps)}
    return _derived(out)


def _derived(d: dict[str, float]) -> dict[str, float]:
    wall = d["engine_wall_ms"]
    d["wait_ms"] = d["t_imbalance_ms"] + d["t_sync_ms"]
    d["overhead_ms"] = d["t_sync_ms"] + d["t_transfer_ms"] + d["t_merge_ms"] + d["t_other_ms"]
    d["overhead_share"] = d["overhead_ms"] / wall if wall > 0 else float("nan")
    d["idle_a"] = max(0.0, 1 - d["compute_a_ms"] / wall) if wall > 0 else float("nan")
    d["idle_b"] = max(0.0, 1 - d["compute_b_ms"] / wall) if wall > 0 else float("nan")
    return d


def union(iv: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s, e in sorted((int(s), int(e)) for s, e in iv if e > s):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def length(iv: Sequence[tuple[int, int]]) -> int:
    return sum(e - s for s, e in union(iv))


def overlap(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> int:
    """Length of the intersection of two sets of intervals."""
    a, b = union(a), union(b)
    i = j = tot = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        tot += max(0, hi - lo)
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tot


def clip(iv, lo: int, hi: int) -> list[tuple[int, int]]:
    return [(max(s, lo), min(e, hi)) for s, e in iv if min(e, hi) > max(s, lo)]


def decompose_frames(a_iv, b_iv, copy_iv, start: int, end: int, latencies_ns: Sequence[int],
                     frames_a: int, frames_b: int) -> dict[str, float]:
    """Frame level: partition of a burst's wall time from the processors' compute intervals."""
    a_iv, b_iv, copy_iv = clip(a_iv, start, end), clip(b_iv, start, end), clip(copy_iv, start, end)
    wall = end - start
    both = overlap(a_iv, b_iv)
    either = length(list(a_iv) + list(b_iv))
    busy = union(list(a_iv) + list(b_iv))
    copies_idle = length(copy_iv) - overlap(copy_iv, busy)
    neither = max(wall - either, 0)
    tr = min(copies_idle, neither)
    ms = 1e-6
    n = frames_a + frames_b
    out = {"t_solo_ms": 0.0, "t_parallel_ms": both * ms, "t_imbalance_ms": (either - both) * ms,
           "t_sync_ms": (neither - tr) * ms, "t_transfer_ms": tr * ms, "t_merge_ms": 0.0, "t_other_ms": 0.0,
           "engine_wall_ms": wall * ms, "compute_a_ms": length(a_iv) * ms, "compute_b_ms": length(b_iv) * ms,
           "n_steps": n}
    out = _derived(out)
    lat = [v * ms for v in latencies_ns]
    out.update(frames=n, frames_a=frames_a, frames_b=frames_b,
               throughput_fps=n / (wall * 1e-9) if wall > 0 else float("nan"),
               frame_latency_ms=float(sum(lat) / len(lat)) if lat else float("nan"),
               frame_latency_max_ms=float(max(lat)) if lat else float("nan"))
    return out


def frame_assignment(n: int, share_b: float) -> list[str]:
    """Which processor runs each of ``n`` frames: ``round(n * share_b)`` frames on ``b``,
    spread evenly (share 0.5: a, b, a, b, ...)."""
    k = units_b(n, share_b)
    out = []
    for i in range(n):
        out.append("b" if (i + 1) * k // n > i * k // n else "a")
    return out


# --------------------------------------------------------------------------- runtimes and pairs
@dataclass
class ModelRuntime:
    """One model prepared on a pair: plain copies on each side, the wrapped models, inputs."""

    key: str
    pair: "Pair"
    model_a: nn.Module
    model_b: nn.Module
    x_a: torch.Tensor
    x_b: torch.Tensor
    op_model: nn.Module | None = None
    branch_model: nn.Module | None = None
    branch_points: list[str] = field(default_factory=list)
    branch_note: str = ""
    layers: dict[str, nn.Module] = field(default_factory=dict)      # a-side splittable layers
    layers_b: dict[str, nn.Module] = field(default_factory=dict)    # b-side copies (CudaPair)
    modules_b: dict[str, nn.Module] = field(default_factory=dict)   # b-side branch modules (CudaPair)
    frames_a: list[torch.Tensor] = field(default_factory=list)
    frames_b: list[torch.Tensor] = field(default_factory=list)
    ratio: float | dict[str, float] = 0.0
    profiling: bool = False
    _units: dict[str, int] = field(default_factory=dict)

    def k_b(self, name: str, layer: nn.Module) -> tuple[int, int]:
        units = self._units.get(name)
        if units is None:
            units = self._units[name] = split_units(layer)[0]
        r = self.ratio.get(name, 0.0) if isinstance(self.ratio, dict) else self.ratio
        return units, units_b(units, r)


class Pair:
    """Two processors that co-execute: ``a`` holds the activations and runs what is not
    split, ``b`` helps. Subclasses implement the three granularities."""

    kind = "abstract"

    def __init__(self, a: str, b: str, threads_a: int, threads_b: int):
        self.a, self.b = a, b
        self.threads_a, self.threads_b = threads_a, threads_b
        self.steps: list[Step] = []
        self.runtimes: dict[str, ModelRuntime] = {}

    @property
    def name(self) -> str:
        return f"{self.a}+{self.b}" if self.kind == "cpu+cpu" else "cpu+gpu"

    # context manager -------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    # the shared scheduling -------------------------------------------------------
    def load(self, key: str, model: nn.Module, x: torch.Tensor, frames: Sequence[torch.Tensor] = ()) -> ModelRuntime:
        """``model`` prepared on the pair: its copies and inputs on each side (the back end's
        ``_runtime``), then the operator- and branch-level wrappers around ``a``'s copy."""
        model = model.eval()
        rt = self._runtime(key, model, x, list(frames))
        rt.layers = splittable_layers(rt.model_a)
        rt.op_model = wrap_split(rt.model_a, rt)
        rt.branch_points = branch_points(model)
        rt.branch_note = branch_note(model)
        rt.branch_model = wrap_branches(rt.model_a, rt)
        self.runtimes[key] = rt
        return rt

    def split(self, rt: ModelRuntime, name: str, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """One splittable layer: ``b`` computes the last ``k_b`` units at the runtime's
        ratio while ``a`` computes the rest (``_split``); with ``k_b = 0`` the layer runs
        whole on ``a`` (timed by ``_alone_a`` while profiling)."""
        units, k_b = rt.k_b(name, layer)
        if k_b == 0:
            return self._alone_a(name, units, layer, x) if rt.profiling else layer(x)
        return self._split(rt, name, layer, x, units - k_b, units)

    def frame_burst(self, rt: ModelRuntime, assign: Sequence[str]) -> tuple[list[torch.Tensor], dict[str, float]]:
        """Frame level: ``a``'s frames run whole in this thread while a helper thread has
        ``b`` run its own (``_frame_b``); one interval per frame, on one clock."""
        idx_a = [i for i, p in enumerate(assign) if p == "a"]
        idx_b = [i for i, p in enumerate(assign) if p == "b"]
        n = len(assign)
        outs: list[Any] = [None] * n
        lat = [0] * n
        a_iv: list[tuple[int, int]] = []
        b_iv: list[tuple[int, int]] = []
        copy_iv: list[tuple[int, int]] = []
        err: list[BaseException] = []
        self.set_threads()

        def run_b():
            try:
                with torch.inference_mode():
                    for i in idx_b:
                        outs[i], lat[i] = self._frame_b(rt, i, b_iv, copy_iv)
            except BaseException as e:  # re-raised in the calling thread
                err.append(e)

        self.sync()
        t0 = now()
        th = threading.Thread(target=run_b, name=f"coexec-frames-{self.b}", daemon=True) if idx_b else None
        if th is not None:
            th.start()
        with torch.inference_mode():
            for i in idx_a:
                s = now()
                outs[i] = rt.model_a(rt.frames_a[i])
                self.sync()  # a GPU's frame is done when its stream is (a CPU's: no-op)
                e = now()
                a_iv.append((s, e))
                lat[i] = e - s
        if th is not None:
            th.join()
        t1 = now()
        if err:
            raise err[0]
        return outs, decompose_frames(a_iv, b_iv, copy_iv, t0, t1, lat, len(idx_a), len(idx_b))

    # the back end ----------------------------------------------------------------
    def _runtime(self, key: str, model: nn.Module, x: torch.Tensor, frames: list[torch.Tensor]) -> ModelRuntime:
        """``model`` (eval mode) and its inputs placed on both sides."""
        raise NotImplementedError

    def _alone_a(self, name: str, units: int, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``layer`` whole on ``a``, recorded as an ``alone_a`` step (profiling)."""
        raise NotImplementedError

    def _split(self, rt: ModelRuntime, name: str, layer: nn.Module, x: torch.Tensor, k_a: int,
               units: int) -> torch.Tensor:
        """Units ``[0, k_a)`` of ``layer`` on ``a`` and ``[k_a, units)`` on ``b`` at once,
        merged on ``a``, recorded as a ``split`` step."""
        raise NotImplementedError

    def branch(self, rt: ModelRuntime, name_b: str, fa: Callable[[], Any], x: torch.Tensor):
        """``fa()`` on ``a`` while ``b`` runs module ``name_b`` on ``x``: (a's, b's output on a)."""
        raise NotImplementedError

    def _frame_b(self, rt: ModelRuntime, i: int, b_iv: list, copy_iv: list) -> tuple[torch.Tensor, int]:
        """Frame ``i`` whole on ``b`` (called from the helper thread): (output, latency ns);
        appends its compute interval to ``b_iv`` and its copies to ``copy_iv``."""
        raise NotImplementedError

    def sync(self) -> None:
        pass

    def to_host(self, y: torch.Tensor) -> torch.Tensor:
        return y.detach().float().cpu()

    def set_threads(self) -> None:
        if torch.get_num_threads() != self.threads_a:
            torch.set_num_threads(self.threads_a)

    # one inference -------------------------------------------------------------
    def infer(self, rt: ModelRuntime, granularity: str, ratio: float | dict[str, float] = 0.0):
        """One co-executed inference: (output on a, breakdown)."""
        model = rt.op_model if granularity == "operator" else rt.branch_model
        if model is None:
            raise ValueError(f"{rt.key}: no {granularity} level for this model ({rt.branch_note})")
        rt.ratio = ratio
        self.set_threads()
        self.steps = []
        t0 = now()
        with torch.inference_mode():
            y = model(rt.x_a)
        self.sync()
        t1 = now()
        return y, decompose_steps(self.steps, t1 - t0)


def _ns(ms: float) -> int:
    return int(ms * 1e6)


# --------------------------------------------------------------------------- CPU + GPU
class CudaPair(Pair):
    """``a`` = the CUDA GPU, ``b`` = the CPU (the calling thread, PyTorch CPU kernels)."""

    kind = "cpu+gpu"

    def __init__(self, cpu_threads: int, tf32: bool = False, device: str = "cuda"):
        super().__init__("gpu", "cpu", threads_a=cpu_threads, threads_b=cpu_threads)
        if not torch.cuda.is_available():
            raise CoexecError("CudaPair needs a CUDA GPU: torch.cuda.is_available() is False")
        self.dev = torch.device(device)
        self.tf32 = tf32
        self._pinned: dict[Any, torch.Tensor] = {}
        self._events: dict[Any, tuple[Any, Any]] = {}
        self._saved_flags = None

    def start(self) -> None:
        self._saved_flags = set_tf32(self.tf32)

    def close(self) -> None:
        if self._saved_flags is not None:
            restore_tf32(self._saved_flags)
            self._saved_flags = None
        self._pinned.clear()
        self._events.clear()
        self.runtimes.clear()

    def sync(self) -> None:
        torch.cuda.current_stream(self.dev).synchronize()

    def _pin(self, key, like: torch.Tensor) -> torch.Tensor:
        t = self._pinned.get(key)
        if t is None or t.shape != like.shape:
            t = self._pinned[key] = torch.empty(like.shape, dtype=like.dtype, pin_memory=True)
        t.copy_(like)
        return t

    def _ev(self, key):
        e = self._events.get(key)
        if e is None:
            e = self._events[key] = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        return e

    def _runtime(self, key, model, x, frames):
        rt = ModelRuntime(key=key, pair=self, model_a=copy.deepcopy(model).to(self.dev).eval(), model_b=model,
                          x_a=x.to(self.dev), x_b=x.clone(),
                          frames_a=[f.to(self.dev) for f in frames], frames_b=[f.clone() for f in frames])
        rt.layers_b = splittable_layers(model)
        rt.modules_b = {n: model.get_submodule(n) for n in branch_points(model)}
        return rt

    def _alone_a(self, name, units, layer, x):
        stream = torch.cuda.current_stream(self.dev)
        e0, e1 = self._ev(name)
        stream.synchronize()
        t1 = now()
        e0.record(stream)
        y = layer(x)
        e1.record(stream)
        e1.synchronize()
        ca = _ns(e0.elapsed_time(e1))
        self.steps.append(Step("alone_a", name, units, 0, 0, ca, 0, now() - t1, 0, 0, 0, now() - t1))
        return y

    def _split(self, rt, name, layer, x, k_a, units):
        k_b = units - k_a
        stream = torch.cuda.current_stream(self.dev)
        stream.synchronize()  # a's preceding work (operators that are not split) is done: solo time
        t1 = now()
        xb = self._pin((name, "in"), part_input(layer, x, k_a, units))  # device -> pinned host copy
        t2 = now()
        e0, e1 = self._ev(name)
        ya = None
        if k_a:
            e0.record(stream)
            ya = part_forward(layer, part_input(layer, x, 0, k_a), 0, k_a)  # launched, runs on the GPU
            e1.record(stream)
        t3 = now()
        yb = part_forward(rt.layers_b[name], xb, k_a, units)  # the CPU part, in this thread
        t4 = now()
        if k_a:
            e1.synchronize()  # the barrier
        t5 = now()
        yb = yb.to(self.dev)
        t6 = now()
        if ya is not None:
            y = torch.cat((ya, yb), cat_dim(layer))
            stream.synchronize()
        else:
            y = yb
        t7 = now()
        ca = _ns(e0.elapsed_time(e1)) if k_a else 0
        self.steps.append(Step("split", name, k_a, k_b, t2 - t1, ca, t4 - t3, t5 - t2, 0, t6 - t5, t7 - t6, t7 - t1))
        return y

    def branch(self, rt, name_b, fa, x):
        stream = torch.cuda.current_stream(self.dev)
        stream.synchronize()
        t1 = now()
        xb = self._pin((name_b, "in"), x)
        t2 = now()
        e0, e1 = self._ev(name_b)
        e0.record(stream)
        ya = fa()
        e1.record(stream)
        t3 = now()
        yb = rt.modules_b[name_b](xb)
        t4 = now()
        e1.synchronize()
        t5 = now()
        yb = yb.to(self.dev)
        t6 = now()
        self.steps.append(Step("branch", name_b, 1, 1, t2 - t1, _ns(e0.elapsed_time(e1)), t4 - t3, t5 - t2, 0, t6 - t5,
                               0, t6 - t1))
        return ya, yb

    def _frame_b(self, rt, i, b_iv, copy_iv):
        s = now()
        y = rt.model_b(rt.frames_b[i])
        e = now()
        b_iv.append((s, e))
        return y, e - s


# --------------------------------------------------------------------------- CPU + CPU (worker process)
def _set_pdeathsig() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except Exception:  # pragma: no cover - not Linux
        pass


def _attach(name: str, n: int):
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(name=name)
    return shm, torch.frombuffer(shm.buf, dtype=torch.float32, count=n)


def _spin_wait(conn, spin_ns: int) -> None:
    """Poll the pipe without sleeping for up to ``spin_ns`` (a sleeping process needs the
    scheduler to wake it up, which costs tens of microseconds on an idle core and more on
    a busy one), then fall through to a blocking wait."""
    if spin_ns <= 0:
        return
    end = time.perf_counter_ns() + spin_ns
    while time.perf_counter_ns() < end:
        if conn.poll(0):
            return


def _release(shms, unlink: bool = False) -> None:
    """Close each shared-memory block (one still viewed by a tensor stays mapped: the
    ``BufferError`` is ignored) and, where this process created it, unlink it."""
    for s in shms:
        try:
            s.close()
        except BufferError:
            pass
        if unlink:
            try:
                s.unlink()
            except FileNotFoundError:
                pass


def _worker_main(conn, parent_pid: int, cores: list[int], threads: int, spin_ns: int = 0) -> None:
    """The worker: pinned to ``cores``, serves requests until 'stop' or the pipe closes."""
    _set_pdeathsig()
    if os.getppid() != parent_pid:
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    if cores:
        os.sched_setaffinity(0, set(cores))
    torch.set_num_threads(max(1, threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    models: dict[str, tuple[nn.Module, dict[str, nn.Module]]] = {}
    shms: list[Any] = []
    tin = tout = None
    clock = time.perf_counter_ns
    with torch.inference_mode():
        while True:
            try:
                _spin_wait(conn, spin_ns)
                msg = conn.recv()
            except (EOFError, OSError):
                break
            op = msg[0]
            try:
                if op in ("split", "module", "model"):
                    key, shape = msg[1], msg[-1]
                    x = tin[:math.prod(shape)].view(shape)
                    mod, names = models[key]
                    t0 = clock()
                    if op == "split":
                        y = part_forward(names[msg[2]], x, msg[3], msg[4])
                    elif op == "module":
                        y = names[msg[2]](x)
                    else:
                        y = mod(x)
                    t1 = clock()
                    tout[:y.numel()].view(y.shape).copy_(y)
                    t2 = clock()
                    conn.send(("ok", t0, t1, t2, tuple(y.shape)))
                elif op == "load":
                    m = pickle.loads(msg[2]).eval()
                    models[msg[1]] = (m, dict(m.named_modules()))
                    conn.send(("ok",))
                elif op == "unload":
                    models.pop(msg[1], None)
                    conn.send(("ok",))
                elif op == "buffers":
                    tin = tout = None
                    _release(shms)
                    s_in, tin = _attach(msg[1], msg[3])
                    s_out, tout = _attach(msg[2], msg[3])
                    shms = [s_in, s_out]
                    conn.send(("ok",))
                elif op == "ping":
                    conn.send(("ok", clock(), os.getpid(), sorted(os.sched_getaffinity(0)), torch.get_num_threads()))
                elif op == "stop":
                    conn.send(("ok",))
                    break
                else:
                    conn.send(("error", f"unknown request {op!r}"))
            except Exception:
                conn.send(("error", traceback.format_exc()[-2000:]))
    tin = tout = None
    _release(shms)


def _stop_worker(proc, conn, shms) -> None:
    """End the worker and free the shared memory (finalizer: also runs at interpreter exit)."""
    try:
        if proc is not None and proc.is_alive():
            try:
                conn.send(("stop",))
                if conn.poll(5):
                    conn.recv()
            except (OSError, EOFError, BrokenPipeError):
                pass
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(2)
            if proc.is_alive():
                proc.kill()
                proc.join(2)
    finally:
        try:
            conn.close()
        except OSError:
            pass
        _release(shms, unlink=True)
        shms.clear()


@contextlib.contextmanager
def _spawnable_main():
    """spawn re-imports the parent's ``__main__`` from its file in the child; a program read
    from stdin has a ``__file__`` that names no file: hide it while the worker starts."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    hide = main is not None and isinstance(path, str) and not os.path.exists(path)
    if hide:
        del main.__file__
    try:
        yield
    finally:
        if hide:
            main.__file__ = path


class CpuWorkerPair(Pair):
    """``a`` = this process (the caller pins it to ``cores_a``), ``b`` = a worker process
    pinned to ``cores_b``; activations through shared memory, one message per request."""

    kind = "cpu+cpu"

    def __init__(self, cores_a: Sequence[int], cores_b: Sequence[int], names: tuple[str, str] = ("g0", "g1"),
                 timeout_s: float = 300.0, spin_us: float = 100.0):
        if set(cores_a) & set(cores_b):
            raise ValueError(f"core groups overlap: {sorted(cores_a)} and {sorted(cores_b)}")
        super().__init__(names[0], names[1], threads_a=max(1, len(cores_a)), threads_b=max(1, len(cores_b)))
        self.cores_a, self.cores_b = list(cores_a), list(cores_b)
        self.timeout_s = timeout_s
        self.spin_ns = int(spin_us * 1000)  # both sides poll this long before sleeping on the pipe
        self.proc = None
        self.conn = None
        self._shms: list[Any] = []
        self._cap = 0
        self._tin = self._tout = None
        self._finalizer = None
        self._pending = 0  # requests sent whose reply is not read yet
        self.worker_info: dict[str, Any] = {}

    # lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        import multiprocessing as mp

        if self.proc is not None:
            return
        ctx = mp.get_context("spawn")  # fork would copy CUDA/OpenMP state; spawn starts clean
        parent, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, os.getpid(), self.cores_b, self.threads_b, self.spin_ns),
                                name="coexec-worker", daemon=True)
        with _spawnable_main():
            self.proc.start()
        child.close()
        self.conn = parent
        self._finalizer = weakref.finalize(self, _stop_worker, self.proc, self.conn, self._shms)
        rep = self._call(("ping",), timeout=120)
        self.worker_info = {"pid": rep[2], "cores": rep[3], "threads": rep[4]}

    def close(self) -> None:
        self._tin = self._tout = None
        self.runtimes.clear()
        if self._finalizer is not None:
            self._finalizer()  # idempotent
            self._finalizer = None
        self.proc = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    # messaging -----------------------------------------------------------------
    def _send(self, msg) -> None:
        if self.conn is None:
            raise CoexecError("the co-execution worker is not running")
        if self._pending:
            self._drain()  # an earlier request was abandoned (an error between send and receive)
        self.conn.send(msg)
        self._pending += 1

    def _recv(self, timeout: float | None = None):
        if self.conn is None:
            raise CoexecError("the co-execution worker is not running")
        wait = self.timeout_s if timeout is None else timeout
        try:
            _spin_wait(self.conn, self.spin_ns)
            if not self.conn.poll(wait):
                raise CoexecError(f"the co-execution worker did not answer within {wait} s")
            rep = self.conn.recv()
        except (EOFError, OSError) as e:
            raise CoexecError(f"the co-execution worker died ({type(e).__name__}); exit code "
                              f"{self.proc.exitcode if self.proc else '?'}") from e
        self._pending -= 1
        if rep[0] == "error":
            raise CoexecError(f"co-execution worker failed:\n{rep[1]}")
        return rep

    def _drain(self) -> None:
        while self._pending > 0:
            try:
                self._recv()
            except CoexecError as e:
                if "worker failed" not in str(e):
                    raise

    def _call(self, msg, timeout: float | None = None):
        self._send(msg)
        return self._recv(timeout)

    def ping_ns(self) -> int:
        """Round trip of one empty request (the floor of every per-layer synchronization)."""
        t0 = now()
        self._call(("ping",))
        return now() - t0

    def _ensure_capacity(self, n: int) -> None:
        from multiprocessing import shared_memory

        if n <= self._cap:
            return
        n = int(n)
        new = [shared_memory.SharedMemory(create=True, size=n * 4) for _ in range(2)]
        self._tin = self._tout = None
        old = list(self._shms)
        self._shms.clear()
        self._shms.extend(new)
        self._tin = torch.frombuffer(new[0].buf, dtype=torch.float32, count=n)
        self._tout = torch.frombuffer(new[1].buf, dtype=torch.float32, count=n)
        self._cap = n
        self._call(("buffers", new[0].name, new[1].name, n))
        _release(old, unlink=True)

    def _put(self, x: torch.Tensor) -> tuple[int, ...]:
        self._tin[:x.numel()].view(x.shape).copy_(x)
        return tuple(x.shape)

    def _out(self, shape) -> torch.Tensor:
        return self._tout[:math.prod(shape)].view(shape)

    # models --------------------------------------------------------------------
    def _runtime(self, key, model, x, frames):
        self._ensure_capacity(max([max_activation_numel(model, x), *(f.numel() for f in frames)]))
        self._call(("load", key, pickle.dumps(model)), timeout=max(self.timeout_s, 120))
        return ModelRuntime(key=key, pair=self, model_a=model, model_b=model, x_a=x, x_b=x,
                            frames_a=list(frames), frames_b=list(frames))

    def _alone_a(self, name, units, layer, x):
        t1 = now()
        y = layer(x)
        dt = now() - t1
        self.steps.append(Step("alone_a", name, units, 0, 0, dt, 0, dt, 0, 0, 0, dt))
        return y

    def _split(self, rt, name, layer, x, k_a, units):
        k_b = units - k_a
        t1 = now()
        shape = self._put(part_input(layer, x, k_a, units))
        t2 = now()
        self._send(("split", rt.key, name, k_a, units, shape))
        t3 = now()
        ya = part_forward(layer, part_input(layer, x, 0, k_a), 0, k_a) if k_a else None
        t4 = now()
        _, w0, w1, w2, oshape = self._recv()
        t5 = now()
        yb = self._out(oshape)
        if ya is not None:
            y = torch.cat((ya, yb), cat_dim(layer))
            t6 = now()
            t_out, merge = 0, t6 - t5
        else:
            y = yb.clone()
            t6 = now()
            t_out, merge = t6 - t5, 0
        self.steps.append(Step("split", name, k_a, k_b, t2 - t1, t4 - t3, w1 - w0, t5 - t2, w2 - w1, t_out, merge,
                               t6 - t1))
        return y

    def branch(self, rt, name_b, fa, x):
        t1 = now()
        shape = self._put(x)
        t2 = now()
        self._send(("module", rt.key, name_b, shape))
        t3 = now()
        ya = fa()
        t4 = now()
        _, w0, w1, w2, oshape = self._recv()
        t5 = now()
        yb = self._out(oshape).clone()
        t6 = now()
        self.steps.append(Step("branch", name_b, 1, 1, t2 - t1, t4 - t3, w1 - w0, t5 - t2, w2 - w1, t6 - t5, 0, t6 - t1))
        return ya, yb

    def _frame_b(self, rt, i, b_iv, copy_iv):
        c0 = now()
        shape = self._put(rt.frames_b[i])
        c1 = now()
        self._send(("model", rt.key, shape))
        _, w0, w1, w2, oshape = self._recv()
        c2 = now()
        y = self._out(oshape).clone()
        c3 = now()
        b_iv.append((w0, w1))
        copy_iv.extend([(c0, c1), (w1, w2), (c2, c3)])
        return y, c3 - c0


# --------------------------------------------------------------------------- sessions for the harness
class SingleSession:
    """The plain model on one processor (no engine in the way): the baselines."""

    def __init__(self, model: nn.Module, x: torch.Tensor, threads: int, cuda: bool = False):
        self.model, self.x, self.threads, self.cuda = model, x, threads, cuda
        self.last: dict[str, float] | None = None

    def run(self):
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            y = self.model(self.x)
        if self.cuda:
            torch.cuda.synchronize()
        return y

    def output(self) -> torch.Tensor:
        return self.run().detach().float().cpu()

    def close(self) -> None:
        pass


class CoexecSession:
    """One co-executed configuration: operator level at a ratio, or branch level."""

    def __init__(self, pair: Pair, rt: ModelRuntime, granularity: str, ratio: float | dict[str, float] = 0.0):
        if granularity not in ("operator", "branch"):
            raise ValueError(f"unknown granularity {granularity!r}")
        self.pair, self.rt, self.granularity, self.ratio = pair, rt, granularity, ratio
        self.last: dict[str, float] | None = None

    def run(self):
        y, self.last = self.pair.infer(self.rt, self.granularity, self.ratio)
        return y

    def output(self) -> torch.Tensor:
        return self.pair.to_host(self.run())

    def close(self) -> None:
        pass


class FrameSession:
    """Frame level: one call runs a burst of frames, each whole on one processor."""

    def __init__(self, pair: Pair, rt: ModelRuntime, assign: Sequence[str]):
        self.pair, self.rt, self.assign = pair, rt, list(assign)
        self.last: dict[str, float] | None = None

    def run(self):
        outs, self.last = self.pair.frame_burst(self.rt, self.assign)
        return outs

    def outputs(self) -> list[torch.Tensor]:
        return [self.pair.to_host(y) for y in self.run()]

    def close(self) -> None:
        pass


def rel_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    """max |y - ref| / max |ref| (float64)."""
    y, ref = y.detach().double().cpu(), ref.detach().double().cpu()
    if y.shape != ref.shape:
        return float("inf")
    scale = ref.abs().max().item()
    return (y - ref).abs().max().item() / (scale if scale > 0 else 1.0)


__all__ = ["CoexecError", "CoexecSession", "CpuWorkerPair", "CudaPair", "FRAME_KEYS",
           "FrameSession", "ModelRuntime", "PHASES", "Pair", "SingleSession", "Step", "branch_points",
           "decompose_frames", "decompose_steps", "frame_assignment", "part_forward", "part_input", "rel_error",
           "split_reference", "split_units", "splittable_layers", "units_b"]


# --------------------------------------------------------------------------- profiles and predicted ratios
def profile_layers(pair: Pair, rt: ModelRuntime, runs: int, warmup: int = 1) -> list[dict[str, Any]]:
    """Per-layer times of each processor alone, measured by the engine itself: every
    splittable layer whole on ``a`` (r = 0) and whole on ``b`` (r = 1, with its copies).
    One record per layer and run (times in ns)."""
    recs: list[dict[str, Any]] = []
    rt.profiling = True
    try:
        for pass_, r in (("a", 0.0), ("b", 1.0)):
            for i in range(warmup + runs):
                pair.infer(rt, "operator", r)
                if i >= warmup:
                    recs.extend({"pass": pass_, "run": i - warmup, **s._asdict()} for s in pair.steps)
    finally:
        rt.profiling = False
    return recs


def profile_by_layer(recs: Sequence[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
    """``profile_layers`` records per layer, in the order the layers ran: (name, its
    records of pass ``a``, of pass ``b``)."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    order: list[str] = []
    for r in recs:
        by.setdefault((r["pass"], r["name"]), []).append(r)
        if r["name"] not in order:
            order.append(r["name"])
    return [(name, by.get(("a", name), []), by.get(("b", name), [])) for name in order]


def predict_ratios(recs: Sequence[dict[str, Any]]) -> tuple[float, dict[str, float], list[dict[str, Any]]]:
    """From ``profile_layers`` records: the global r* that balances the summed compute of
    the splittable layers (sum t_a / (sum t_a + sum t_b)), the per-layer r that balances
    each layer, and one row per layer (times in ms). Compute only: the copies that a split
    adds are not in the prediction (muLayer's predictor does not model them either)."""
    import statistics

    rows, per_layer = [], {}
    sa = sb = 0.0
    for name, ra, rb in profile_by_layer(recs):
        ta = statistics.median(x["ca"] for x in ra) / 1e6 if ra else float("nan")
        tb = statistics.median(x["cb"] for x in rb) / 1e6 if rb else float("nan")
        tr = statistics.median(x["t_in"] + x["inner"] + x["t_out"] for x in rb) / 1e6 if rb else float("nan")
        r = ta / (ta + tb) if (ta + tb) > 0 else 0.5
        if math.isnan(r):
            r = 0.5
        per_layer[name] = r
        units = (ra or rb)[0]["k_a"] + (ra or rb)[0]["k_b"]
        rows.append({"layer": name, "units": units, "t_a_ms": ta, "t_b_ms": tb, "transfer_b_ms": tr, "r_balance": r,
                     "n_runs": max(len(ra), len(rb))})
        if not (math.isnan(ta) or math.isnan(tb)):
            sa, sb = sa + ta, sb + tb
    r_global = sa / (sa + sb) if sa + sb > 0 else 0.5
    return r_global, per_layer, rows


def time_runs(session, runs: int, warmup: int = 1) -> list[float]:
    """Latencies (ms) of ``runs`` calls after ``warmup`` (profiles only; reported numbers
    go through the harness)."""
    for _ in range(warmup):
        session.run()
    out = []
    for _ in range(runs):
        t0 = now()
        session.run()
        out.append((now() - t0) / 1e6)
    return out
