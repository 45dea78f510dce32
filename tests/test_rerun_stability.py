"""benchmarks/rerun_stability.py's run mode: the claims-deciding stages twice, each stage of
each run a fresh process, interleaved stage by stage, then the comparison (a stand-in for
``python -m study.reference run`` copies synthetic device folders, so nothing is measured)."""
from __future__ import annotations

import importlib.util
import json
import sys

import paper_synthetic as S

from study import paths

FAKE_RUNNER = r"""
import argparse, json, shutil, sys
from pathlib import Path
ap = argparse.ArgumentParser()
ap.add_argument("--out", type=Path); ap.add_argument("--profile"); ap.add_argument("--stages", nargs="*")
ap.add_argument("--set", nargs="*", default=[])
a = ap.parse_args(sys.argv[2:])
src = Path(sys.argv[1])
with open(src.parent / "order.log", "a") as f:
    f.write(f"{a.out.name} {a.stages[0]} {a.profile} {' '.join(a.set)}\n")
dst = a.out / "data" / "local"
dst.mkdir(parents=True, exist_ok=True)
for stage in a.stages:
    if (src / f"{stage}").is_dir():
        shutil.copytree(src / stage, dst / stage, dirs_exist_ok=True)
rep = a.out / "reference_run.json"
r = json.loads(rep.read_text()) if rep.is_file() else {"profile": a.profile, "stages": {}}
for stage in a.stages:
    r["stages"][stage] = {"ok": stage != "frame_reuse", "state": "complete"}
rep.write_text(json.dumps(r))
"""


def load_benchmark():
    spec = importlib.util.spec_from_file_location("rerun_stability", paths.ROOT / "benchmarks" / "rerun_stability.py")
    rs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rs)
    return rs


def test_run_mode_measures_twice_interleaved_then_compares(tmp_path, monkeypatch):
    rs = load_benchmark()
    tree = S.make_tree(tmp_path / "tree")
    script = tmp_path / "fake_runner.py"
    script.write_text(FAKE_RUNNER)
    monkeypatch.setattr(rs, "RUNNER", [sys.executable, str(script), str(tree["data"] / "local")])
    work, out = tmp_path / "work", tmp_path / "rs.json"
    stages = ["operator_support", "mulayer_overhead", "frame_reuse"]
    assert rs.main(["run", str(work), "--stages", *stages, "--set", "contention.rounds=1", "--out", str(out)]) == 0
    order = (tree["data"] / "order.log").read_text().split("\n")[:-1]
    assert [line.split()[:2] for line in order] == [[r, s] for s in stages for r in ("run-a", "run-b")]
    assert all(line.split()[2:] == ["quick", "contention.rounds=1"] for line in order)
    res = json.loads(out.read_text())
    assert res["runs"] == [str(work / "run-a" / "data" / "local"), str(work / "run-b" / "data" / "local")]
    assert res["verdict_flips"] == [] and res["covered"] == res["checked"] > 0
    assert res["measured"]["run-a"]["failed"] == ["frame_reuse"]
    assert set(res["measured"]["run-b"]["stages"]) == set(stages)
    from study import claims as C

    assert rs.claims_stages() == list(C.findings()) and {"contention", "frame_reuse"} <= set(rs.claims_stages())
