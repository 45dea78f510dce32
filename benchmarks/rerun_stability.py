"""Stability of the claims table between two independent runs of the claims-deciding stages.

    python benchmarks/rerun_stability.py RUN_A RUN_B [--device local] [--out metrics/<device>/rerun_stability.json]
    python benchmarks/rerun_stability.py run WORK [--profile quick] [--stages ...] [--set STAGE.KEY=YAML ...]

Compare mode: RUN_A and RUN_B are two device data folders (``data/<device>/`` of two
independent ``dvc repro --force`` runs, e.g. this checkout's and a copy's in /tmp, or two
reference folders). Run mode measures them first: the claims-deciding stages (every stage
that holds a claim, ``--stages`` to choose) run twice, independently, through ``python -m
study.reference run`` into ``WORK/run-a`` and ``WORK/run-b``, each stage in a fresh process,
the two runs interleaved stage by stage (A's first stage, B's first stage, A's second, ...)
so that slow drift of the machine falls on both; a run already complete in WORK is kept
(the reference runner skips complete stages and resumes a cut one), so a killed benchmark
resumes. Then ``WORK/run-a/data/<device>`` and ``WORK/run-b/data/<device>`` are compared.

Each run's claims are recomputed from its own tables with the current code (as
the ``paper`` stage does) and decided with the same rules; the two runs are then compared,
for the paper form and the host form apart:

* ``verdict_flips``: claims whose verdict differs between the runs;
* ``covered`` / ``checked``: interval cross-checks that hold (each run's 95% CI contains
  the other run's estimate; two checks per claim measured in both runs);
* per claim: both verdicts, estimates and intervals, and each run's relative interval
  half-width ((hi - lo) / 2 / |estimate|), so that stability is never bought with intervals
  too wide to decide anything.

It prints a table and writes the JSON (``runs``, ``verdict_flips``, ``covered``, ``checked``,
``claims``; in run mode also ``measured``: profile, stages, seconds and failures of each run).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from study import claims as C  # noqa: E402
from study import explore, paper, paths  # noqa: E402


def evaluate_folder(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(paper-form, host-form) claims of one device folder, recomputed with the current code."""
    d = explore._device_folder(Path(folder), f"path:{folder}")
    if d is None:
        raise SystemExit(f"{folder}: no finding data in this folder")
    tables, missing = {}, {}
    for finding in C.findings():
        t = d.read(finding, "claims")
        if t is not None or d.has(finding):
            new, _ = paper.recompute_claims(d, finding)
            t = new if new is not None else t
        if t is None:
            missing[finding] = f"stage {finding} produced no data in {folder}"
        tables[finding] = t
    info = C.device_info(d.fingerprint())
    return C.evaluate(tables, missing=missing, device=info), C.evaluate_host(tables, device=info)


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _half(r) -> float:
    e, lo, hi = _num(r["effect"]), _num(r["ci_lo"]), _num(r["ci_hi"])
    if any(math.isnan(x) for x in (e, lo, hi)) or e == 0:
        return float("nan")
    return (hi - lo) / 2 / abs(e)


def compare(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    rows, flips, covered, checked = {}, [], 0, 0
    ia, ib = a.set_index("claim"), b.set_index("claim")
    for cid in [c for c in C.CLAIMS if c in ia.index or c in ib.index]:
        ra = ia.loc[cid] if cid in ia.index else None
        rb = ib.loc[cid] if cid in ib.index else None
        va = ra["verdict"] if ra is not None else "absent"
        vb = rb["verdict"] if rb is not None else "absent"
        entry = {"verdicts": [va, vb], "effects": [None, None], "intervals": [None, None],
                 "rel_halfwidth": [None, None], "cross_checks": []}
        for k, r in enumerate((ra, rb)):
            if r is not None and not math.isnan(_num(r["effect"])):
                entry["effects"][k] = _num(r["effect"])
                entry["intervals"][k] = [_num(r["ci_lo"]), _num(r["ci_hi"])]
                h = _half(r)
                entry["rel_halfwidth"][k] = None if math.isnan(h) else h
        if va != vb:
            flips.append(cid)
        if all(e is not None for e in entry["effects"]):
            for k in (0, 1):
                lo, hi = entry["intervals"][k]
                other = entry["effects"][1 - k]
                ok = not (math.isnan(lo) or math.isnan(hi)) and lo <= other <= hi
                entry["cross_checks"].append(bool(ok))
                covered += int(ok)
                checked += 1
        rows[cid] = entry
    return {"verdict_flips": flips, "covered": covered, "checked": checked, "claims": rows}


RUNNER = [sys.executable, "-m", "study.reference", "run"]   # one stage of one run, in a fresh process


def claims_stages() -> list[str]:
    """The stages whose tables decide a claim, in pipeline order."""
    return list(C.findings())


def measure_twice(work: Path, profile: str = "quick", stages: list[str] | None = None,
                  sets: list[str] | None = None, runner: list[str] | None = None) -> dict:
    """Two independent runs of ``stages`` into ``work/run-a`` and ``work/run-b``, each stage
    of each run a fresh ``python -m study.reference run`` process, interleaved stage by
    stage. Returns per run: the stages, their seconds and the failed ones."""
    stages = list(stages or claims_stages())
    runner = list(runner or RUNNER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    out = {}
    for stage in stages:
        for name in ("run-a", "run-b"):
            cmd = runner + ["--out", str(work / name), "--profile", profile, "--stages", stage]
            if sets:
                cmd += ["--set", *sets]
            print(f"== {name}: {stage} ({profile})", flush=True)
            t0 = time.time()
            r = subprocess.run(cmd, cwd=str(ROOT), env=env)
            rec = out.setdefault(name, {"stages": {}, "failed": []})
            rec["stages"][stage] = round(time.time() - t0, 1)
            if r.returncode != 0:
                rec["failed"].append(stage)
    for name in ("run-a", "run-b"):
        report = json.loads((work / name / "reference_run.json").read_text()) \
            if (work / name / "reference_run.json").is_file() else {}
        failed = [s for s, v in report.get("stages", {}).items() if s in stages and not v.get("ok")]
        out.setdefault(name, {"stages": {}, "failed": []})["failed"] = sorted(set(out[name]["failed"]) | set(failed))
        out[name]["profile"] = profile
    return out


def data_folder(run_dir: Path, device: str) -> Path:
    return run_dir / "data" / paths.device_dirname(device)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    measured = None
    if argv[:1] == ["run"]:
        ap = argparse.ArgumentParser(description="run the claims-deciding stages twice, independently, and compare")
        ap.add_argument("work", type=Path, help="folder for the two runs (run-a, run-b); kept, and resumed")
        ap.add_argument("--profile", default="quick")
        ap.add_argument("--stages", nargs="*", default=None, help=f"default: {' '.join(claims_stages())}")
        ap.add_argument("--set", nargs="*", default=[], metavar="STAGE.KEY=YAML", help="parameter overrides, both runs")
        ap.add_argument("--device", default="local", help="the device whose metrics folder gets the JSON")
        ap.add_argument("--out", type=Path, default=None)
        args = ap.parse_args(argv[1:])
        measured = measure_twice(args.work, args.profile, args.stages, args.set)
        args.run_a = data_folder(args.work / "run-a", args.device)
        args.run_b = data_folder(args.work / "run-b", args.device)
    else:
        ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        ap.add_argument("run_a", type=Path)
        ap.add_argument("run_b", type=Path)
        ap.add_argument("--device", default="local", help="the device whose metrics folder gets the JSON")
        ap.add_argument("--out", type=Path, default=None)
        args = ap.parse_args(argv)
    pa, ha = evaluate_folder(args.run_a)
    pb, hb = evaluate_folder(args.run_b)
    res = {"runs": [str(args.run_a), str(args.run_b)], **compare(pa, pb), "host_form": compare(ha, hb)}
    if measured is not None:
        res["measured"] = measured
    out = args.out or paths.METRICS / paths.device_dirname(args.device) / "rerun_stability.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, allow_nan=False, default=str) + "\n")
    print(f"runs: {res['runs'][0]} vs {res['runs'][1]}")
    for form, r in (("paper form", res), ("host form", res["host_form"])):
        print(f"\n{form}: {len(r['verdict_flips'])} verdict flip(s) {r['verdict_flips'] or ''}; interval cross-checks "
              f"held {r['covered']} of {r['checked']}")
        for cid, e in r["claims"].items():
            hw = ", ".join("-" if h is None else f"{h:.3f}" for h in e["rel_halfwidth"])
            print(f"  {cid:>4}: {e['verdicts'][0]:>14} | {e['verdicts'][1]:>14}   rel. half-width {hw}   "
                  f"checks {e['cross_checks'] or '-'}")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
