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

import functools
import json
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from study import paths
from study.models import ModelSpec
from study.models.zoo import ZOO
from study.schema import MEDIAPIPE_TASKS, STAGES, ParamError

PARAMS = STAGES["models"]   # the schema of the models section (study.schema)


def model_names(section: dict[str, Any]) -> list[str]:
    return list(section["zoo"]) + list(section["mediapipe"]) + [Path(p).stem for p in section["user"]]


def check_params(resolved: dict[str, Any], params: dict[str, Any]) -> None:
    names = model_names(resolved)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ParamError(f"models: names {dup} appear twice (a user file named like a zoo/mediapipe model?)")
    _ = mediapipe_files(resolved["mediapipe"])


def mediapipe_files(names: list[str]) -> dict[str, Path]:
    """Locate the trained models inside the installed mediapipe package."""
    return dict(_mediapipe_files(tuple(names)))


@functools.lru_cache(maxsize=32)
def _mediapipe_files(names: tuple[str, ...]) -> tuple[tuple[str, Path], ...]:
    if not names:
        return ()
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
    return tuple(found.items())


def _signature(tflite: Path) -> tuple[list[dict], list[dict]]:
    from study.engines.tflite_graph import io_signature

    ins, outs = io_signature(tflite)
    return ([{"shape": list(s), "dtype": str(d)} for s, d in ins], [{"shape": list(s), "dtype": str(d)} for s, d in outs])


_FINAL: dict[str, Path] = {}   # building folder -> the folder its files end up in (build_all's swap)


def _rel(p: Path) -> str:
    """Path of a built file as the manifest records it: in the final folder, relative to the root."""
    final = _FINAL.get(str(p.parent), p.parent)
    return str((final.resolve() / p.name).relative_to(paths.ROOT.resolve()))


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
        ins, outs = _signature(out / f"{name}.tflite")
    return ModelSpec(name=name, source="zoo", task=entry.task, files=files, torch_zoo=name, seed=seed, inputs=ins,
                     outputs=outs, params=count_params(model), macs=count_macs(model, x),
                     sha256={k: paths.file_sha256(out / f"{name}.{k}") for k in files}, paper_name=entry.paper_name,
                     notes="; ".join([entry.notes] + notes).strip("; "))


def _onnx_signature(info: dict[str, list]) -> tuple[list[dict], list[dict]]:
    return ([{"shape": list(s), "dtype": "?", "name": n} for n, s in info["inputs"]],
            [{"shape": list(s), "dtype": "?", "name": n} for n, s in info["outputs"]])


def copy_tflite(name: str, src: Path, out: Path, source: str, task: str) -> ModelSpec:
    dst = out / src.name
    shutil.copyfile(src, dst)
    files = {dst.suffix.lstrip("."): _rel(dst)}
    if dst.suffix == ".tflite":
        ins, outs = _signature(dst)
    else:
        from study.models.check import check_user_model

        ins, outs = _onnx_signature(check_user_model(str(src.resolve().relative_to(paths.ROOT.resolve()))))
    return ModelSpec(name=name, source=source, task=task, files=files, inputs=ins, outputs=outs,
                     sha256={k: paths.file_sha256(dst) for k in files},
                     paper_name=name,
                     notes=(f"copied from the mediapipe wheel: {'/'.join(src.parts[-4:])}" if source == "mediapipe"
                            else f"user file {src.name}"))


def build_all(section: dict[str, Any], out: Path = paths.MODELS, log=print) -> list[ModelSpec]:
    """Every model file and the manifest, built in a new folder beside ``out`` that then
    replaces ``out``: a failed or killed build leaves the previous ``out`` whole."""
    from study.swap import scratch_pair, swap_in

    new, old = scratch_pair(out)
    _FINAL[str(new)] = out
    try:
        specs = _build_into(section, new, log)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    finally:
        _FINAL.pop(str(new), None)
    swap_in(new, out, old)
    return specs


def _build_into(section: dict[str, Any], out: Path, log) -> list[ModelSpec]:
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


def main(section: dict[str, Any]) -> int:
    """The models stage on its resolved parameters (``python -m study models`` resolves them)."""
    try:
        build_all(section)
    except Exception:
        traceback.print_exc()
        return 1
    return 0
