"""Peer reproduction through a DVC remote (docs/peers.md), with a local directory as the
remote, in temporary git + DVC projects:

* a peer's data (``peers/<name>/<device>/``, ``dvc add``) is pushed, then restored
  identical by ``dvc pull`` after the cache and the data are removed, and in a fresh
  clone; the paper's device discovery then finds the peer's device;
* pipeline outputs (``data/<device>/...`` of a stage) are pushed and pulled back identical.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from study import explore

import paper_synthetic as S  # noqa: E402

VENV_BIN = Path(sys.executable).parent
DVC = shutil.which("dvc", path=str(VENV_BIN)) or shutil.which("dvc")
pytestmark = pytest.mark.skipif(DVC is None or shutil.which("git") is None, reason="needs dvc and git")


def run(cmd, cwd):
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n"
                             f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".gitignore"}


def new_project(path: Path) -> Path:
    path.mkdir(parents=True)
    run(["git", "init", "-q"], path)
    run([DVC, "init", "-q"], path)
    run(["git", "commit", "-q", "-m", "dvc init"], path)
    return path


def test_peer_data_push_and_pull_through_a_local_remote(tmp_path):
    repo = new_project(tmp_path / "peer")
    built = S.make_tree(tmp_path / "built")
    shutil.copytree(built["peers"] / "alice", repo / "peers" / "alice")
    before = digest(repo / "peers" / "alice")
    assert len(before) > 5

    remote = tmp_path / "remote"
    run([DVC, "remote", "add", "-d", "peers", str(remote)], repo)       # default: a local directory
    run([DVC, "add", "-q", "peers/alice"], repo)
    run(["git", "add", "peers/alice.dvc", "peers/.gitignore", ".dvc/config"], repo)
    run(["git", "commit", "-q", "-m", "alice's phone"], repo)
    run([DVC, "push", "-q"], repo)
    assert any(p.is_file() for p in remote.rglob("*")), "nothing in the remote"

    # the data and the cache gone, `dvc pull` brings them back identical
    shutil.rmtree(repo / "peers" / "alice")
    shutil.rmtree(repo / ".dvc" / "cache")
    run([DVC, "pull", "-q"], repo)
    assert digest(repo / "peers" / "alice") == before

    # what the study's maintainer does: a clone of the peer's commit, then `dvc pull`
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "peers" / "alice").exists()
    run([DVC, "pull", "-q"], clone)
    assert digest(clone / "peers" / "alice") == before
    found = explore.device_folders(include_local=False, include_reference=False, peers_root=clone / "peers")
    assert [(d.source, d.slug, d.folder) for d in found] == [("peer:alice", S.PHONE_SLUG, "adb:XYZ")]
    assert set(found[0].findings) == {"rigor", "frame_reuse"}


WRITER = """
import sys
sys.path[:0] = [{tests!r}, {root!r}]
from pathlib import Path
import paper_synthetic as S
S._write(Path("data"), "local", S.CPU_SLUG, "rigor", S.rigor_tables("local"))
"""


def test_stage_outputs_push_and_pull(tmp_path):
    repo = new_project(tmp_path / "study")
    (repo / "write.py").write_text(WRITER.format(tests=str(Path(__file__).parent), root=str(Path(__file__).parents[1])))
    (repo / "dvc.yaml").write_text(
        "stages:\n"
        "  rigor:\n"
        f"    cmd: {sys.executable} write.py\n"
        "    deps: [write.py]\n"
        "    outs: [data/local/rigor.parquet, data/local/rigor]\n")
    run([DVC, "repro", "-q"], repo)
    before = digest(repo / "data" / "local")
    run([DVC, "remote", "add", "-d", "peers", str(tmp_path / "remote")], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "run"], repo)
    run([DVC, "push", "-q"], repo)
    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / ".dvc" / "cache")
    run([DVC, "pull", "-q"], repo)
    assert digest(repo / "data" / "local") == before
    r = run([DVC, "status"], repo)
    assert "up to date" in (r.stdout + r.stderr).lower()
    found = explore.device_folders(data_root=repo / "data", include_reference=False, peers=False)
    assert [(d.source, d.slug) for d in found] == [("this machine", S.CPU_SLUG)]
