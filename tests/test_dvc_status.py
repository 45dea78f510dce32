"""What `dvc status` says after an edit, in a copy of the repository (git + DVC, every stage
locked as it is, outputs stood in by placeholders: nothing runs): a comment added to
study/config.py marks every stage that imports it as changed (all of them); a module only some
stages import marks exactly those; bytecode written by importing study modules marks nothing;
editing the full profile's harness marks no stage but validate (which reads the whole file)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import test_dvc_deps as D
from study import paths, stages

VENV_BIN = Path(sys.executable).parent
OUT_FILE = re.compile(r"\.(parquet|ipynb|jsonl|json|csv)$")


def _run(cmd, cwd, timeout=300):
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    dst = tmp_path_factory.mktemp("status") / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=paths.ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for f in filter(None, files):
        src = paths.ROOT / f
        if src.is_file() and not f.startswith(("data/reference/", "peers/")) and "__pycache__" not in f:
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    (dst / "peers").mkdir(exist_ok=True)
    (dst / "dvc.lock").unlink(missing_ok=True)
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
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "copy"]):
        subprocess.run(cmd, cwd=dst, check=True, capture_output=True)
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
