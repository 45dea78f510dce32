"""What `dvc repro` does with a refused parameter (issue 17), in a copy of the repository:
the validate stage stops the pipeline with one line naming the key, `dvc repro` exits 255
(DVC's status for a failed stage; the command itself exited 2), data/params keeps the last
valid parameters, `dvc status` points at the changed parameter and not at every stage, and a
stand-in data/models is untouched. Only the validate stage runs (seconds, not minutes)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from conftest import copy_repo, run_in_venv

_run = run_in_venv


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """Tracked and not-ignored files as a fresh git + DVC repository, validate reproduced once,
    and a stand-in data/models that no refusal may touch."""
    dst = copy_repo(tmp_path_factory.mktemp("validate") / "repo", skip=("data/reference/", "peers/"))
    r = _run(["dvc", "repro", "validate"], dst)
    assert r.returncode == 0, r.stdout + r.stderr
    models = dst / "data" / "models"
    models.mkdir(parents=True)
    (models / "manifest.json").write_text('{"weights_seed": 0, "models": []}\n')
    (models / "resnet50.tflite").write_bytes(b"a zoo file that must stay" * 1000)
    return dst


def _status(repo: Path) -> str:
    r = _run(["dvc", "status"], repo)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("edit,key", [
    (lambda p: p["rigor"].__setitem__("sustained_seconds", float("nan")), "rigor.sustained_seconds"),
    (lambda p: p["harness"]["quick"].__setitem__("min_samples", "abc"), "harness.quick.min_samples"),
    (lambda p: p.__setitem__("seed", -1), "seed"),
    (lambda p: p.__setitem__("surprise", {"a": 1}), "surprise"),
    (lambda p: p["models"].__setitem__("formats", []), "models.formats"),
    (lambda p: p["models"].__setitem__("user", ["data/user_models/broken.tflite"]), "models.user"),
])
def test_a_refused_parameter_stops_dvc_repro_and_touches_nothing(repo, edit, key):
    original = (repo / "params.yaml").read_text()
    status_before = _status(repo)
    params_before = _snapshot(repo / "data" / "params")
    models_before = _snapshot(repo / "data" / "models")
    (repo / "data" / "user_models" / "broken.tflite").write_text("not a model\n")
    params = yaml.safe_load(original)
    edit(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        r = _run(["dvc", "repro"], repo)
        out = r.stdout + r.stderr
        assert r.returncode == 255, out
        errors = [line for line in out.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and errors[0].startswith(f"error: {key}"), out
        assert "Traceback" not in out and "exited with 2" in out, out
        assert "Running stage 'models'" not in out
        assert _snapshot(repo / "data" / "params") == params_before
        assert _snapshot(repo / "data" / "models") == models_before
        # dvc status: what it said before, plus the changed parameter section; nothing about
        # data/params (a refusal used to delete it, and every stage then looked changed)
        status = _status(repo)
        section = key.split(".")[0]
        new_lines = {line.strip() for line in status.splitlines()} - {line.strip() for line in status_before.splitlines()}
        allowed = {"validate:", "changed deps:", "params.yaml:", f"modified:           {section}",
                   f"new:                {section}", "models:"}
        assert new_lines <= allowed and ({f"modified:           {section}", f"new:                {section}"}
                                          & new_lines), (new_lines, status)
    finally:
        (repo / "params.yaml").write_text(original)
        (repo / "data" / "user_models" / "broken.tflite").unlink()


def test_a_device_that_is_a_path_is_stopped_before_any_stage(repo):
    original = (repo / "params.yaml").read_text()
    params_before = _snapshot(repo / "data" / "params")
    (repo / "params.yaml").write_text(original.replace("device: local", "device: ../../etc/passwd", 1))
    try:
        r = _run(["dvc", "repro"], repo)
        assert r.returncode == 255 and "Running stage" not in r.stdout + r.stderr
        r = _run([sys.executable, "-m", "study", "validate"], repo)
        assert r.returncode == 2 and r.stderr.startswith("error: device: '../../etc/passwd' is not a valid device")
        assert _snapshot(repo / "data" / "params") == params_before
    finally:
        (repo / "params.yaml").write_text(original)
