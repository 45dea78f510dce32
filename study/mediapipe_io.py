"""Inputs and outputs of the trained MediaPipe models, as MediaPipe's own graphs define them.

Only numpy and OpenCV: this runs on machines without the ``mediapipe`` package.

Where every number comes from
-----------------------------
The graph configurations registered inside the ``mediapipe==0.10.14`` wheel (the one
the ``models`` stage extracts the ``.tflite`` files from), read out of
``mediapipe/python/_framework_bindings*.so`` with ``mediapipe.framework.calculator_pb2``
(``extract_graph_configs()`` below does it again; ``tests/test_frame_reuse.py`` checks
these constants against them where mediapipe is installed). They are the compiled forms
of ``mediapipe/modules/face_detection/face_detection_short_range.pbtxt``,
``face_detection.pbtxt`` and ``mediapipe/modules/selfie_segmentation/selfie_segmentation_cpu.pbtxt``
of the MediaPipe repository.

Face detection, short range (subgraph ``FaceDetectionShortRange`` -> ``FaceDetection``):

* ``ImageToTensorCalculator``: 128 x 128, ``keep_aspect_ratio: true`` (letterbox, centred),
  ``output_tensor_float_range {min: -1 max: 1}``, ``border_mode: BORDER_ZERO``;
* ``SsdAnchorsCalculator``: ``num_layers: 4``, ``strides: [8, 16, 16, 16]``,
  ``min_scale: 0.1484375``, ``max_scale: 0.75``, ``anchor_offset 0.5``,
  ``aspect_ratios: [1.0]``, ``interpolated_scale_aspect_ratio: 1.0``,
  ``fixed_anchor_size: true`` -> 2 anchors per cell on the 16 x 16 grid (stride 8) and
  6 per cell on the 8 x 8 grid (three stride-16 layers): 512 + 384 = 896 anchors;
* ``TensorsToDetectionsCalculator``: ``num_boxes: 896``, ``num_coords: 16``,
  ``box_coord_offset: 0``, ``keypoint_coord_offset: 4``, ``num_keypoints: 6``,
  ``num_values_per_keypoint: 2``, ``reverse_output_order: true`` (x, y, w, h),
  ``x_scale = y_scale = w_scale = h_scale = 128``, ``sigmoid_score: true``,
  ``score_clipping_thresh: 100``, ``min_score_thresh: 0.5``;
* ``NonMaxSuppressionCalculator``: ``min_suppression_threshold: 0.3``,
  ``overlap_type: INTERSECTION_OVER_UNION``, ``algorithm: WEIGHTED``;
* ``DetectionProjectionCalculator``: boxes back from the letterboxed tensor to the image.

Selfie segmentation (``SelfieSegmentationCpu``, general model): ``ImageToTensorCalculator``
256 x 256, ``keep_aspect_ratio: false`` (stretched), ``output_tensor_float_range
{min: 0 max: 1}``; ``TensorsToSegmentationCalculator`` with ``activation: NONE`` (the
model's output already is the person probability); the mask is thresholded at 0.5 here.

The model tensors (checked against the real model by the tests): face detector input
``[1, 128, 128, 3]`` float, outputs regressors ``[1, 896, 16]`` and scores ``[1, 896, 1]``;
selfie segmentation input ``[1, 256, 256, 3]``, output ``[1, 256, 256, 1]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------- face detection constants
FACE_INPUT = 128
FACE_ANCHORS = dict(num_layers=4, strides=(8, 16, 16, 16), min_scale=0.1484375, max_scale=0.75,
                    anchor_offset_x=0.5, anchor_offset_y=0.5, aspect_ratios=(1.0,),
                    interpolated_scale_aspect_ratio=1.0, fixed_anchor_size=True)
FACE_DECODE = dict(num_boxes=896, num_coords=16, box_coord_offset=0, keypoint_coord_offset=4, num_keypoints=6,
                   num_values_per_keypoint=2, reverse_output_order=True, x_scale=128.0, y_scale=128.0,
                   w_scale=128.0, h_scale=128.0, sigmoid_score=True, score_clipping_thresh=100.0,
                   min_score_thresh=0.5)
FACE_NMS = dict(min_suppression_threshold=0.3, overlap_type="INTERSECTION_OVER_UNION", algorithm="WEIGHTED")
FACE_INPUT_RANGE = (-1.0, 1.0)

SELFIE_INPUT = 256
SELFIE_INPUT_RANGE = (0.0, 1.0)
SELFIE_MASK_THRESHOLD = 0.5

SOURCE = ("graph configs registered in mediapipe==0.10.14 (_framework_bindings): FaceDetectionShortRange/"
          "FaceDetection (SsdAnchorsCalculator, TensorsToDetectionsCalculator, NonMaxSuppressionCalculator), "
          "SelfieSegmentationCpu (ImageToTensorCalculator, TensorsToSegmentationCalculator)")


# --------------------------------------------------------------------------- anchors
def _scale(min_scale: float, max_scale: float, idx: int, n: int) -> float:
    return (min_scale + max_scale) / 2 if n == 1 else min_scale + (max_scale - min_scale) * idx / (n - 1)


def ssd_anchors(input_w: int = FACE_INPUT, input_h: int = FACE_INPUT, *, num_layers: int, strides, min_scale: float,
                max_scale: float, anchor_offset_x: float = 0.5, anchor_offset_y: float = 0.5,
                aspect_ratios=(1.0,), interpolated_scale_aspect_ratio: float = 1.0,
                fixed_anchor_size: bool = True) -> np.ndarray:
    """Anchors ``[N, 4]`` (x_center, y_center, w, h), normalized, in the order of
    MediaPipe's ``SsdAnchorsCalculator::GenerateAnchors`` (layers of equal stride share
    one grid; per cell: the anchors of each of those layers in turn)."""
    strides = list(strides)
    out = []
    layer = 0
    while layer < num_layers:
        heights, widths, ratios, scales = [], [], [], []
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            scale = _scale(min_scale, max_scale, last, len(strides))
            for ar in aspect_ratios:
                ratios.append(ar)
                scales.append(scale)
            if interpolated_scale_aspect_ratio > 0:
                nxt = 1.0 if last == len(strides) - 1 else _scale(min_scale, max_scale, last + 1, len(strides))
                scales.append(math.sqrt(scale * nxt))
                ratios.append(interpolated_scale_aspect_ratio)
            last += 1
        for ar, sc in zip(ratios, scales):
            r = math.sqrt(ar)
            heights.append(sc / r)
            widths.append(sc * r)
        stride = strides[layer]
        fh, fw = math.ceil(input_h / stride), math.ceil(input_w / stride)
        for y in range(fh):
            for x in range(fw):
                for a in range(len(heights)):
                    cx, cy = (x + anchor_offset_x) / fw, (y + anchor_offset_y) / fh
                    w, h = (1.0, 1.0) if fixed_anchor_size else (widths[a], heights[a])
                    out.append((cx, cy, w, h))
        layer = last
    return np.asarray(out, dtype=np.float32)


def face_anchors() -> np.ndarray:
    return ssd_anchors(FACE_INPUT, FACE_INPUT, **FACE_ANCHORS)


# --------------------------------------------------------------------------- pre-processing
@dataclass(frozen=True)
class Letterbox:
    """Where the image sits inside the square tensor: scale and padding in tensor pixels."""

    size: int
    scale: float
    pad_x: float
    pad_y: float
    width: int
    height: int


def letterbox(frame: np.ndarray, size: int = FACE_INPUT) -> tuple[np.ndarray, Letterbox]:
    """``frame`` (H, W, 3) uint8 resized keeping its aspect ratio into a centred
    ``size`` x ``size`` uint8 image with a zero border (MediaPipe's keep_aspect_ratio,
    BORDER_ZERO), bilinear."""
    import cv2

    h, w = frame.shape[:2]
    s = min(size / w, size / h)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((size, size, 3), dtype=np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py:py + nh, px:px + nw] = resized
    return out, Letterbox(size=size, scale=s, pad_x=float(px), pad_y=float(py), width=w, height=h)


def stretch(frame: np.ndarray, size: int = SELFIE_INPUT) -> np.ndarray:
    """``frame`` resized to ``size`` x ``size`` ignoring the aspect ratio (bilinear)."""
    import cv2

    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_LINEAR)


def to_tensor(u8: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(H, W, 3) uint8 -> [1, H, W, 3] float32 in [lo, hi]."""
    x = u8.astype(np.float32) * ((hi - lo) / 255.0) + lo
    return x[None]


# --------------------------------------------------------------------------- face decoding
def decode_boxes(raw: np.ndarray, anchors: np.ndarray, opts: dict = FACE_DECODE) -> tuple[np.ndarray, np.ndarray]:
    """Raw regressors ``[N, num_coords]`` -> boxes ``[N, 4]`` (xmin, ymin, xmax, ymax) and
    keypoints ``[N, K, 2]`` (x, y), normalized to the tensor (TensorsToDetections::DecodeBoxes)."""
    raw = np.asarray(raw, dtype=np.float32).reshape(-1, opts["num_coords"])
    o = opts["box_coord_offset"]
    if opts["reverse_output_order"]:
        xc, yc, w, h = raw[:, o], raw[:, o + 1], raw[:, o + 2], raw[:, o + 3]
    else:
        yc, xc, h, w = raw[:, o], raw[:, o + 1], raw[:, o + 2], raw[:, o + 3]
    ax, ay, aw, ah = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
    xc = xc / opts["x_scale"] * aw + ax
    yc = yc / opts["y_scale"] * ah + ay
    w = w / opts["w_scale"] * aw
    h = h / opts["h_scale"] * ah
    boxes = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=1)
    k, v, ko = opts["num_keypoints"], opts["num_values_per_keypoint"], opts["keypoint_coord_offset"]
    kp = raw[:, ko:ko + k * v].reshape(-1, k, v)
    kx, ky = (kp[..., 0], kp[..., 1]) if opts["reverse_output_order"] else (kp[..., 1], kp[..., 0])
    kx = kx / opts["x_scale"] * aw[:, None] + ax[:, None]
    ky = ky / opts["y_scale"] * ah[:, None] + ay[:, None]
    return boxes, np.stack([kx, ky], axis=-1)


def scores_of(raw_scores: np.ndarray, opts: dict = FACE_DECODE) -> np.ndarray:
    s = np.asarray(raw_scores, dtype=np.float32).reshape(-1)
    if opts.get("score_clipping_thresh"):
        t = opts["score_clipping_thresh"]
        s = np.clip(s, -t, t)
    return (1.0 / (1.0 + np.exp(-s.astype(np.float64)))).astype(np.float32) if opts["sigmoid_score"] else s


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes ``[N, 4]`` x ``[M, 4]`` (xmin, ymin, xmax, ymax)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray | None = None,
                 threshold: float = FACE_NMS["min_suppression_threshold"]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """MediaPipe's ``WeightedNonMaxSuppression``: take the best remaining detection, every
    remaining one overlapping it by IoU > ``threshold`` (itself included) is merged into it
    by a score-weighted average of coordinates; the merged detection keeps the top score."""
    order = np.argsort(-scores, kind="stable")
    remained = list(order)
    out_b, out_s, out_k = [], [], []
    while remained:
        top = remained[0]
        ious = box_iou(boxes[[top]], boxes[remained])[0]
        cand = [i for i, v in zip(remained, ious) if v > threshold]
        rest = [i for i, v in zip(remained, ious) if not v > threshold]
        w = scores[cand].astype(np.float64)
        tot = w.sum()
        if len(cand) and tot > 0:
            out_b.append((boxes[cand] * w[:, None]).sum(0) / tot)
            if keypoints is not None:
                out_k.append((keypoints[cand] * w[:, None, None]).sum(0) / tot)
        else:
            out_b.append(boxes[top])
            if keypoints is not None:
                out_k.append(keypoints[top])
        out_s.append(scores[top])
        remained = rest
    b = np.asarray(out_b, dtype=np.float32).reshape(-1, 4)
    s = np.asarray(out_s, dtype=np.float32)
    k = None if keypoints is None else np.asarray(out_k, dtype=np.float32).reshape(-1, *keypoints.shape[1:])
    return b, s, k


@dataclass
class Detections:
    """Faces of one frame: boxes (xmin, ymin, xmax, ymax) normalized to the image, scores."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.boxes.nbytes + self.scores.nbytes + (0 if self.keypoints is None else self.keypoints.nbytes))


def project(boxes: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Tensor-normalized boxes -> image-normalized boxes (DetectionProjectionCalculator)."""
    b = np.asarray(boxes, dtype=np.float32).copy()
    b[:, [0, 2]] = (b[:, [0, 2]] * lb.size - lb.pad_x) / lb.scale / lb.width
    b[:, [1, 3]] = (b[:, [1, 3]] * lb.size - lb.pad_y) / lb.scale / lb.height
    return b


def decode_faces(regressors: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, lb: Letterbox | None = None,
                 decode: dict = FACE_DECODE, nms: dict = FACE_NMS) -> Detections:
    """The face detector's outputs -> detections after score threshold and weighted NMS,
    projected to the image when ``lb`` is given."""
    s = scores_of(raw_scores, decode)
    keep = s >= decode["min_score_thresh"]
    if not keep.any():
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, decode["num_keypoints"], 2), np.float32))
    boxes, kps = decode_boxes(np.asarray(regressors).reshape(-1, decode["num_coords"])[keep], anchors[keep], decode)
    b, sc, k = weighted_nms(boxes, s[keep], kps, nms["min_suppression_threshold"])
    if lb is not None:
        b = project(b, lb)
        if k is not None:
            k = k.copy()
            k[..., 0] = (k[..., 0] * lb.size - lb.pad_x) / lb.scale / lb.width
            k[..., 1] = (k[..., 1] * lb.size - lb.pad_y) / lb.scale / lb.height
    return Detections(b, sc, k)


# --------------------------------------------------------------------------- provenance
def extract_graph_configs() -> dict[str, str]:
    """The text form of the registered graphs this module's constants come from, read out
    of the installed mediapipe wheel (needs ``mediapipe``; for the tests and the record)."""
    import glob
    import os

    import mediapipe
    from google.protobuf import text_format
    from mediapipe.calculators.tensor import (image_to_tensor_calculator_pb2, inference_calculator_pb2,  # noqa: F401
                                              tensors_to_detections_calculator_pb2)
    from mediapipe.calculators.tflite import ssd_anchors_calculator_pb2  # noqa: F401
    from mediapipe.calculators.util import non_max_suppression_calculator_pb2  # noqa: F401
    from mediapipe.framework import calculator_pb2
    from mediapipe.modules.face_detection import face_detection_pb2  # noqa: F401

    so = glob.glob(os.path.join(os.path.dirname(mediapipe.__file__), "python", "_framework_bindings*.so"))[0]
    blob = open(so, "rb").read()
    out: dict[str, str] = {}

    def parse_ending_before(pos: int, want_type: str, need: str) -> str | None:
        end = blob.find(b"\x00\x00\x00\x00", pos)
        for s in range(max(0, pos - 8000), pos):
            if blob[s] != 0x0A:
                continue
            g = calculator_pb2.CalculatorGraphConfig()
            try:
                g.ParseFromString(blob[s:end])
            except Exception:  # noqa: BLE001 - not a message boundary
                continue
            if g.type == want_type and need in text_format.MessageToString(g):
                return text_format.MessageToString(g)
        return None

    i = blob.find(b"mediapipe/modules/face_detection/face_detection_short_range.tflite")
    if i >= 0:
        out["FaceDetectionShortRange"] = parse_ending_before(i, "FaceDetectionShortRange", "tensor_width") or ""
        j = blob.find(b"\x12\x14SsdAnchorsCalculator", i)
        if j >= 0:
            out["FaceDetection"] = parse_ending_before(j, "FaceDetection", "SsdAnchorsCalculator") or ""
    return out
