"""Reusing data across video frames: the mechanisms, the models' adapters, fidelity metrics.

Mechanisms (each ``step(u8)`` takes one frame, already resized to the model's input as
uint8 (H, W, 3), and returns the frame's result plus what it decided):

* ``FullCompute``: the model on every frame (the reference for fidelity and latency);
* ``FrameReuse(threshold)``: frame level. The change of a frame is its mean absolute
  pixel difference (0..255 scale, all channels) to the last frame that was computed;
  when it is ``<= threshold`` the previous result is returned, else the model runs.
  The change detection is part of every frame's cost;
* ``RegionReuse(threshold, tile)``: region level, DeepCache style (Xu et al., MobiCom'18).
  The network is split into an *early* part (the first convolution layers: local
  operators only, so every feature depends on a known window of input pixels) and the
  *rest*. The early part's feature map is cached. The input is cut into ``tile`` x
  ``tile`` tiles; a tile's change is the mean absolute difference between the pixels of
  its receptive window (the tile plus a halo that covers the early part's receptive
  field) and the pixels that its cached features were computed from. Tiles that changed
  by more than ``threshold`` are grouped into 8-connected components; for each
  component the early part runs on the component's bounding box plus the halo, and the
  features of the bounding box's tiles replace the cached ones; the crop and its
  features are released right after that stitch (their last use). Boxes are snapped to
  power-of-two extents (in tiles), or merged into one box around every changed tile
  when that needs fewer pixels, so that few distinct crop shapes occur; every such shape
  is run once in the untimed warm-up (``prewarm``), as an engine plans its kernels. The rest of the
  network then runs on the stitched feature map. With ``threshold = 0`` every tile whose
  window changed at all is recomputed, so the output equals full computation up to
  floating-point reassociation (tested).

Memory: ``cache_bytes()`` is what a mechanism holds between frames (reference pixels,
previous result, cached features), counted exactly from the arrays' sizes.
``MemoryProbe`` measures the transient peak of one frame's processing: on CUDA
``torch.cuda.max_memory_allocated`` (exact, allocator level); on the CPU the bytes in
use by glibc malloc (``mallinfo2``: main arena + mmapped chunks), sampled after every
leaf module of the PyTorch model and at the end of the frame (layer granularity);
LiteRT plans its tensors in an arena allocated when the model is compiled, so no
per-frame allocation exists to measure there (NaN, with that reason).
"""
from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

# --------------------------------------------------------------------------- change detection


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images (0..255 scale)."""
    try:
        import cv2

        d = cv2.absdiff(a, b)
        return float(cv2.mean(d.reshape(d.shape[0], -1))[0])
    except ImportError:  # pragma: no cover - cv2 is everywhere the study runs
        return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --------------------------------------------------------------------------- fidelity metrics
def det_fidelity(ref, test) -> tuple[float, float]:
    """(IoU, score agreement) of detections ``test`` against ``ref`` (``Detections``).

    Boxes are matched one-to-one maximizing the total IoU (Hungarian); the frame's IoU is
    the sum of matched IoUs over ``max(n_ref, n_test)`` (an unmatched box counts 0; no box
    in either gives 1). Score agreement: mean absolute score difference of matched pairs
    (NaN when nothing is matched)."""
    from scipy.optimize import linear_sum_assignment

    from study.mediapipe_io import box_iou

    n_r, n_t = len(ref), len(test)
    if n_r == 0 and n_t == 0:
        return 1.0, 0.0
    if n_r == 0 or n_t == 0:
        return 0.0, float("nan")
    iou = box_iou(ref.boxes, test.boxes)
    r, c = linear_sum_assignment(-iou)
    keep = iou[r, c] > 0
    total = float(iou[r, c][keep].sum())
    sd = float(np.mean(np.abs(ref.scores[r[keep]] - test.scores[c[keep]]))) if keep.any() else float("nan")
    return total / max(n_r, n_t), sd


def seg_miou(ref: np.ndarray, test: np.ndarray) -> float:
    """Mean IoU of two binary masks over the classes (person, background) present in either."""
    ref = np.asarray(ref, dtype=bool)
    test = np.asarray(test, dtype=bool)
    ious = []
    for cls in (True, False):
        a, b = ref == cls, test == cls
        union = np.logical_or(a, b).sum()
        if union:
            ious.append(np.logical_and(a, b).sum() / union)
    return float(np.mean(ious)) if ious else 1.0


def _range(ref: np.ndarray) -> float:
    r = float(np.max(ref) - np.min(ref))
    return r if r > 0 else 1.0


def psnr(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR (dB) of ``test`` against ``ref``, the data range being ``ref``'s (max - min);
    ``inf`` when identical."""
    ref = np.asarray(ref, dtype=np.float64)
    mse = float(np.mean((ref - np.asarray(test, dtype=np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(_range(ref) ** 2 / mse)


def _gaussian(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    """Gaussian smoothing with an 11 x 11 window (truncate 3.5 sigma), reflected borders:
    OpenCV where present (25x faster), scipy otherwise (the same numbers)."""
    try:
        import cv2

        return lambda a: cv2.GaussianBlur(a, (11, 11), sigma, borderType=cv2.BORDER_REFLECT)
    except ImportError:  # pragma: no cover
        from scipy.ndimage import gaussian_filter

        return lambda a: gaussian_filter(a, sigma, truncate=3.5, mode="reflect")


def ssim(ref: np.ndarray, test: np.ndarray, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) over the
    channels of (C, H, W) images, the data range being ``ref``'s."""
    ref = np.asarray(ref, dtype=np.float32)     # float32: the local statistics need no more, and it is 2x faster
    test = np.asarray(test, dtype=np.float32)
    if ref.ndim == 2:
        ref, test = ref[None], test[None]
    L = _range(ref)
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    f = _gaussian(sigma)
    vals = []
    for x, y in zip(ref, test):
        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        vals.append(float(s.mean(dtype=np.float64)))
    return float(np.mean(vals))


def top1_agreement(ref: np.ndarray, test: np.ndarray) -> float:
    return float(np.argmax(ref) == np.argmax(test))


def rel_error(ref: np.ndarray, test: np.ndarray) -> float:
    ref = np.asarray(ref, dtype=np.float64)
    n = float(np.linalg.norm(ref))
    return float(np.linalg.norm(ref - np.asarray(test, dtype=np.float64)) / (n if n > 0 else 1.0))


# task -> (primary metric, its function, secondary metric, its function, higher is better for the secondary)
METRICS: dict[str, tuple[str, Callable, str | None, Callable | None]] = {
    "face_detection": ("det_iou", lambda r, t: det_fidelity(r, t)[0], "score_abs_diff", lambda r, t: det_fidelity(r, t)[1]),
    "segmentation": ("miou", seg_miou, None, None),
    "style_transfer": ("psnr_db", psnr, "ssim", ssim),
    "classification": ("top1_agreement", top1_agreement, "logit_rel_err", rel_error),
}


def fidelity(task: str, ref, test) -> tuple[str, float, str | None, float]:
    name, fn, name2, fn2 = METRICS[task]
    return name, fn(ref, test), name2, (fn2(ref, test) if fn2 is not None else float("nan"))


def aggregate(metric: str, values) -> float:
    """The fidelity of a trace: the mean over frames; for PSNR the PSNR of the mean
    normalized squared error (frames averaged in the linear domain, so exact frames
    (inf dB) count as zero error instead of dominating)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan")
    if metric == "psnr_db":
        nmse = np.mean(np.power(10.0, -v / 10.0))
        return float("inf") if nmse == 0 else float(-10 * np.log10(nmse))
    return float(np.mean(v))


# --------------------------------------------------------------------------- results
def result_nbytes(result: Any) -> int:
    if result is None:
        return 0
    if hasattr(result, "nbytes"):
        return int(result.nbytes)
    return 0


# --------------------------------------------------------------------------- adapters
class TorchAdapter:
    """A PyTorch zoo model on a device: uint8 frame -> tensor in [0, 1] -> output on the host."""

    engine = "torch"

    def __init__(self, module, task: str, device: str = "cpu"):
        self.module = module
        self.task = task
        self.device = device

    def to_tensor(self, u8: np.ndarray):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(u8)).to(self.device)
        return x.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)

    def finish(self, y) -> np.ndarray:
        """Output to the host (synchronizes with the GPU): logits (classes,) or image (C, H, W)."""
        return y[0].detach().float().cpu().numpy()

    def compute(self, u8: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.finish(self.module(self.to_tensor(u8)))


class LiteRTAdapter:
    """A LiteRT session of a MediaPipe model: uint8 frame -> MediaPipe's input range ->
    outputs -> decoded result (face detections, or the thresholded person mask)."""

    engine = "litert"

    def __init__(self, session, task: str, letterbox=None):
        from study import mediapipe_io as mio

        self.session = session
        self.task = task
        self.lb = letterbox
        self.anchors = mio.face_anchors() if task == "face_detection" else None
        self.range = mio.FACE_INPUT_RANGE if task == "face_detection" else mio.SELFIE_INPUT_RANGE

    def compute(self, u8: np.ndarray):
        from study import mediapipe_io as mio

        self.session.set_inputs([mio.to_tensor(u8, *self.range)])
        outs = self.session.outputs()
        if self.task == "face_detection":
            return mio.decode_faces(outs[0], outs[1], self.anchors, self.lb)
        return outs[0][0, ..., 0] >= mio.SELFIE_MASK_THRESHOLD


# --------------------------------------------------------------------------- mechanisms
@dataclass
class StepInfo:
    computed: bool            # the model (or some of it, for region reuse) ran on this frame
    recomputed_share: float   # share of the input recomputed: 1/0 (full, frame), tiles (region)
    changed_share: float      # share judged changed: frame 1/0, region tiles over the threshold
    change: float             # frame: MAD to the reference; region: largest tile change


class FullCompute:
    mechanism = "full"

    def __init__(self, adapter):
        self.adapter = adapter
        self.threshold = float("nan")

    def reset(self) -> None:
        pass

    def step(self, u8: np.ndarray):
        return self.adapter.compute(u8), StepInfo(True, 1.0, 1.0, float("nan"))

    def cache_bytes(self) -> int:
        return 0


class FrameReuse:
    mechanism = "frame"

    def __init__(self, adapter, threshold: float):
        self.adapter = adapter
        self.threshold = float(threshold)
        self.reset()

    def reset(self) -> None:
        self.ref: np.ndarray | None = None
        self.last: Any = None

    def step(self, u8: np.ndarray):
        change = float("inf") if self.ref is None else mean_abs_diff(u8, self.ref)
        if change > self.threshold:
            self.last = None  # the previous result's last use has passed: release before computing
            self.last = self.adapter.compute(u8)
            self.ref = u8.copy()
            return self.last, StepInfo(True, 1.0, 1.0, change)
        return self.last, StepInfo(False, 0.0, 0.0, change)

    def cache_bytes(self) -> int:
        return (0 if self.ref is None else int(self.ref.nbytes)) + result_nbytes(self.last)


# --------------------------------------------------------------------------- region level: split + receptive field
@dataclass
class Receptive:
    rf: int       # receptive field size (input pixels) of one feature
    jump: int     # total stride S
    start: float  # centre of feature 0 in input pixel coordinates

    def halo(self) -> int:
        """Input margin (a multiple of the stride) around a tile so that every feature of
        the tile depends only on pixels inside the tile plus the margin."""
        r = (self.rf - 1) / 2
        left = r - self.start
        right = self.start + r - (self.jump - 1)
        need = max(0.0, left, right)
        return int(math.ceil(need / self.jump) * self.jump)


def receptive_field(module) -> Receptive:
    """Receptive field of a chain of local layers (convolutions, pooling, padding), walking
    its leaf modules in order. Raises for a layer that is not local (normalization over the
    whole map, upsampling, global pooling) since tiles could not be recomputed exactly."""
    from torch import nn

    rf, jump, start = 1, 1, 0.0

    def pair(v):
        return v if isinstance(v, (tuple, list)) else (v, v)

    for m in module.modules():
        if len(list(m.children())):
            continue
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s, p = pair(m.kernel_size), pair(m.stride), pair(m.padding)
            d = pair(getattr(m, "dilation", 1))
            if isinstance(p, str) or k[0] != k[1] or s[0] != s[1] or p[0] != p[1] or d[0] != d[1]:
                raise ValueError(f"receptive_field: {m} is not square/symmetric")
            keff = (k[0] - 1) * d[0] + 1
            start = start + ((keff - 1) / 2 - p[0]) * jump
            rf = rf + (keff - 1) * jump
            jump = jump * s[0]
        elif isinstance(m, (nn.ReflectionPad2d, nn.ZeroPad2d, nn.ReplicationPad2d)):
            p = m.padding
            if len(set(p)) != 1:
                raise ValueError(f"receptive_field: asymmetric padding {m}")
            start = start - p[0] * jump
        elif isinstance(m, (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.SiLU, nn.Identity, nn.Dropout)):
            continue
        else:
            raise ValueError(f"receptive_field: {type(m).__name__} is not a local layer; it cannot be in the early part")
    return Receptive(rf=rf, jump=jump, start=start)


@dataclass
class Split:
    """A network cut into an early part (local layers, cached per tile) and the rest."""

    early: Any
    rest: Callable[[Any], Any]
    receptive: Receptive
    where: str

    @property
    def stride(self) -> int:
        return self.receptive.jump

    @property
    def halo(self) -> int:
        return self.receptive.halo()


def split_model(name: str, module) -> Split:
    """The early/rest split used for region-level reuse of a zoo model: the deepest prefix
    of local layers at a stride of 4 (beyond it the halo grows past the tile size), or,
    where a whole-map normalization comes first, the layers before it."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    if name == "mobilenet_v2":
        early = module.features[:4]
        tail = module.features[4:]

        def rest(f):
            return module.classifier(torch.flatten(F.adaptive_avg_pool2d(tail(f), 1), 1))

        where = "features[0:4] (stem conv + 3 inverted residual blocks, stride 4, 24 channels)"
    elif name == "resnet50":
        early = nn.Sequential(module.conv1, module.bn1, nn.ReLU(), module.maxpool, module.layer1)

        def rest(f):
            x = module.layer4(module.layer3(module.layer2(f)))
            return module.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

        where = "stem (conv 7x7/2, max-pool/2) + layer1 (3 bottlenecks), stride 4, 256 channels"
    elif name == "fast_style_transfer":
        early = module.conv1  # reflection pad + 9x9 conv; in1 (instance norm) is global: it starts the rest
        rest = module.after_conv1

        where = "conv1 (9x9, stride 1, 32 channels): the first instance norm, a whole-map operator, ends the local prefix"
    else:
        raise KeyError(f"no region-level split defined for {name!r}")
    return Split(early=early, rest=rest, receptive=receptive_field(early), where=where)


def tile_components(changed: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (ty0, ty1, tx0, tx1), end exclusive, of the 8-connected components of
    the changed tiles."""
    from scipy import ndimage

    if not changed.any():
        return []
    lab, n = ndimage.label(changed, structure=np.ones((3, 3), dtype=int))
    boxes = []
    for sl in ndimage.find_objects(lab):
        if sl is not None:
            boxes.append((sl[0].start, sl[0].stop, sl[1].start, sl[1].stop))
    return boxes


class RegionReuse:
    mechanism = "region"

    def __init__(self, adapter: TorchAdapter, split: Split, threshold: float, tile: int):
        self.adapter = adapter
        self.split = split
        self.threshold = float(threshold)
        self.tile = int(tile)
        S, H = split.stride, split.halo
        if self.tile % S:
            raise ValueError(f"tile {tile} must be a multiple of the early part's stride {S}")
        self.S, self.H = S, H
        self.reset()

    def reset(self) -> None:
        self.features = None     # cached early feature map (1, C, H/S, W/S)
        self.ref: np.ndarray | None = None   # (ny, nx, win, win, 3) pixels each tile's features come from
        self.valid: np.ndarray | None = None  # in-image values per tile window

    # -- tiles ----------------------------------------------------------------
    def _grid(self, u8: np.ndarray) -> tuple[int, int]:
        h, w = u8.shape[:2]
        if h % self.tile or w % self.tile:
            raise ValueError(f"input {w}x{h} is not a whole number of {self.tile}-pixel tiles")
        return h // self.tile, w // self.tile

    def windows(self, u8: np.ndarray) -> np.ndarray:
        """Each tile's receptive window (tile + halo each side), from the frame padded
        with zeros: (ny, nx, win, win, 3), contiguous."""
        H, t = self.H, self.tile
        pad = np.pad(u8, ((H, H), (H, H), (0, 0))) if H else u8
        win = t + 2 * H
        v = np.lib.stride_tricks.sliding_window_view(pad, (win, win, 3))[::t, ::t, 0]
        return np.ascontiguousarray(v)

    def _valid(self, shape: tuple[int, int]) -> np.ndarray:
        H, t = self.H, self.tile
        h, w = shape
        ny, nx = h // t, w // t
        ys = np.array([min(h, (i + 1) * t + H) - max(0, i * t - H) for i in range(ny)])
        xs = np.array([min(w, (j + 1) * t + H) - max(0, j * t - H) for j in range(nx)])
        return (ys[:, None] * xs[None, :] * 3).astype(np.float64)

    def tile_changes(self, win: np.ndarray) -> np.ndarray:
        """Mean absolute difference per tile window against its reference (0..255)."""
        ny, nx = win.shape[:2]
        try:
            import cv2

            d = cv2.absdiff(win.reshape(ny * nx, -1), self.ref.reshape(ny * nx, -1))
        except ImportError:  # pragma: no cover
            d = np.abs(win.astype(np.int16) - self.ref.astype(np.int16)).astype(np.uint8).reshape(ny * nx, -1)
        return d.sum(axis=1, dtype=np.int64).reshape(ny, nx) / self.valid

    # -- planning -----------------------------------------------------------------
    @staticmethod
    def sizes(n: int) -> list[int]:
        """Allowed extents (in tiles) of a recomputed box along an axis of ``n`` tiles:
        powers of two and the whole axis. Few distinct crop shapes keep the engine's
        per-shape set-up (oneDNN primitives, cuDNN plans) cached across frames."""
        out, k = [], 1
        while k < n:
            out.append(k)
            k *= 2
        return out + [n]

    def _snap(self, a0: int, a1: int, n: int) -> tuple[int, int]:
        size = next(k for k in self.sizes(n) if k >= a1 - a0)
        b0 = min(max(0, a0 - (size - (a1 - a0)) // 2), n - size)
        return b0, b0 + size

    def crop_of(self, box: tuple[int, int, int, int], h: int, w: int) -> tuple[int, int, int, int]:
        """Input rows/columns (cy0, cy1, cx0, cx1) the early part runs on for a box of tiles."""
        ty0, ty1, tx0, tx1 = box
        t, H = self.tile, self.H
        return max(0, ty0 * t - H), min(h, ty1 * t + H), max(0, tx0 * t - H), min(w, tx1 * t + H)

    def plan(self, changed: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Boxes of tiles to recompute: the 8-connected components of the changed tiles,
        each snapped to the allowed extents; or the snapped box around all of them when
        that needs fewer input pixels (one call instead of several)."""
        ny, nx = changed.shape
        comps = tile_components(changed)
        if not comps:
            return []
        h, w = ny * self.tile, nx * self.tile
        snapped = [self._snap(a, b, ny) + self._snap(c, d, nx) for a, b, c, d in comps]
        union = (self._snap(min(b[0] for b in comps), max(b[1] for b in comps), ny)
                 + self._snap(min(b[2] for b in comps), max(b[3] for b in comps), nx))

        def area(box):
            cy0, cy1, cx0, cx1 = self.crop_of(box, h, w)
            return (cy1 - cy0) * (cx1 - cx0)

        return [union] if area(union) <= sum(area(b) for b in snapped) else snapped

    def crop_shapes(self, h: int, w: int) -> list[tuple[int, int]]:
        """Every crop shape ``plan`` can produce on an h x w input."""
        t = self.tile
        ny, nx = h // t, w // t

        def lengths(n, size_of_axis):
            out = set()
            for k in self.sizes(n):
                for a in range(0, n - k + 1):
                    lo, hi = max(0, a * t - self.H), min(size_of_axis, (a + k) * t + self.H)
                    out.add(hi - lo)
            return sorted(out)

        return [(a, b) for a in lengths(ny, h) for b in lengths(nx, w)]

    def prewarm(self, u8: np.ndarray) -> int:
        """Run the early part once on every crop shape (untimed warm-up, as an engine plans
        its kernels ahead); returns the number of shapes."""
        import torch

        h, w = u8.shape[:2]
        shapes = self.crop_shapes(h, w)
        x = self.adapter.to_tensor(u8)
        with torch.inference_mode():
            for a, b in shapes:
                self.split.early(x[:, :, :a, :b])
        return len(shapes)

    # -- one frame --------------------------------------------------------------
    def step(self, u8: np.ndarray):
        import torch

        ny, nx = self._grid(u8)
        win = self.windows(u8)
        first = self.features is None
        if first:
            self.valid = self._valid(u8.shape[:2])
            changes = np.full((ny, nx), np.inf)
        else:
            changes = self.tile_changes(win)
        changed = changes > self.threshold
        boxes = self.plan(changed)
        recomputed = np.zeros((ny, nx), dtype=bool)
        S = self.S
        with torch.inference_mode():
            x = self.adapter.to_tensor(u8) if boxes else None
            h, w = u8.shape[:2]
            for box in boxes:
                ty0, ty1, tx0, tx1 = box
                y0, y1, x0, x1 = ty0 * self.tile, ty1 * self.tile, tx0 * self.tile, tx1 * self.tile
                cy0, cy1, cx0, cx1 = self.crop_of(box, h, w)
                f = self.split.early(x[:, :, cy0:cy1, cx0:cx1])
                fy0, fx0 = (y0 - cy0) // S, (x0 - cx0) // S
                part = f[:, :, fy0:fy0 + (y1 - y0) // S, fx0:fx0 + (x1 - x0) // S]
                if first:
                    self.features = torch.empty((1, f.shape[1], h // S, w // S), dtype=f.dtype, device=f.device)
                    first = False
                self.features[:, :, y0 // S:y1 // S, x0 // S:x1 // S] = part
                del f, part  # last use of the crop's features: released before the next crop runs
                recomputed[ty0:ty1, tx0:tx1] = True
            del x
            if self.ref is None:
                self.ref = win
            else:
                self.ref[recomputed] = win[recomputed]
            del win
            out = self.adapter.finish(self.split.rest(self.features))
        finite = changes[np.isfinite(changes)]
        info = StepInfo(bool(recomputed.any()), float(recomputed.mean()), float(changed.mean()),
                        float(finite.max()) if finite.size else float("inf"))
        return out, info

    def cache_bytes(self) -> int:
        n = 0
        if self.features is not None:
            n += self.features.element_size() * self.features.numel()
        if self.ref is not None:
            n += int(self.ref.nbytes) + int(self.valid.nbytes)
        return n


# --------------------------------------------------------------------------- memory
class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo2() -> Callable[[], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2

    def used() -> int:
        m = fn()
        return int(m.uordblks + m.hblkhd)

    return used


@dataclass
class MemoryProbe:
    """Transient peak memory of one frame's processing (see the module's docstring)."""

    kind: str                       # 'cuda' | 'cpu-malloc' | 'unavailable'
    method: str
    module: Any = None
    _used: Callable[[], int] | None = None
    _hooks: list = field(default_factory=list)
    _peak: int = 0

    @classmethod
    def for_adapter(cls, adapter) -> "MemoryProbe":
        if getattr(adapter, "engine", "") == "torch":
            if adapter.device.startswith("cuda"):
                return cls("cuda", "torch.cuda.max_memory_allocated during the frame minus allocated before it")
            used = _mallinfo2()
            if used is not None:
                p = cls("cpu-malloc", "glibc mallinfo2 (main arena + mmapped) sampled after every leaf module "
                                      "and at the frame's end, minus its value before the frame",
                        module=adapter.module, _used=used)
                return p
            return cls("unavailable", "no allocator statistics on this CPU build (no glibc mallinfo2)")
        return cls("unavailable", "LiteRT plans intermediate tensors in an arena allocated at compile time: "
                                  "no per-frame allocation to measure")

    def __enter__(self):
        if self.kind == "cpu-malloc" and self.module is not None:
            def hook(mod, inp, out):
                self._peak = max(self._peak, self._used())

            self._hooks = [m.register_forward_hook(hook) for m in self.module.modules() if not list(m.children())]
        return self

    def __exit__(self, *exc):
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def measure(self, fn: Callable[[], Any]) -> tuple[Any, float]:
        """Run ``fn`` once; return its result and the transient peak in bytes (NaN if unmeasurable)."""
        if self.kind == "cuda":
            import torch

            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            out = fn()
            torch.cuda.synchronize()
            return out, float(torch.cuda.max_memory_allocated() - base)
        if self.kind == "cpu-malloc":
            base = self._used()
            self._peak = base
            out = fn()
            self._peak = max(self._peak, self._used())
            return out, float(self._peak - base)
        return fn(), float("nan")
