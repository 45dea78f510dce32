"""The fleet path: experiments queued with ``dvc exp run --queue -S device=...`` and run in
parallel by ``dvc queue start --jobs N``, each writing into its own ``data/<device>/``.
Exercised with the local device in a temporary git + DVC project (docs/phones.md)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

DVC = Path(sys.executable).with_name("dvc")
pytestmark = pytest.mark.skipif(not DVC.exists() or shutil.which("git") is None, reason="needs dvc and git")

DVC_YAML = """\
stages:
  measure:
    cmd: {python} -c "import pathlib; p = pathlib.Path('data/${{device}}'); p.mkdir(parents=True, exist_ok=True); (p / 'x.txt').write_text('${{device}} ${{seed}}')"
    params:
      - device
      - seed
    outs:
      - data/${{device}}/x.txt
"""


def _run(args, cwd, env, timeout=120):
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args}: {r.stdout}\n{r.stderr}"
    return r.stdout


def _workers(cwd, env) -> tuple[int, int]:
    out = _run([str(DVC), "queue", "status"], cwd, env)
    m = re.search(r"Worker status: (\d+) active, (\d+) idle", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def test_queued_experiments_run_in_parallel_each_into_its_device_folder(tmp_path):
    repo = tmp_path / "fleet"
    repo.mkdir()
    # queue workers start `dvc` from PATH: the virtual environment first (docs/phones.md says activate it)
    env = dict(os.environ, PATH=f"{DVC.parent}{os.pathsep}{os.environ.get('PATH', '')}", GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org",
               DVC_NO_ANALYTICS="1")
    env.pop("HETERO_ADB_SERVER", None)
    (repo / "params.yaml").write_text("device: local\nseed: 0\n")
    (repo / "dvc.yaml").write_text(DVC_YAML.format(python=sys.executable))
    _run(["git", "init", "-q"], repo, env)
    _run([str(DVC), "init", "-q"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "minimal study"], repo, env)
    queued = [("local", 1), ("local", 2), ("adb:R58M123ABC", 3)]
    for device, seed in queued:
        _run([str(DVC), "exp", "run", "--queue", "-S", f"device={device}", "-S", f"seed={seed}"], repo, env)
    try:
        out = _run([str(DVC), "queue", "start", "--jobs", "2"], repo, env)
        assert "2" in out
        deadline = time.monotonic() + 150
        while True:
            status = _run([str(DVC), "queue", "status"], repo, env)
            if not re.search(r"\b(Queued|Running)\b", status):
                break
            assert time.monotonic() < deadline, status
            time.sleep(1)
        assert status.count("Success") == 3, status
        shown = json.loads(_run([str(DVC), "exp", "show", "--json"], repo, env))
        exps = [e for base in shown for group in (base.get("experiments") or []) for e in group["revs"]]
        got = {}
        for e in exps:
            p = e["data"]["params"]["params.yaml"]["data"]
            outs = e["data"]["outs"]
            got[(p["device"], p["seed"])] = outs
        assert set(got) == set(queued)
        for (device, seed), outs in got.items():
            assert list(outs) == [f"data/{device}/x.txt"], outs       # its own folder per device
            assert outs[f"data/{device}/x.txt"]["hash"]                # and the stage produced it
    finally:
        subprocess.run([str(DVC), "queue", "stop"], cwd=repo, env=env, capture_output=True, timeout=60)
        deadline = time.monotonic() + 60
        while _workers(repo, env) != (0, 0) and time.monotonic() < deadline:
            time.sleep(1)
    assert _workers(repo, env) == (0, 0), "queue workers left running"
