"""User model files are opened before anything is built (issue 17): truncated, empty and
non-model files under data/user_models/ are refused in well under 10 s with one line naming
the file, and data/models is never left half-written."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from study import paths
from study.models import load_manifest
from study.models.check import check_user_model
from study.models.export import build_all, mediapipe_files
from study.schema import ParamError

SEG = "selfie_segmentation"


def _bad_files(folder: Path) -> dict[str, str]:
    """file name -> what the one-line refusal must say."""
    good = mediapipe_files([SEG])[SEG].read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "truncated.tflite").write_bytes(good[:4096])
    (folder / "halfway.tflite").write_bytes(good[: len(good) // 2])
    (folder / "empty.onnx").write_bytes(b"")
    (folder / "empty.tflite").write_bytes(b"")
    (folder / "notes.tflite").write_text("this is a text file, not a model\n")
    (folder / "garbage.onnx").write_bytes(b"\x08\x01garbage\xff\xfe" * 10)
    (folder / "text.onnx").write_text("ir_version: 7\n")
    return {"truncated.tflite": "truncated or corrupt", "halfway.tflite": "truncated or corrupt",
            "empty.onnx": "empty file", "empty.tflite": "empty file", "notes.tflite": "not a TFLite flatbuffer",
            "garbage.onnx": "ONNX", "text.onnx": "ONNX"}


@pytest.fixture
def user_root(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    monkeypatch.setattr(paths, "USER_MODELS", tmp_path / "data" / "user_models")
    return tmp_path


def test_bad_files_are_refused_with_one_line_naming_the_file(user_root):
    expected = _bad_files(user_root / "data" / "user_models")
    for name, what in expected.items():
        rel = f"data/user_models/{name}"
        t = time.perf_counter()
        with pytest.raises(ParamError) as e:
            check_user_model(rel)
        assert time.perf_counter() - t < 10
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"models.user: {rel}: ") and what in msg, msg


def test_good_files_are_read_with_their_inputs_and_outputs(user_root, tiny_model):
    folder = user_root / "data" / "user_models"
    folder.mkdir(parents=True)
    shutil.copy(mediapipe_files([SEG])[SEG], folder / "seg.tflite")
    shutil.copy(tiny_model.files["onnx"], folder / "tiny.onnx")
    info = check_user_model("data/user_models/seg.tflite")
    assert info["inputs"][0][1] == [1, 256, 256, 3] and info["outputs"]
    info = check_user_model("data/user_models/tiny.onnx")
    assert info["inputs"] == [("input", [1, 3, 16, 16])] and info["outputs"][0][0] == "output"


def test_paths_outside_user_models_are_refused(user_root):
    (user_root / "x.tflite").write_bytes(b"0000TFL3")
    with pytest.raises(ParamError, match="live under data/user_models"):
        check_user_model("x.tflite")
    with pytest.raises(ParamError, match="no such file"):
        check_user_model("data/user_models/none.onnx")


def _section(**kw):
    return {"zoo": [], "mediapipe": [SEG], "user": [], "formats": ["tflite"], "weights_seed": 0, **kw}


def test_build_swaps_a_complete_folder_in(user_root):
    out = user_root / "data" / "models"
    out.mkdir(parents=True)
    (out / "stale.tflite").write_bytes(b"old")
    build_all(_section(), out=out, log=lambda *a: None)
    m = load_manifest(out / "manifest.json")
    assert m[SEG].files["tflite"] == f"data/models/{SEG}.tflite" and (user_root / m[SEG].files["tflite"]).is_file()
    assert not (out / "stale.tflite").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["models"]   # no scratch folder left


def test_a_failed_build_leaves_the_previous_models_whole(user_root, monkeypatch):
    from study.models import export

    out = user_root / "data" / "models"
    build_all(_section(), out=out, log=lambda *a: None)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*a, **k):
        raise RuntimeError("conversion crashed")

    monkeypatch.setattr(export, "copy_tflite", boom)
    with pytest.raises(RuntimeError):
        build_all(_section(), out=out, log=lambda *a: None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["models"]


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """The study package and params.yaml in a folder of their own (ROOT is where study/ is),
    with a stand-in data/models that must come out untouched."""
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(paths.ROOT / "study", root / "study", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(paths.ROOT / "params.yaml", root / "params.yaml")
    models = root / "data" / "models"
    models.mkdir(parents=True)
    (models / "manifest.json").write_text(json.dumps({"weights_seed": 0, "models": []}))
    (models / "resnet50.tflite").write_bytes(b"zoo file that must stay" * 100)
    return root


@pytest.mark.parametrize("command", [["validate"], ["models"], ["run", "models"]])
def test_the_stage_commands_refuse_bad_user_files_and_keep_data_models(repo_copy, command):
    expected = _bad_files(repo_copy / "data" / "user_models")
    models = repo_copy / "data" / "models"
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    for name, what in list(expected.items())[:4] if command != ["validate"] else expected.items():
        params["models"]["user"] = [f"data/user_models/{name}"]
        (repo_copy / "params.yaml").write_text(yaml.safe_dump(params))
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "study", *command], cwd=repo_copy, capture_output=True, text=True,
                           timeout=120, env={**os.environ, "PYTHONPATH": str(repo_copy)})
        took = time.perf_counter() - t
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert f"data/user_models/{name}" in lines[0] and what in lines[0], lines[0]
        assert took < 10, f"{name}: refused after {took:.1f} s"
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before
    assert sorted(p.name for p in models.parent.iterdir()) == ["models", "user_models"]
