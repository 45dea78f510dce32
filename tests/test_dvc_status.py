"""What `dvc status` says after an edit, in a copy of the repository (git + DVC, every stage
locked as it is, outputs stood in by placeholders: nothing runs): a comment added to
study/config.py marks every stage that imports it as changed (all of them); a module only some
stages import marks exactly those; bytecode written by importing study modules marks nothing;
editing the full profile's harness marks no stage but validate (which reads the whole file)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

import test_dvc_deps as D
from conftest import copy_repo, run_in_venv
from study import stages

OUT_FILE = re.compile(r"\.(parquet|ipynb|jsonl|json|csv)$")


def _run(cmd, cwd):
    return run_in_venv(cmd, cwd, PYTHONDONTWRITEBYTECODE="")   # importing writes bytecode, as it does by default


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    dst = copy_repo(tmp_path_factory.mktemp("status") / "repo", skip=("peers/",))
    (dst / "peers").mkdir()
    device = yaml.safe_load((dst / "params.yaml").read_text())["device"]
    for st in yaml.safe_load((dst / "dvc.yaml").read_text())["stages"].values():
        for out in st.get("outs", []) + st.get("metrics", []):
            p = dst / (out if isinstance(out, str) else next(iter(out))).replace("${device}", device)
            if OUT_FILE.search(p.name):
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text("placeholder\n")
            else:
                p.mkdir(parents=True, exist_ok=True)
                (p / "placeholder").write_text("placeholder\n")
    for stage in stages.with_section():      # validate's outputs that other stages depend on
        (dst / "data" / "params" / f"{stage}.json").write_text("{}\n")
    (dst / "data" / "params" / "adb.json").write_text("{}\n")
    r = _run(["dvc", "commit", "-f", "-q"], dst)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _changed(dst) == set(), "every stage locked as it is"
    return dst


def _changed(repo: Path) -> set[str]:
    r = _run(["dvc", "status", "--json"], repo)
    assert r.returncode == 0, r.stderr
    import json

    return set(json.loads(r.stdout or "{}"))


def _edited(repo: Path, rel: str, edit):
    f = repo / rel
    original = f.read_text()
    f.write_text(edit(original))
    try:
        return _changed(repo)
    finally:
        f.write_text(original)


def test_a_comment_in_config_marks_every_stage_that_imports_it(repo):
    importers = {s for s in stages.names() if "study.config" in D.imported_modules(s)}
    assert importers == set(stages.names())
    assert _edited(repo, "study/config.py", lambda t: t + "\n# a comment\n") == importers


def test_a_module_some_stages_import_marks_exactly_those(repo):
    importers = {s for s in stages.names() if "study.video" in D.imported_modules(s)}
    assert importers and importers != set(stages.names())
    assert _edited(repo, "study/video.py", lambda t: t + "\n# a comment\n") == importers


def test_bytecode_marks_nothing(repo):
    r = _run([sys.executable, "-c", "import study.engines.litert, study.devices.local, study.models.zoo, study.cli"],
             repo)
    assert r.returncode == 0, r.stderr
    assert list((repo / "study" / "engines").glob("__pycache__/*.pyc"))
    assert _changed(repo) == set()


def test_the_full_profile_s_harness_reruns_no_quick_stage(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["profile"] == "quick"

    def edit(text):
        p = yaml.safe_load(text)
        p["harness"]["full"]["min_samples"] += 1
        return yaml.safe_dump(p, sort_keys=False)

    assert _edited(repo, "params.yaml", edit) == {"validate"}
