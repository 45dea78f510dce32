"""The co-running app: a foreground process with a fixed frame budget that plays a real
clip, for finding 3 (C6: dedicating processors to inference degrades co-running apps).

Per frame it decodes the next frame of a clip (``study.video``, looping at its end) and
draws it into a canvas (the window a player would show):

* ``render='cpu'``: resize to the canvas (OpenCV, bilinear), alpha-blend an overlay,
  draw a small status box with the frame number;
* ``render='gpu'`` (PyTorch CUDA): copy the decoded frame into pinned memory, upload it,
  resize (bilinear) and blend on the GPU, convert to 8 bits, synchronise.

Frames are released on a fixed grid (period ``1/fps`` from the first measured frame).
Frame ``i`` may start at its release time ``t0 + i/fps`` and must be finished by its
deadline ``t0 + (i+1)/fps``. The app sleeps until a frame's release when it is early;
when it is so late that a frame's deadline has already passed before it could start,
that frame is *skipped* (decoded without being drawn, as a player drops a frame to
catch up). A frame *misses* its deadline when it was skipped or finished late; the
missed share is what the finding reports as dropped frames.

Run as a process: ``python -m study.corunning_app --fps 30 --seconds 4 --clip bikes
--render cpu --log data/local/raw/contention_app.jsonl --tag '{"run": 3}'``. It writes
``READY`` on stdout once the clip is open and the canvas has drawn one frame, then plays
``--warmup`` seconds unrecorded, then ``--seconds`` recorded: every frame is appended to
the raw log as it is taken (``type='frame'``), then one ``type='app_done'`` record.
Like a competitor it dies with its parent (``study.competitors.die_with_parent``).
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

RENDERS = ("cpu", "gpu")
DEFAULT_CANVAS = (1280, 720)


# --------------------------------------------------------------------------- the frame loop
def frame_loop(n_frames: int, period_s: float, work: Callable[[int, bool], None],
               clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep,
               on_frame: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Play ``n_frames`` frames on a fixed grid of ``period_s``. ``work(i, skip)`` does frame
    ``i`` (``skip=True``: decode only). Returns one record per frame (times in ms from the
    first release)."""
    out = []
    t0 = clock()
    for i in range(n_frames):
        release = t0 + i * period_s
        deadline = release + period_s
        now = clock()
        if now < release:
            sleep(release - now)
            now = clock()
        skipped = now >= deadline
        start = now
        work(i, skipped)
        end = clock()
        rec = {"frame": i, "release_ms": (release - t0) * 1e3, "start_ms": (start - t0) * 1e3,
               "end_ms": (end - t0) * 1e3, "frame_ms": (end - start) * 1e3,
               "lateness_ms": (end - deadline) * 1e3, "skipped": bool(skipped),
               "missed": bool(skipped or end > deadline)}
        out.append(rec)
        if on_frame is not None:
            on_frame(rec)
    return out


# --------------------------------------------------------------------------- the clip
class ClipSource:
    """Frames of a real clip (OpenCV's FFmpeg decoder), looping at the end.

    Reopening a file costs tens of milliseconds, more than a frame's budget: like a
    player that loops, the next pass is opened (and its first frame decoded) by a helper
    thread right after each pass starts, and swapped in at the end of the pass."""

    def __init__(self, clip: str):
        import threading

        import cv2

        from study.video import ClipError, clip_path

        self.cv2 = cv2
        self.threading = threading
        self.path = str(clip_path(clip))
        self.cap = cv2.VideoCapture(self.path)
        if not self.cap.isOpened():
            raise ClipError(f"clip {clip}: OpenCV could not open {self.path}")
        self.first: np.ndarray | None = None   # a pre-decoded frame to hand out next
        self.loops = 0
        self._spare = None
        self._prepare()

    def _prepare(self) -> None:
        box: dict[str, Any] = {}

        def job():
            cap = self.cv2.VideoCapture(self.path)
            ok, f = cap.read()
            box["cap"], box["frame"] = cap, (f if ok else None)

        t = self.threading.Thread(target=job, name="clip-prefetch", daemon=True)
        t.start()
        self._spare = (t, box)

    def _next_pass(self) -> None:
        t, box = self._spare
        t.join()
        if box.get("frame") is None:
            raise RuntimeError(f"{self.path}: no frame decoded when looping")
        self.cap.release()
        self.cap, self.first = box["cap"], box["frame"]
        self.loops += 1
        self._prepare()

    def read(self) -> np.ndarray:
        if self.first is not None:
            f, self.first = self.first, None
            return f
        ok, f = self.cap.read()
        if not ok:
            self._next_pass()
            return self.read()
        return f

    def skip(self) -> None:
        """Decode the next frame without converting it (a dropped frame)."""
        if self.first is not None:
            self.first = None
            return
        if not self.cap.grab():
            self._next_pass()
            self.first = None

    def close(self) -> None:
        t, box = self._spare
        t.join()
        if "cap" in box:
            box["cap"].release()
        self.cap.release()


# --------------------------------------------------------------------------- canvases
class CpuCanvas:
    """Resize + blend + status box with OpenCV into a (H, W, 3) uint8 canvas."""

    render = "cpu"

    def __init__(self, size: tuple[int, int] = DEFAULT_CANVAS, seed: int = 0):
        import cv2

        self.cv2 = cv2
        self.w, self.h = size
        rng = np.random.default_rng(seed)
        self.overlay = rng.integers(0, 256, (self.h, self.w, 3), dtype=np.uint8)
        self.scaled = np.zeros((self.h, self.w, 3), np.uint8)
        self.canvas = np.zeros((self.h, self.w, 3), np.uint8)

    def draw(self, frame: np.ndarray, i: int) -> None:
        cv2 = self.cv2
        cv2.resize(frame, (self.w, self.h), dst=self.scaled, interpolation=cv2.INTER_LINEAR)
        cv2.addWeighted(self.scaled, 0.8, self.overlay, 0.2, 0.0, dst=self.canvas)
        cv2.rectangle(self.canvas, (16, 16), (260, 58), (0, 0, 0), -1)
        cv2.putText(self.canvas, f"frame {i}", (26, 47), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)

    def checksum(self) -> int:
        return int(self.canvas[::37, ::41].sum())


class GpuCanvas:
    """Upload + resize + blend with PyTorch on CUDA, synchronised at the end of each frame."""

    render = "gpu"

    def __init__(self, size: tuple[int, int] = DEFAULT_CANVAS, seed: int = 0):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("render='gpu' needs PyTorch CUDA; torch.cuda.is_available() is False")
        self.torch = torch
        self.F = torch.nn.functional
        self.dev = torch.device("cuda")
        self.w, self.h = size
        g = torch.Generator(device=self.dev).manual_seed(seed)
        self.overlay = torch.rand((1, 3, self.h, self.w), device=self.dev, generator=g)
        self.pinned = None
        self.canvas = torch.zeros((1, 3, self.h, self.w), dtype=torch.uint8, device=self.dev)

    def draw(self, frame: np.ndarray, i: int) -> None:
        torch = self.torch
        if self.pinned is None or tuple(self.pinned.shape) != frame.shape:
            self.pinned = torch.empty(frame.shape, dtype=torch.uint8).pin_memory()
        self.pinned.numpy()[...] = frame
        x = self.pinned.to(self.dev, non_blocking=True).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        y = self.F.interpolate(x, size=(self.h, self.w), mode="bilinear", align_corners=False)
        y.mul_(0.8).add_(self.overlay, alpha=0.2)
        y[..., 16:58, 16:260] = 0.0  # the status box
        self.canvas.copy_(y.mul_(255.0).clamp_(0, 255).to(torch.uint8))
        torch.cuda.synchronize()

    def checksum(self) -> int:
        return int(self.canvas[..., ::37, ::41].sum().item())


def make_canvas(render: str, size: tuple[int, int] = DEFAULT_CANVAS, seed: int = 0):
    if render == "cpu":
        return CpuCanvas(size, seed)
    if render == "gpu":
        return GpuCanvas(size, seed)
    raise ValueError(f"unknown render {render!r}; known: {list(RENDERS)}")


def render_reason(render: str, device=None) -> str | None:
    """``None`` if the app can draw with ``render`` on this host, else why not."""
    if render == "cpu":
        return None
    if render == "gpu":
        if device is not None:
            why = device.processor("gpu").backend_reason("cuda")
        else:
            from study.devices.local import torch_cuda_status

            why = torch_cuda_status()[0]
        return None if why is None else f"GPU drawing needs PyTorch CUDA: {why}"
    return f"unknown render {render!r}"


# --------------------------------------------------------------------------- the app
def play(fps: float, seconds: float, clip: str, render: str, canvas_size: tuple[int, int] = DEFAULT_CANVAS,
         warmup_s: float = 0.5, on_frame: Callable[[dict[str, Any]], None] | None = None,
         ready: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Open the clip and the canvas, call ``ready()``, play ``warmup_s`` unrecorded, then
    ``seconds`` recorded; returns the recorded frames."""
    src = ClipSource(clip)
    canvas = make_canvas(render, canvas_size)
    canvas.draw(src.read(), -1)  # first frame: lazy initialisations out of the way

    def work(i: int, skip: bool) -> None:
        if skip:
            src.skip()
        else:
            canvas.draw(src.read(), i)

    if ready is not None:
        ready()
    period = 1.0 / fps
    frame_loop(int(round(warmup_s * fps)), period, work)
    frames = frame_loop(int(round(seconds * fps)), period, work, on_frame=on_frame)
    src.close()
    return frames


class _Appender:
    """``study.measure.RawLog``'s write side (one JSON object a line, flushed as written),
    without importing pandas into the app: its start-up stays short."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.fh = open(path, "a", buffering=1)

    def append(self, rec: dict[str, Any]) -> None:
        self.fh.write(json.dumps(rec, default=str) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    from study.competitors import die_with_parent

    p = argparse.ArgumentParser(prog="python -m study.corunning_app", description=__doc__.split("\n\n")[0])
    p.add_argument("--fps", type=float, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--clip", default="bikes")
    p.add_argument("--render", choices=RENDERS, default="cpu")
    p.add_argument("--canvas", default=f"{DEFAULT_CANVAS[0]}x{DEFAULT_CANVAS[1]}")
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--log", default="", help="raw log (JSON lines) to append each frame to")
    p.add_argument("--tag", default="{}", help="JSON object added to every record")
    p.add_argument("--parent", type=int, default=None)
    p.add_argument("--cores", default="")
    a = p.parse_args(argv)
    die_with_parent(a.parent)
    if a.cores:
        os.sched_setaffinity(0, {int(c) for c in a.cores.split(",")})
    import cv2

    cv2.setNumThreads(1)  # drawing on one thread; the decoder keeps FFmpeg's own threads
    tag = json.loads(a.tag)
    w, h = (int(v) for v in a.canvas.lower().split("x"))
    log = _Appender(a.log) if a.log else None
    info = {"fps": a.fps, "render": a.render, "clip": a.clip, "canvas": f"{w}x{h}", "app_pid": os.getpid(),
            "app_cores": sorted(os.sched_getaffinity(0))}

    def on_frame(rec):
        if log is not None:
            log.append({"type": "frame", **tag, **info, **rec})

    def ready():
        sys.stdout.write(f"READY {os.getpid()}\n")
        sys.stdout.flush()

    t_start = time.time()
    frames = play(a.fps, a.seconds, a.clip, a.render, (w, h), a.warmup, on_frame, ready)
    missed = float(np.mean([f["missed"] for f in frames])) if frames else float("nan")
    if log is not None:
        log.append({"type": "app_done", **tag, **info, "frames": len(frames), "missed_share": missed,
                    "t_start": t_start, "t_end": time.time()})
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
