
import pytest
import torch

from study import paths
from study.models import ModelError, get_model, load_manifest
from study.models.export import build_all, mediapipe_files
from study.models.zoo import ZOO, build, count_macs, count_params, example_input

# reference sizes of the standard architectures (parameters, multiply-accumulates)
STANDARD = {"resnet50": (25.56e6, 4.09e9), "vgg16": (138.36e6, 15.47e9), "mobilenet_v2": (3.50e6, 0.30e9)}


@pytest.mark.parametrize("name", sorted(STANDARD))
def test_standard_shapes(name):
    m = build(name, 0)
    p, macs = STANDARD[name]
    assert abs(count_params(m) - p) / p < 0.01
    assert abs(count_macs(m, example_input(name)) - macs) / macs < 0.02


def test_every_zoo_model_runs_and_is_seeded():
    for name in ZOO:
        a, b = build(name, 0), build(name, 0)
        x = example_input(name)
        with torch.no_grad():
            ya, yb = a(x), b(x)
        assert torch.equal(ya, yb)
        assert torch.isfinite(ya).all()
    with torch.no_grad():
        assert not torch.equal(build("mobilenet_v2", 1)(x := example_input("mobilenet_v2")), build("mobilenet_v2", 0)(x))


def test_mediapipe_models_found_in_package():
    files = mediapipe_files(["face_detection_short_range", "selfie_segmentation"])
    assert all(p.is_file() and p.suffix == ".tflite" for p in files.values())


def test_build_all_exports_and_writes_manifest(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    section = {"zoo": ["transformer_enc"], "mediapipe": ["selfie_segmentation"], "user": [],
               "formats": ["tflite", "onnx"], "weights_seed": 0}
    build_all(section, out=tmp_path / "models", log=lambda *a: None)
    manifest = load_manifest(tmp_path / "models" / "manifest.json")
    assert set(manifest) == {"transformer_enc", "selfie_segmentation"}
    t = manifest["transformer_enc"]
    assert set(t.files) == {"tflite", "onnx"} and t.torch_zoo == "transformer_enc"
    assert (tmp_path / t.files["tflite"]).stat().st_size > 1e6 and len(t.sha256["tflite"]) == 64
    assert t.inputs[0]["shape"] == [1, 3, 224, 224]
    s = manifest["selfie_segmentation"]
    assert s.source == "mediapipe" and s.inputs[0]["shape"] == [1, 256, 256, 3] and not s.has("onnx")


def test_missing_manifest_and_unknown_model(tmp_path):
    with pytest.raises(ModelError, match="models"):
        load_manifest(tmp_path / "none.json")
    with pytest.raises(ModelError, match="unknown model"):
        get_model("nope", {})
