"""Stability of the claims table between two independent runs of the claims-deciding stages.

    python benchmarks/rerun_stability.py RUN_A RUN_B [--device local] [--out metrics/<device>/rerun_stability.json]

RUN_A and RUN_B are two device data folders (``data/<device>/`` of two independent
``dvc repro --force`` runs, e.g. this checkout's and a copy's in /tmp, or two reference
folders). Each run's claims are recomputed from its own tables with the current code (as
the ``paper`` stage does) and decided with the same rules; the two runs are then compared,
for the paper form and the host form apart:

* ``verdict_flips``: claims whose verdict differs between the runs;
* ``covered`` / ``checked``: interval cross-checks that hold (each run's 95% CI contains
  the other run's estimate; two checks per claim measured in both runs);
* per claim: both verdicts, estimates and intervals, and each run's relative interval
  half-width ((hi - lo) / 2 / |estimate|), so that stability is never bought with intervals
  too wide to decide anything.

It prints a table and writes the JSON (``runs``, ``verdict_flips``, ``covered``, ``checked``,
``claims``). It measures nothing itself: the measuring runs are made with ``dvc repro``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--device", default="local", help="the device whose metrics folder gets the JSON")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    pa, ha = evaluate_folder(args.run_a)
    pb, hb = evaluate_folder(args.run_b)
    res = {"runs": [str(args.run_a), str(args.run_b)], **compare(pa, pb), "host_form": compare(ha, hb)}
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
