"""Carrying models to a machine that cannot build them (a lent GPU box without the
converter and with a 64 MiB transfer limit).

``pack`` writes each model with its large weight buffers removed and, per removed
tensor, its dtype, shape and statistics (mean, standard deviation, range);
``unpack`` rebuilds runnable files there by drawing new weights from those statistics
with a seed. Only the *untrained* zoo models are stripped (their weights are random
anyway, and dense kernels' latency does not depend on weight values); trained models
(mediapipe, user files) travel whole. Every unpacked model's manifest entry says its
weights were regenerated, so no result is mistaken for one on the original weights.

  python -m study.models.portable pack  OUT_DIR   (here)
  python -m study.models.portable unpack IN_DIR   (there: writes data/models/)
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from study import paths
from study.engines.tflite_graph import TFLITE_DTYPES

MIN_BYTES = 1 << 16


def _stats(a: np.ndarray) -> dict[str, float]:
    f = a.astype(np.float64)
    return {"mean": float(f.mean()), "std": float(f.std()), "min": float(f.min()), "max": float(f.max())}


def _draw(rng: np.random.Generator, dtype, shape, s: dict[str, float]) -> np.ndarray:
    dt = np.dtype(dtype)
    n = int(np.prod(shape)) if len(shape) else 1
    if np.issubdtype(dt, np.floating):
        x = rng.normal(s["mean"], s["std"] or 1e-3, n)
        return np.clip(x, s["min"], s["max"]).astype(dt).reshape(shape)
    lo, hi = int(np.floor(s["min"])), int(np.ceil(s["max"]))
    return rng.integers(lo, hi + 1, n).astype(dt).reshape(shape)


# --------------------------------------------------------------------------- tflite
def strip_tflite(src: Path, dst: Path, min_bytes: int = MIN_BYTES) -> list[dict[str, Any]]:
    """Remove large constant buffers; record them by the tensors that use them (buffer
    indices are renumbered when a model is read back)."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    m = fu.read_model(str(src))
    users: dict[int, list[list[int]]] = {}
    for si, sg in enumerate(m.subgraphs):
        for ti, t in enumerate(sg.tensors):
            users.setdefault(int(t.buffer), []).append([si, ti])
    removed = []
    for bi, tensors in sorted(users.items()):
        b = m.buffers[bi]
        if b.data is None or len(b.data) < min_bytes:
            continue
        t = m.subgraphs[tensors[0][0]].tensors[tensors[0][1]]
        dtype = np.dtype(TFLITE_DTYPES.get(t.type, np.uint8))
        arr = np.frombuffer(bytes(b.data), dtype=dtype)
        removed.append({"tensors": tensors, "dtype": dtype.name, "count": int(arr.size), **_stats(arr)})
        b.data = None
    dst.write_bytes(bytes(fu.convert_object_to_bytearray(m)))
    return removed


def fill_tflite(src: Path, dst: Path, removed: list[dict[str, Any]], seed: int) -> None:
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils as fu

    m = fu.read_model(str(src))
    rng = np.random.default_rng(seed)
    for r in removed:
        arr = _draw(rng, r["dtype"], (r["count"],), r)
        buf = fb.BufferT()
        buf.data = np.frombuffer(arr.tobytes(), dtype=np.uint8)
        m.buffers.append(buf)
        for si, ti in r["tensors"]:
            m.subgraphs[si].tensors[ti].buffer = len(m.buffers) - 1
    dst.write_bytes(bytes(fu.convert_object_to_bytearray(m)))


# --------------------------------------------------------------------------- onnx
def strip_onnx(src: Path, dst: Path, min_bytes: int = MIN_BYTES) -> list[dict[str, Any]]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    removed = []
    for init in model.graph.initializer:
        if len(init.raw_data) < min_bytes:
            continue
        arr = numpy_helper.to_array(init)
        removed.append({"name": init.name, "dtype": arr.dtype.name, "shape": list(arr.shape), **_stats(arr)})
        init.raw_data = b""
    onnx.save(model, str(dst))
    return removed


def fill_onnx(src: Path, dst: Path, removed: list[dict[str, Any]], seed: int) -> None:
    import onnx

    model = onnx.load(str(src))
    rng = np.random.default_rng(seed)
    by_name = {r["name"]: r for r in removed}
    for init in model.graph.initializer:
        r = by_name.get(init.name)
        if r is not None:
            init.raw_data = _draw(rng, r["dtype"], tuple(r["shape"]), r).tobytes()
    onnx.save(model, str(dst))


# --------------------------------------------------------------------------- bundle
def pack(out: Path, manifest_path: Path = paths.MODEL_MANIFEST, models: list[str] | None = None,
         min_bytes: int = MIN_BYTES) -> dict[str, Any]:
    data = json.loads(manifest_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    bundle = {"models": [], "removed": {}}
    for m in data["models"]:
        if models is not None and m["name"] not in models:
            continue
        for fmt, rel in m["files"].items():
            src = paths.ROOT / rel
            dst = out / src.name
            if m["source"] == "zoo":
                removed = (strip_tflite if fmt == "tflite" else strip_onnx)(src, dst, min_bytes)
                bundle["removed"][src.name] = removed
            else:
                shutil.copyfile(src, dst)
        bundle["models"].append(m)
    bundle["manifest_extra"] = {k: v for k, v in data.items() if k != "models"}
    (out / "bundle.json").write_text(json.dumps(bundle))
    return bundle


def unpack(src: Path, out: Path = paths.MODELS, seed: int = 0) -> list[str]:
    bundle = json.loads((src / "bundle.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    models = []
    for k, m in enumerate(bundle["models"]):
        files = {}
        for fmt, rel in m["files"].items():
            name = Path(rel).name
            dst = out / name
            if name in bundle["removed"]:
                fill = fill_tflite if fmt == "tflite" else fill_onnx
                fill(src / name, dst, bundle["removed"][name], seed + k)
            else:
                shutil.copyfile(src / name, dst)
            files[fmt] = str(dst.resolve().relative_to(paths.ROOT))
        m = dict(m, files=files, sha256={f: paths.file_sha256(paths.ROOT / p) for f, p in files.items()})
        if m["source"] == "zoo":
            m["notes"] = (m.get("notes", "") + "; weights regenerated from per-tensor statistics "
                          f"(seed {seed + k}) after transfer: untrained weights, same graph").strip("; ")
        models.append(m)
    manifest = {**bundle.get("manifest_extra", {}), "models": models, "portable": True}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return [m["name"] for m in models]


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("pack", "unpack"):
        print(__doc__)
        return 2
    if argv[0] == "pack":
        b = pack(Path(argv[1]), models=argv[2:] or None)
        print(f"packed {len(b['models'])} models into {argv[1]}")
    else:
        names = unpack(Path(argv[1]))
        print(f"unpacked {len(names)} models into {paths.MODELS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
