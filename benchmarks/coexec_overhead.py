"""The co-execution engine's own overhead against the ideal bound, per model.

For each model, on the processor pair of this host (CPU+GPU with a CUDA GPU, else two
disjoint CPU core groups; ``--pair`` chooses), it measures with plain loops:

  t_a, t_b   the plain model on each processor alone (median of --runs)
  r*         the split ratio that balances the per-layer profiles (the engine at r=0, r=1)
  t_co       operator-level co-execution at r* (median of --runs)
  ideal      1 / (1/t_a + 1/t_b): a perfect, overhead-free split

and prints t_co / ideal (the engine's overhead ratio; 1 = no overhead) and t_co over the
best single processor, with the median decomposition of t_co (sync, transfers, merge,
waiting at the barrier). Also the round trip of one empty request to the worker (the
floor of every per-layer synchronization) on a CPU pair. A benchmark: it prints, it
asserts nothing.

  python benchmarks/coexec_overhead.py [--models fast_style_transfer resnet50 mobilenet_v2 yolo_det]
                                        [--input-size 0] [--runs 20] [--pair auto|cpu+gpu|cpu+cpu]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from study import coexec as C  # noqa: E402
from study.devices import get_device  # noqa: E402
from study.measure import set_affinity  # noqa: E402
from study.models.zoo import build  # noqa: E402
from study.mulayer_overhead import model_input  # noqa: E402


def open_pair(kind: str):
    dev = get_device("local")
    groups = dev.core_groups()
    if kind == "auto":
        kind = "cpu+gpu" if torch.cuda.is_available() else "cpu+cpu"
    if kind == "cpu+gpu":
        return C.CudaPair(cpu_threads=len(groups["all"])), groups["all"], groups["all"]
    ga, gb = ("g0", "g1") if "g0" in groups else ("big", "little")
    return C.CpuWorkerPair(groups[ga], groups[gb], names=(ga, gb)), groups[ga], groups[gb]


def pair_parser(doc: str, models: list[str], input_size: int, runs: int) -> argparse.ArgumentParser:
    """The arguments of both co-execution benchmarks (this one and split_prediction.py)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=models)
    ap.add_argument("--input-size", type=int, default=input_size,
                    help="square input side; 0 = each model's standard input")
    ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--profile-runs", type=int, default=3)
    ap.add_argument("--pair", default="auto", choices=["auto", "cpu+gpu", "cpu+cpu"])
    return ap


def main(argv=None) -> int:
    ap = pair_parser(__doc__, ["fast_style_transfer", "resnet50", "mobilenet_v2", "yolo_det"], 0, 20)
    args = ap.parse_args(argv)

    pair, cores_a, cores_b = open_pair(args.pair)
    cuda = pair.kind == "cpu+gpu"
    print(f"pair {pair.kind}: a={pair.a} ({len(cores_a)} cores{'' if not cuda else ' drive the GPU'}), "
          f"b={pair.b} ({len(cores_b)} cores, {pair.threads_b} threads); torch {torch.__version__}")
    header = (f"{'model':22s} {'size':>4s} {'t_a ms':>9s} {'t_b ms':>9s} {'ideal ms':>9s} {'r*':>6s} {'t_co ms':>9s} "
              f"{'co/ideal':>8s} {'co/best':>8s} {'sync':>7s} {'transf':>7s} {'merge':>7s} {'imbal':>7s} {'solo':>7s}")
    with pair:
        if not cuda:
            set_affinity(cores_a)
            pings = [pair.ping_ns() / 1e3 for _ in range(200)]
            print(f"worker round trip (empty request): median {statistics.median(pings):.1f} us, "
                  f"p90 {sorted(pings)[179]:.1f} us")
        print(header)
        for name in args.models:
            model = build(name, 0)
            x = model_input(name, args.input_size, 0)
            set_affinity(cores_a)
            rt = pair.load(name, model, x)
            r_star, _, _ = C.predict_ratios(C.profile_layers(pair, rt, args.profile_runs))
            t_a = statistics.median(C.time_runs(C.SingleSession(rt.model_a, rt.x_a, pair.threads_a, cuda=cuda),
                                                args.runs, warmup=3))
            set_affinity(cores_b)
            t_b = statistics.median(C.time_runs(C.SingleSession(rt.model_b, rt.x_b, pair.threads_b), args.runs, warmup=3))
            set_affinity(cores_a)
            s = C.CoexecSession(pair, rt, "operator", r_star)
            for _ in range(3):
                s.run()
            lat, bds = [], []
            for _ in range(args.runs):
                t0 = C.now()
                s.run()
                lat.append((C.now() - t0) / 1e6)
                bds.append(s.last)
            t_co = statistics.median(lat)
            ideal = 1 / (1 / t_a + 1 / t_b)
            med = {k: statistics.median(b[k] for b in bds) for k in ("t_sync_ms", "t_transfer_ms", "t_merge_ms",
                                                                       "t_imbalance_ms", "t_solo_ms")}
            print(f"{name:22s} {int(x.shape[-1]):4d} {t_a:9.2f} {t_b:9.2f} {ideal:9.2f} {r_star:6.3f} {t_co:9.2f} "
                  f"{t_co / ideal:8.2f} {t_co / min(t_a, t_b):8.2f} {med['t_sync_ms']:7.2f} {med['t_transfer_ms']:7.2f} "
                  f"{med['t_merge_ms']:7.2f} {med['t_imbalance_ms']:7.2f} {med['t_solo_ms']:7.2f}")
            pair.runtimes.pop(name, None)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
