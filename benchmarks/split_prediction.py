"""The runtime's predicted co-execution split against the best split of a measured grid.

For each model, on this host's processor pair (CPU+GPU with a CUDA GPU, else two disjoint
CPU core groups), it prints:

  r*        finding 2's profile-predicted split (compute balance of the per-layer profiles)
  r_pred    the runtime's split (``study.runtime.split``: the same profiles plus the engine's
            overhead per split layer, measured at r*), chosen before any grid is measured
  r_grid    the best split of the grid (0, 0.05, 0.1, 0.25, 0.5, 0.75, 1; 0 = b gets nothing)

with the measured latency of each (median of --runs interleaved rounds: every split timed
once per round, in a seeded random order) and r_pred's latency over the grid best's
(target: within 5%). A benchmark: it prints, it asserts nothing.

  python benchmarks/split_prediction.py [--models fast_style_transfer resnet50 yolo_det mobilenet_v2]
                                        [--input-size 128] [--runs 15] [--pair auto|cpu+gpu|cpu+cpu]
"""
from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.coexec_overhead import open_pair, pair_parser  # noqa: E402  (the same pair as the overhead benchmark)
from study import coexec as C  # noqa: E402
from study.measure import set_affinity  # noqa: E402
from study.models.zoo import build  # noqa: E402
from study.mulayer_overhead import model_input  # noqa: E402
from study.runtime import split as S  # noqa: E402

GRID = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)


def measure_splits(pair, rt, ratios, runs: int, seed: int = 0) -> dict[float, float]:
    sessions = {r: C.CoexecSession(pair, rt, "operator", r) for r in ratios}
    for s in sessions.values():
        s.run()
    lat: dict[float, list[float]] = {r: [] for r in ratios}
    rng = np.random.default_rng(seed)
    keys = list(ratios)
    for _ in range(runs):
        for i in rng.permutation(len(keys)):
            r = keys[i]
            t0 = C.now()
            sessions[r].run()
            lat[r].append((C.now() - t0) / 1e6)
    return {r: statistics.median(v) for r, v in lat.items()}


def main(argv=None) -> int:
    ap = pair_parser(__doc__, ["fast_style_transfer", "resnet50", "yolo_det", "mobilenet_v2"], 128, 15)
    ap.add_argument("--calib-runs", type=int, default=5)
    args = ap.parse_args(argv)

    pair, cores_a, cores_b = open_pair(args.pair)
    print(f"device local, pair {pair.kind} ({pair.name}): a {len(cores_a)} cores, b {len(cores_b)} cores; "
          f"torch {torch.__version__}; input {args.input_size or 'standard'}; {args.runs} interleaved rounds")
    print(f"{'model':20s} {'r*':>6s} {'T(r*)':>8s} {'r_pred':>6s} {'T(pred)':>8s} {'r_grid':>6s} {'T(grid)':>8s} "
          f"{'pred/grid':>9s} {'r*/grid':>8s} {'c/layer':>8s}")
    worst = 0.0
    with pair:
        for name in args.models:
            model = build(name, 0)
            x = model_input(name, args.input_size, 0)
            set_affinity(cores_a)
            rt = pair.load(name, model, x)
            sm, r_star, r_pred = S.predict(pair, rt, args.profile_runs, args.calib_runs)
            t = measure_splits(pair, rt, sorted(set(GRID) | {r_star, r_pred}), args.runs)
            r_grid = min(GRID, key=lambda r: t[r])
            rel = t[r_pred] / t[r_grid] - 1
            worst = max(worst, rel)
            print(f"{name:20s} {r_star:6.3f} {t[r_star]:8.2f} {r_pred:6.2f} {t[r_pred]:8.2f} {r_grid:6.2f} "
                  f"{t[r_grid]:8.2f} {rel:+9.1%} {t[r_star] / t[r_grid] - 1:+8.1%} {sm.step_overhead_ms:8.3f}")
            pair.runtimes.pop(name, None)
    print(f"largest excess of the predicted split over the grid best: {worst:+.1%} (target: within 5%)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
