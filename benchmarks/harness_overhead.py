"""The harness's own overhead: the median latency of a small model timed three ways,
on the same model, thread count and CPU core set:

  harness   study.measure.Harness (warm-up, stopping rule off: a fixed count, raw log on disk)
  bare      a bare loop of the engine call (session.run(): inference + reading the outputs)
  litert    LiteRT's own tool, ai_edge_litert/tools/benchmark_litert_model.py, in a child process

Prints each median and the harness's difference to the others. Target: within 2%.
This is a benchmark, not a test: it prints figures and asserts nothing.

  python benchmarks/harness_overhead.py [--model data/models/mobilenet_v2.tflite] [--runs 300] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from study.devices import get_device  # noqa: E402
from study.engines.litert import open_compiled  # noqa: E402
from study.measure import Config, Harness, HarnessSettings, RawLog, set_affinity  # noqa: E402


def harness_median(model: Path, threads: int, cores, runs: int, warmup: int) -> float:
    settings = HarnessSettings(warmup=warmup, min_samples=runs, max_samples=runs, max_seconds=1e9,
                               rel_ci_halfwidth=0.5, block_size=runs)
    with tempfile.TemporaryDirectory() as d:
        cfg = Config(columns={"model": model.stem}, opener=lambda: open_compiled(model, "cpu", threads), cores=cores)
        df = Harness(settings, RawLog(Path(d) / "raw.jsonl"), progress=False).run([cfg])
    return float(df.latency_ms.median())


def bare_median(model: Path, threads: int, cores, runs: int, warmup: int) -> float:
    set_affinity(cores)
    s = open_compiled(model, "cpu", threads)
    for _ in range(warmup):
        s.run()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        s.run()
        ts.append((time.perf_counter_ns() - t0) / 1e6)
    s.close()
    return statistics.median(ts)


def litert_tool_median(model: Path, threads: int, cores, runs: int, warmup: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "result.json"
        cmd = [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", f"--model={model}",
               f"--num_runs={runs}", f"--warmup_runs={warmup}", f"--num_threads={threads}", f"--result_json={out}"]
        subprocess.run(["taskset", "-c", ",".join(map(str, cores)), *cmd], check=True, capture_output=True, text=True)
        return float(json.loads(out.read_text())["latency"]["median_ms"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "data/models/mobilenet_v2.tflite")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not args.model.is_file():
        sys.exit(f"no model at {args.model}: run `dvc repro models` first")
    dev = get_device("local")
    groups = dev.core_groups()
    cores = tuple(groups.get("g0", groups["all"]))[: args.threads] or tuple(groups["all"])
    print(f"model {args.model.name}, {args.threads} thread(s) on cores {list(cores)}, {args.runs} runs "
          f"after {args.warmup} warm-up, {args.repeats} repeats in alternating order ({dev.slug()})")
    ways = {"harness": harness_median, "bare": bare_median, "litert": litert_tool_median}
    results = {k: [] for k in ways}
    for r in range(args.repeats):
        order = list(ways) if r % 2 == 0 else list(reversed(ways))
        for k in order:
            results[k].append(ways[k](args.model, args.threads, cores, args.runs, args.warmup))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{'method':10s} {'median ms (per repeat)':40s} {'median':>8s}")
    for k, v in results.items():
        print(f"{k:10s} {', '.join(f'{x:.3f}' for x in v):40s} {med[k]:8.3f}")
    for other in ("bare", "litert"):
        diff = (med["harness"] - med[other]) / med[other] * 100
        print(f"harness vs {other:7s}: {diff:+.2f}%  (target: within 2%) -> {'OK' if abs(diff) <= 2 else 'OVER'}")


if __name__ == "__main__":
    main()
