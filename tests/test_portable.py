import json

import numpy as np

from study import paths
from study.engines import get_engine
from study.models import ModelSpec, load_manifest
from study.models import portable


def test_pack_unpack_round_trip(tmp_path, monkeypatch, tiny_model):
    # a manifest of one zoo model (stripped) and one trained model (carried whole)
    root = tmp_path / "repo"
    (root / "data/models").mkdir(parents=True)
    monkeypatch.setattr(paths, "ROOT", root)
    import shutil
    for fmt in ("tflite", "onnx"):
        shutil.copyfile(tiny_model.path(fmt), root / f"data/models/tiny.{fmt}")
    shutil.copyfile(tiny_model.path("tflite"), root / "data/models/trained.tflite")
    manifest = {"models": [
        ModelSpec(name="tiny", source="zoo", task="classification",
                  files={"tflite": "data/models/tiny.tflite", "onnx": "data/models/tiny.onnx"}).to_json(),
        ModelSpec(name="trained", source="mediapipe", task="x", files={"tflite": "data/models/trained.tflite"}).to_json()]}
    (root / "data/models/manifest.json").write_text(json.dumps(manifest))
    bundle = portable.pack(tmp_path / "bundle", root / "data/models/manifest.json", min_bytes=256)
    assert bundle["removed"]["tiny.tflite"] and bundle["removed"]["tiny.onnx"]
    assert (tmp_path / "bundle/tiny.tflite").stat().st_size < (root / "data/models/tiny.tflite").stat().st_size
    assert (tmp_path / "bundle/trained.tflite").read_bytes() == (root / "data/models/trained.tflite").read_bytes()
    out = root / "data/unpacked"
    portable.unpack(tmp_path / "bundle", out, seed=1)
    m = load_manifest(out / "manifest.json")
    assert "regenerated" in m["tiny"].notes and "regenerated" not in m["trained"].notes
    for eng in ("litert", "onnxruntime"):
        y = get_engine(eng).open(m["tiny"], "cpu", 1).outputs()[0]
        assert y.shape == (1, 4) and np.isfinite(y).all()
    # same graph as before: same operator count
    from study.engines.tflite_graph import graph_ops
    assert len(graph_ops(m["tiny"].path("tflite"))) == len(graph_ops(root / "data/models/tiny.tflite"))
