"""The ``models`` stage: every model file the study runs, and their manifest.

* zoo models: built in ``study.models.zoo`` from the seed, exported to ``.tflite``
  (litert-torch) and ``.onnx`` (the TorchScript-based exporter, opset 17);
* trained mobile models: the ``.tflite`` files inside the ``mediapipe==0.10.14``
  wheel, copied out of the installed package (nothing is downloaded at run time);
* user models: ``.tflite`` / ``.onnx`` files a user lists under ``models.user``.

A model that fails to convert is recorded in the manifest with the error and the
others go on.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from study import paths
from study.config import Field, ParamError
from study.models import ModelSpec
from study.models.zoo import ZOO

MEDIAPIPE_TASKS = {
    "face_detection_short_range": "face_detection",
    "face_detection_full_range_sparse": "face_detection",
    "selfie_segmentation": "segmentation",
    "selfie_segmentation_landscape": "segmentation",
    "face_landmark": "landmarks",
    "face_landmark_with_attention": "landmarks",
    "hand_landmark_lite": "landmarks",
    "hand_landmark_full": "landmarks",
    "pose_detection": "detection",
    "pose_landmark_full": "landmarks",
    "palm_detection_lite": "detection",
    "palm_detection_full": "detection",
    "iris_landmark": "landmarks",
    "hand_recrop": "landmarks",
}


def _user_path_check(v) -> str | None:
    for p in v:
        q = paths.ROOT / p
        if not isinstance(p, str) or q.suffix not in (".tflite", ".onnx"):
            return f"{p!r}: a .tflite or .onnx path relative to the repository is expected"
        if not q.is_file():
            return f"{p}: no such file"
        try:
            q.resolve().relative_to(paths.USER_MODELS.resolve())
        except ValueError:
            return f"{p}: user models live under {paths.USER_MODELS.relative_to(paths.ROOT)}/ (a DVC dependency)"
    return None


PARAMS = {
    "zoo": Field(list, list(ZOO), choices=list(ZOO), help="zoo architectures to build and export"),
    "mediapipe": Field(list, ["face_detection_short_range", "selfie_segmentation"], choices=list(MEDIAPIPE_TASKS),
                       help="trained .tflite models copied from the mediapipe wheel"),
    "user": Field(list, [], check=_user_path_check, help="your own .tflite/.onnx files under data/user_models/"),
    "formats": Field(list, ["tflite", "onnx"], choices=["tflite", "onnx"]),
    "weights_seed": Field(int, 0, min=0, help="weights of the untrained zoo models are a function of this seed"),
}


def model_names(section: dict[str, Any]) -> list[str]:
    return list(section["zoo"]) + list(section["mediapipe"]) + [Path(p).stem for p in section["user"]]


def check_params(resolved: dict[str, Any], params: dict[str, Any]) -> None:
    names = model_names(resolved)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ParamError(f"models: names {dup} appear twice (a user file named like a zoo/mediapipe model?)")
    _ = mediapipe_files(resolved["mediapipe"])


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def mediapipe_files(names: list[str]) -> dict[str, Path]:
    """Locate the trained models inside the installed mediapipe package."""
    if not names:
        return {}
    try:
        import importlib.util

        spec = importlib.util.find_spec("mediapipe")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ParamError("models.mediapipe: the mediapipe package (==0.10.14) is not installed")
    root = Path(list(spec.submodule_search_locations)[0]) / "modules"
    found = {}
    for n in names:
        hits = sorted(root.glob(f"**/{n}.tflite"))
        if not hits:
            raise ParamError(f"models.mediapipe: {n}.tflite not found in {root}")
        found[n] = hits[0]
    return found


def _signature(tflite: Path) -> tuple[list[dict], list[dict]]:
    from study.engines.tflite_graph import io_signature

    ins, outs = io_signature(tflite)
    return ([{"shape": list(s), "dtype": str(d)} for s, d in ins], [{"shape": list(s), "dtype": str(d)} for s, d in outs])


def _rel(p: Path) -> str:
    return str(p.resolve().relative_to(paths.ROOT))


def export_zoo(name: str, out: Path, formats: list[str], seed: int, log=print) -> ModelSpec:
    import torch

    from study.models.zoo import build, count_macs, count_params, example_input

    entry = ZOO[name]
    model = build(name, seed)
    x = example_input(name, seed)
    files, notes = {}, []
    if "tflite" in formats:
        t = time.time()
        try:
            import litert_torch

            path = out / f"{name}.tflite"
            litert_torch.convert(model, (x,)).export(str(path))
            files["tflite"] = _rel(path)
            log(f"  {name}.tflite  {path.stat().st_size / 1e6:.1f} MB in {time.time() - t:.1f} s")
        except Exception as e:  # report and go on
            notes.append(f"tflite conversion failed: {type(e).__name__}: {e}")
            log(f"  {name}.tflite FAILED: {e}")
    if "onnx" in formats:
        t = time.time()
        try:
            path = out / f"{name}.onnx"
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                              input_names=["input"], output_names=["output"])
            files["onnx"] = _rel(path)
            log(f"  {name}.onnx    {path.stat().st_size / 1e6:.1f} MB in {time.time() - t:.1f} s")
        except Exception as e:
            notes.append(f"onnx export failed: {type(e).__name__}: {e}")
            log(f"  {name}.onnx FAILED: {e}")
    ins = [{"shape": list(entry.input_shape), "dtype": "float32"}]
    outs = []
    if "tflite" in files:
        ins, outs = _signature(paths.ROOT / files["tflite"])
    return ModelSpec(name=name, source="zoo", task=entry.task, files=files, torch_zoo=name, seed=seed, inputs=ins,
                     outputs=outs, params=count_params(model), macs=count_macs(model, x),
                     sha256={k: sha256(paths.ROOT / v) for k, v in files.items()}, paper_name=entry.paper_name,
                     notes="; ".join([entry.notes] + notes).strip("; "))


def copy_tflite(name: str, src: Path, out: Path, source: str, task: str) -> ModelSpec:
    dst = out / src.name
    shutil.copyfile(src, dst)
    files = {dst.suffix.lstrip("."): _rel(dst)}
    ins, outs = _signature(dst) if dst.suffix == ".tflite" else ([], [])
    return ModelSpec(name=name, source=source, task=task, files=files, inputs=ins, outputs=outs,
                     sha256={k: sha256(paths.ROOT / v) for k, v in files.items()},
                     paper_name=name,
                     notes=(f"copied from the mediapipe wheel: {'/'.join(src.parts[-4:])}" if source == "mediapipe"
                            else f"user file {src.name}"))


def build_all(section: dict[str, Any], out: Path = paths.MODELS, log=print) -> list[ModelSpec]:
    out.mkdir(parents=True, exist_ok=True)
    specs = []
    for name in section["zoo"]:
        log(f"zoo model {name}")
        specs.append(export_zoo(name, out, section["formats"], section["weights_seed"], log))
    for name, src in mediapipe_files(section["mediapipe"]).items():
        log(f"mediapipe model {name} <- {src}")
        specs.append(copy_tflite(name, src, out, "mediapipe", MEDIAPIPE_TASKS[name]))
    for p in section["user"]:
        src = paths.ROOT / p
        log(f"user model {src.stem} <- {p}")
        specs.append(copy_tflite(src.stem, src, out, "user", "user"))
    manifest = {"weights_seed": section["weights_seed"], "models": [s.to_json() for s in specs]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return specs


def main(argv: list[str] | None = None) -> int:
    from study.config import ParamError, resolve

    try:
        section = resolve("models")
    except ParamError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        build_all(section)
    except Exception:
        traceback.print_exc()
        return 1
    return 0
