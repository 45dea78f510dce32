"""The harness's own overhead: the median latency of a small model timed three ways,
on the same model, thread count and CPU core set:

  harness   study.measure.Harness (warm-up, stopping rule off: a fixed count, raw log on disk)
  bare      a bare loop of the engine call (session.run(): inference + reading the outputs)
  litert    LiteRT's own tool, ai_edge_litert/tools/benchmark_litert_model.py, in a child process
  harness-proc  the harness in a child process of its own, like the tool: a fresh load each time

The harness and the bare loop time the *same* loaded session, alternating, so that the
memory layout of one model load does not pass for overhead (separate loads of the same
model differ by about 2% here). LiteRT's tool loads its own copy in its own process, so
it is compared with `harness-proc`, which does the same: both then carry the same
load-to-load spread, and the median over repeats (one fresh process each) averages it.

Prints each median and the harness's difference to the others. Target: within 2%.
This is a benchmark, not a test: it prints figures and asserts nothing.

  python benchmarks/harness_overhead.py [--model data/models/mobilenet_v2.tflite] [--runs 300] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.devices import get_device  # noqa: E402
from study.engines.litert import open_compiled  # noqa: E402
from study.measure import Config, Harness, HarnessSettings, RawLog, set_affinity  # noqa: E402


class _Shared:
    """The one loaded session, lent to the harness without letting it close it."""

    def __init__(self, session):
        self.session = session

    def run(self):
        self.session.run()


def harness_median(session, threads: int, cores, runs: int, warmup: int) -> float:
    settings = HarnessSettings(warmup=warmup, min_samples=runs, max_samples=runs, max_seconds=1e9,
                               rel_ci_halfwidth=0.5, block_size=runs)
    with tempfile.TemporaryDirectory() as d:
        cfg = Config(columns={"model": "m"}, opener=lambda: _Shared(session), cores=cores)
        df = Harness(settings, RawLog(Path(d) / "raw.jsonl"), progress=False).run([cfg])
    return float(df.latency_ms.median())


def bare_median(session, threads: int, cores, runs: int, warmup: int) -> float:
    set_affinity(cores)
    return statistics.median(t / 1e6 for t in session.timed_runs(runs, warmup))


def litert_tool_median(model: Path, threads: int, cores, runs: int, warmup: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "result.json"
        cmd = [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", f"--model={model}",
               f"--num_runs={runs}", f"--warmup_runs={warmup}", f"--num_threads={threads}", f"--result_json={out}"]
        subprocess.run(["taskset", "-c", ",".join(map(str, cores)), *cmd], check=True, capture_output=True, text=True)
        return float(json.loads(out.read_text())["latency"]["median_ms"])


def harness_proc_median(model: Path, threads: int, cores, runs: int, warmup: int) -> float:
    """The harness in a fresh process with its own load of the model, as LiteRT's tool runs."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", f"--model={model}", f"--threads={threads}",
           f"--runs={runs}", f"--warmup={warmup}", "--cores=" + ",".join(map(str, cores))]
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return float(r.stdout.strip().splitlines()[-1])


def child(args) -> None:
    cores = tuple(int(c) for c in args.cores.split(","))
    set_affinity(cores)
    session = open_compiled(args.model, "cpu", args.threads)
    print(harness_median(session, args.threads, cores, args.runs, args.warmup))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "data/models/mobilenet_v2.tflite")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cores", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.model.is_file():
        sys.exit(f"no model at {args.model}: run `dvc repro models` first")
    if args.child:
        return child(args)
    dev = get_device("local")
    groups = dev.core_groups()
    cores = tuple(groups.get("g0", groups["all"]))[: args.threads] or tuple(groups["all"])
    print(f"model {args.model.name}, {args.threads} thread(s) on cores {list(cores)}, {args.runs} runs "
          f"after {args.warmup} warm-up, {args.repeats} repeats in alternating order ({dev.slug()})")
    set_affinity(cores)
    session = open_compiled(args.model, "cpu", args.threads)
    ways = {"harness": lambda *a: harness_median(session, *a), "bare": lambda *a: bare_median(session, *a),
            "litert": lambda *a: litert_tool_median(args.model, *a),
            "harness-proc": lambda *a: harness_proc_median(args.model, *a)}
    results = {k: [] for k in ways}
    for r in range(args.repeats):
        order = list(ways) if r % 2 == 0 else list(reversed(ways))
        for k in order:
            results[k].append(ways[k](args.threads, cores, args.runs, args.warmup))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{'method':13s} {'median ms (per repeat)':50s} {'median':>8s}")
    for k, v in results.items():
        print(f"{k:13s} {', '.join(f'{x:.3f}' for x in v):50s} {med[k]:8.3f}")
    paired = [(h - b) / b * 100 for h, b in zip(results["harness"], results["bare"])]
    print(f"harness vs bare, paired per repeat (same session): {', '.join(f'{x:+.2f}%' for x in paired)}")
    for mine, other in (("harness", "bare"), ("harness-proc", "litert"), ("harness", "litert")):
        diff = (med[mine] - med[other]) / med[other] * 100
        note = "  (different loads: includes the load-to-load spread)" if (mine, other) == ("harness", "litert") else ""
        print(f"{mine:12s} vs {other:6s}: {diff:+.2f}%  (target: within 2%) -> "
              f"{'OK' if abs(diff) <= 2 else 'OVER'}{note}")


if __name__ == "__main__":
    main()
