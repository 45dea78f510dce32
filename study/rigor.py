"""Measurement rigor: is a latency number stable, where did it run, did heat or clocks move it?

Stage ``rigor`` (notebook ``00_rigor.ipynb``), run before the findings:

* **methods table**: each docs/methods.md practice as applied on this device, not
  applicable (why) or unavailable (``methods_table``; also ``python -m study methods``);
* **burst vs sustained**: after a cool-down, the model runs continuously; every
  inference's latency and the device's sensors (clocks, temperatures, GPU power) are
  logged with their time. Burst = the first seconds, sustained = the second half of the
  run (steady state). Kendall's tau of latency, frequency and temperature against time
  is the trend test; throttling is a significant upward latency trend with falling
  clocks or rising temperature;
* **between-run variation** (Kalibera & Jones, ISMM'13): the same configurations in
  several independent processes; a one-way random-effects split of log latency into
  between-run and within-run variance, and from it the number of runs and samples per
  run the stopping rule needs for a given interval width;
* **interval coverage**: the harness's configurations measured twice, in two
  independent processes, with the profile's settings; the share of configurations
  whose second median falls inside the first run's interval. Two intervals are
  checked: the harness's order-statistic CI of the median (treats all samples as
  independent) and the *rerun interval* (block bootstrap, widened for the rerun's own
  sampling error), which accounts for drift between the harness's interleaved blocks.

On a phone (``device=adb:SERIAL``, ``study.phone``) every number comes from LiteRT's
``benchmark_model``, which prints aggregates only (no per-run latencies), so each part works
on per-call block means (``aggregate=True`` rows; the methods table lists what differs):

* burst vs sustained: ``benchmark_model`` blocks back to back for ``sustained_seconds``
  (each a fresh model load + warm-up + ``block_size`` runs), sensors (cluster clocks,
  thermal zones, GPU clock, battery) read between blocks; trend tests on the block means;
* between-run: each run is one independent ``benchmark_model`` invocation (a new process
  on the phone) of ``samples_per_run`` runs, configurations interleaved; the variance split
  is computed from each invocation's mean and standard deviation (log scale by the delta
  method, ``variance_components_aggregate``);
* coverage: the configurations measured twice with ``study.phone.measure`` (interleaved
  blocks, the profile's stopping rule on the pooled mean); intervals over block means.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as st

from study import devices, paths, phone, stats
from study.config import check_models
from study.devices import PYTHON
from study.measure import Harness, HarnessSettings, RawLog, sensor_summary, set_affinity
from study.schema import STAGES, ParamError

PARAMS = STAGES["rigor"]   # the schema of this stage's section (study.schema)


def check_params(resolved: dict[str, Any], params: dict[str, Any]) -> None:
    check_models("rigor", resolved["models"] + resolved["coverage_models"], params)
    if resolved["burst_seconds"] >= resolved["sustained_seconds"]:
        raise ParamError("rigor.burst_seconds must be shorter than rigor.sustained_seconds")


# --------------------------------------------------------------------------- methods table
def methods_table(device) -> pd.DataFrame:
    """Each docs/methods.md practice on this device: applied, not applicable (why) or unavailable.
    How each is applied depends on what the device runs: the study's Python engines, each
    inference timed by the harness (``_python_practices``), or LiteRT's benchmark_model, which
    times blocks and prints their aggregates (``_benchmark_practices``)."""
    procs = {p.name: p for p in device.processors()}
    practices = _python_practices if device.supports(PYTHON) else _benchmark_practices
    rows = practices(device, procs, device.read_sensors(), device.core_groups())
    return pd.DataFrame(rows, columns=["practice", "status", "how"]).assign(device=device.spec)


def _unav(d) -> bool:
    return isinstance(d, dict) and d.get("status") == "unavailable"


def _clocks_row(freq, gov, gpu, freq_how: str, gov_how: str, gpu_how: str, gpu_what: str) -> tuple[str, str, str]:
    """The "clocks: record" practice: what the device's sensors give, or why not."""
    return ("clocks: record", "applied" if not _unav(freq) else "unavailable",
            (freq_how if not _unav(freq) else f"CPU frequency: {freq.get('why')}")
            + (f"; {gov_how}" if not _unav(gov) else f"; governor: {gov.get('why')}")
            + (f"; {gpu_how}" if not _unav(gpu) else f"; {gpu_what}: {gpu.get('why')}"))


def _python_practices(device, procs: dict, s: dict[str, Any], groups: dict) -> list[tuple[str, str, str]]:
    """The practices where the harness times every inference in this process (the host)."""
    gpu = procs.get("gpu")
    has_gpu = bool(gpu and gpu.available)
    freq, gov, thermal, smi = (s.get(k, {}) for k in ("cpu_freq", "cpu_governor", "thermal", "gpu"))
    unav = _unav
    return [
        ("core placement", "applied",
         f"every configuration runs pinned to an explicit core set (process affinity of all threads; "
         f"adb: taskset mask); groups here: {groups}; the set is the `core_group` parameter and the `cores` column"),
        _clocks_row(freq, gov, smi, f"CPU frequency read before/after each sample block from {freq.get('source')}",
                    "governor recorded", "GPU SM clock, temperature, power from nvidia-smi", "GPU clocks"),
        ("clocks: fix/lock", "not applicable",
         "the study never changes clocks on a shared host (and nvidia-smi -lgc is forbidden there); it records them "
         "and detects throttling instead"),
        ("heat", "applied" if not unav(thermal) or not unav(smi) else "applied; readings unavailable",
         "cool-down parameter between blocks (harness cooldown_s); "
         + ("thermal zones recorded per block" if not unav(thermal) else f"thermal zones: {thermal.get('why')}")
         + ("; GPU temperature recorded per block" if not unav(smi) else "")
         + "; burst vs sustained runs with a trend test (stage rigor)"),
        ("repetitions", "applied",
         "minimum and maximum counts and time per configuration; stopping rule on the 95% CI width of the median; "
         "the quick profile goes below the floors of docs/methods.md and says so (`below_floors` column)"),
        ("order", "applied",
         "configurations interleaved in blocks, order shuffled by a recorded seed; findings never measure "
         "concurrently (DVC runs stages one at a time)"),
        ("reporting", "applied",
         "medians with order-statistic 95% CIs, bootstrap CIs for ratios, CV, n, raw samples in every dataset; "
         "between-run variance split and rerun coverage checked (stage rigor)"),
        ("delegation", "applied",
         "per operator: delegated or fallback with its type and reason; XNNPACK partitions from the execution plan; "
         + ("GPU support measured per operator slice" if has_gpu else
            "GPU support from TFLite's static checker only (no GPU here)")),
        ("per-operator time", "applied",
         "ONNX Runtime's profiler, torch.profiler, and for LiteRT on a host single-operator slices timed alone "
         "(method column names the method of each number)"),
        ("GPU timing", "applied" if has_gpu else "not applicable",
         "outputs read back to the host (LiteRT) / torch.cuda.synchronize() before the clock stops" if has_gpu
         else f"no GPU: {gpu.reason if gpu else 'none'}"),
    ]


def _benchmark_practices(device, procs: dict, s: dict[str, Any], groups: dict) -> list[tuple[str, str, str]]:
    """The practices where benchmark_model times blocks on the device (a phone over adb), and
    what differs from the host method."""
    unav = _unav
    freq, gov, thermal, gpu_clk, batt = (s.get(k, {}) for k in ("cpu_freq", "cpu_governor", "thermal", "gpu",
                                                                "battery"))
    gpu, npu = procs.get("gpu"), procs.get("npu")
    fixed = bool(getattr(getattr(device, "settings", None), "fixed_performance_mode", False))
    accel = [f"{p.name}: {'available' if p.available else p.reason}" for p in (gpu, npu) if p is not None]
    return [
        ("core placement", "applied",
         f"every benchmark_model call runs under `taskset <mask>` of its core group, --num_threads = the group's size "
         f"for the CPU; groups from the cpufreq policies: {groups}; the `core_group` parameter and `cores` column"),
        _clocks_row(freq, gov, gpu_clk, f"CPU frequency per cluster before/after each call ({freq.get('source')})",
                    "governor per policy recorded", f"GPU clock from {gpu_clk.get('source')}", "GPU clock"),
        ("clocks: fix/lock", "applied (requested)" if fixed else "not applied",
         "adb.fixed_performance_mode: `cmd power set-fixed-performance-mode-enabled true` during each call; whether "
         "the phone accepted it is in the fingerprint" if fixed else
         "adb.fixed_performance_mode is false: clocks float with the governor; they are recorded per call and the "
         "sustained run tests for throttling"),
        ("heat", "applied" if not unav(thermal) else "applied; readings unavailable",
         "cool-down parameter between calls (harness cooldown_s); "
         + ("every readable /sys/class/thermal zone recorded per call" if not unav(thermal)
            else f"thermal zones: {thermal.get('why')}")
         + ("; battery temperature (dumpsys battery)" if not unav(batt) else "")
         + "; burst vs sustained blocks with a trend test (stage rigor)"),
        ("repetitions", "applied (per-call aggregates)",
         "benchmark_model prints no per-run latencies: one row per call (block_size runs after `warmup` untimed runs, "
         "the model loaded anew each call); stops at max_samples runs, max_seconds of timed runs, or when the "
         "normal CI of the mean pooled from the calls' aggregates is narrow enough (not the order-statistic CI of "
         "the median)"),
        ("order", "applied",
         "configurations interleaved one call at a time, order shuffled by a recorded seed; one stage at a time; "
         "one experiment per phone at a time"),
        ("reporting", "applied (over block means)",
         "medians, bootstrap and order-statistic CIs computed over the per-call means (n runs each, with their std, "
         "min, max in every row); raw calls in the JSONL log"),
        ("delegation", "applied",
         "benchmark_model's `Replacing N out of M node(s) with delegate` line: delegated vs total nodes per delegate; "
         "per-operator placement from the op profile with the CPU fallback on TFLite kernels; " + "; ".join(accel)),
        ("per-operator time", "applied (partitions)",
         "--enable_op_profiling: CPU kernels per node; GPU/NNAPI delegates report one time per partition, not per "
         "operator inside it (TFLite issue 53138)"),
        ("GPU timing", "applied" if gpu is not None and gpu.available else "not applicable",
         "timed by benchmark_model around Interpreter::Invoke on the phone (the GPU delegate returns after its outputs "
         "are ready); no adb round trip inside a timing" if gpu is not None and gpu.available
         else f"no GPU: {gpu.reason if gpu else 'none'}"),
        ("sustained run (rigor)", "applied (phone method)",
         "host: every inference timed back to back; phone: benchmark_model calls back to back (model load + warm-up + "
         "block_size runs each), sensors between calls; burst/sustained and trends on the call means"),
        ("between-run variation (rigor)", "applied (phone method)",
         "host: independent Python processes with per-sample latencies; phone: independent benchmark_model "
         "invocations, the within-run variance from each call's std (delta method on the log scale)"),
        ("interval coverage (rigor)", "applied (phone method)",
         "host: two child processes running the harness; phone: two measuring sessions of the same calls; intervals "
         "over block means"),
    ]


# --------------------------------------------------------------------------- sustained run
def sustained_run(ctx, model: str, engine: str, processor: str, seconds: float, sensor_interval: float,
                  log: RawLog, clock=time.perf_counter_ns) -> pd.DataFrame:
    """Run continuously for ``seconds`` (after the profile's cool-down); log every inference."""
    cfg = ctx.latency_config(model, engine, processor, ctx.params["core_group"])
    sess = cfg.opener()
    set_affinity(cfg.cores)
    if ctx.settings.cooldown_s:
        time.sleep(ctx.settings.cooldown_s)
    for _ in range(ctx.settings.warmup):
        sess.run()
    key = cfg.key
    rows, t_start = [], clock()
    next_sensor = 0.0
    i = 0
    try:
        while True:
            now = (clock() - t_start) / 1e9
            if now >= seconds:
                break
            if now >= next_sensor:
                reading = ctx.device.read_sensors()
                log.append({"type": "sensors", "config": key, "t": now, "sensors": reading})
                rows.append({**cfg.columns, "kind": "sensors", "t_s": now, "latency_ms": np.nan,
                             **sensor_summary(reading)})
                next_sensor = now + sensor_interval
            t0 = clock()
            sess.run()
            dt = (clock() - t0) / 1e6
            log.append({"type": "sustained", "config": key, "i": i, "t": (t0 - t_start) / 1e9, "latency_ms": dt})
            rows.append({**cfg.columns, "kind": "inference", "t_s": (t0 - t_start) / 1e9, "latency_ms": dt})
            i += 1
    finally:
        getattr(sess, "close", lambda: None)()
    df = pd.DataFrame(rows)
    df["cores"] = ",".join(map(str, cfg.cores))
    return df


def trend(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Kendall's tau of y against time and its p-value (NaN when not computable)."""
    ok = ~(np.isnan(t) | np.isnan(y))
    if ok.sum() < 4 or np.nanstd(y[ok]) == 0:
        return (np.nan, np.nan)
    tau, p = st.kendalltau(t[ok], y[ok])
    return float(tau), float(p)


def burst_vs_sustained(df: pd.DataFrame, burst_seconds: float, alpha: float = 0.05,
                       material: float = 0.03) -> pd.DataFrame:
    """Per configuration: burst and sustained medians with CIs, their ratio, the trend tests, a verdict."""
    rows = []
    keys = ["model", "engine", "processor", "core_group"]
    for key, g in df.groupby(keys):
        inf = g[g.kind == "inference"]
        sen = g[g.kind == "sensors"]
        if inf.empty:
            continue
        total = inf.t_s.max()
        burst = inf[inf.t_s < burst_seconds].latency_ms.to_numpy()
        sustained = inf[inf.t_s >= total / 2].latency_ms.to_numpy()
        mb, blo, bhi = stats.median_ci(burst)
        ms, slo, shi = stats.median_ci(sustained)
        r, rlo, rhi = stats.ratio_of_medians_ci(sustained, burst) if burst.size and sustained.size else (np.nan,) * 3
        tau, p = trend(inf.t_s.to_numpy(), inf.latency_ms.to_numpy())
        ftau, fp = trend(sen.t_s.to_numpy(), sen.cpu_mhz_mean.to_numpy()) if "cpu_mhz_mean" in sen else (np.nan,) * 2
        gtau, gp = trend(sen.t_s.to_numpy(), sen.gpu_sm_mhz.to_numpy()) if "gpu_sm_mhz" in sen else (np.nan,) * 2
        ttau, tp = (trend(sen.t_s.to_numpy(), np.fmax(sen.temp_max_c.to_numpy(), sen.gpu_temp_c.to_numpy()))
                    if "temp_max_c" in sen else (np.nan,) * 2)
        lat_up = p < alpha and tau > 0
        clock_down = (fp < alpha and ftau < 0) or (gp < alpha and gtau < 0)
        heat_up = tp < alpha and ttau > 0
        if lat_up and (clock_down or heat_up):
            verdict = "throttling: latency rises while clocks fall or temperature rises"
        elif lat_up:
            verdict = "latency drifts upward without a recorded clock/heat change"
        elif p < alpha and tau < 0:
            verdict = "latency falls over the run (warm-up effects)"
        else:
            verdict = "no significant trend"
        # reported as different only if the CI excludes 1 *and* the change is material
        differ = bool(not np.isnan(rlo) and not (rlo <= 1.0 <= rhi) and abs(r - 1) >= material)
        rows.append(dict(zip(keys, key), seconds=total, n_burst=burst.size, burst_median=mb, burst_lo=blo,
                         burst_hi=bhi, n_sustained=sustained.size, sustained_median=ms, sustained_lo=slo,
                         sustained_hi=shi, sustained_over_burst=r, ratio_lo=rlo, ratio_hi=rhi,
                         burst_sustained_differ=differ, latency_tau=tau, latency_p=p, cpu_freq_tau=ftau,
                         cpu_freq_p=fp, gpu_clock_tau=gtau, gpu_clock_p=gp, temp_tau=ttau, temp_p=tp,
                         sensors_seen=int(len(sen)), verdict=verdict))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- child runs
def child_spec(ctx, configs: list[dict[str, Any]], settings: HarnessSettings, log_path: Path, run_id: str) -> dict:
    return {"device": ctx.device_spec, "profile": ctx.profile, "seed": ctx.seed,
            "settings": dataclasses.asdict(settings), "configs": configs, "log": str(log_path), "run_id": run_id,
            "params": ctx.params}


def run_child(spec: dict, timeout: float = 1800) -> None:
    """Measure ``spec['configs']`` in a fresh process (own memory layout, own warm-up) that
    dies with this one (``study.lifetime``)."""
    from study import lifetime

    spec = {**spec, "parent": os.getpid()}
    r = subprocess.run([sys.executable, "-m", "study.rigor", json.dumps(spec)], capture_output=True, text=True,
                       timeout=timeout, cwd=str(paths.ROOT), **lifetime.popen_kwargs())
    if r.returncode != 0:
        raise RuntimeError(f"child run {spec['run_id']} failed: {r.stderr.strip()[-800:]}")


def _child_main(spec: dict) -> None:
    """A child run: an independent measuring run (nothing resumed from an earlier, killed one:
    its samples carry another run id); ends when its parent dies."""
    from study import lifetime

    lifetime.die_with_parent(spec.get("parent"))
    from study.common import context

    ctx = context("rigor", {"device": spec["device"], "profile": spec["profile"], "seed": spec["seed"],
                            "harness": spec["settings"], **spec["params"]})
    configs = [ctx.latency_config(c["model"], c["engine"], c["processor"], c["core_group"]) for c in spec["configs"]]
    Harness(HarnessSettings(**spec["settings"]), RawLog(Path(spec["log"])), ctx.device, env=ctx.env,
            run_id=spec["run_id"], progress=False).run(configs, resume=False)


def runs_frame(log: RawLog, run_ids: list[str]) -> pd.DataFrame:
    """Samples of the given child runs in a log (its whole history), with run id and block;
    samples of a block without its block record (cut by a kill) are left out."""
    rows = []
    recs = [r for r in log.records(current=False) if r.get("run_id") in run_ids]
    complete = {(r.get("config"), r.get("block"), r.get("run_id")) for r in recs if r.get("type") == "block"}
    for r in recs:
        if r.get("type") != "sample" or (r.get("config"), r.get("block"), r.get("run_id")) not in complete:
            continue
        rows.append({**json.loads(r["config"]), "run_id": r["run_id"], "block": r["block"],
                     "latency_ms": r["latency_ms"], "settings_hash": r["settings_hash"]})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- variance components
def variance_components(df: pd.DataFrame, by: list[str], run: str = "run_id", value: str = "latency_ms",
                        target: float = 0.02, run_cost: float | None = None) -> pd.DataFrame:
    """One-way random-effects split of log latency per configuration.

    sigma2_within = MS_within; sigma2_between = max(0, (MS_between - MS_within) / n0).
    With c = the cost of starting a run in units of one sample, the samples per run that
    minimise total cost for a given interval width is n* = sqrt(c * s2w / s2b) (Kalibera &
    Jones); the runs needed r = ceil(z^2 (s2b + s2w / n*) / target^2) on the log scale,
    where ``target`` is the relative half-width.
    """
    z = st.norm.ppf(0.975)
    rows = []
    for key, g in df.groupby(by):
        groups = [np.log(x[value].to_numpy()) for _, x in g.groupby(run)]
        groups = [x for x in groups if x.size > 1]
        k = len(groups)
        if k < 2:
            continue
        ns = np.array([x.size for x in groups])
        N = ns.sum()
        grand = np.concatenate(groups).mean()
        msb = sum(n * (x.mean() - grand) ** 2 for n, x in zip(ns, groups)) / (k - 1)
        msw = sum(((x - x.mean()) ** 2).sum() for x in groups) / (N - k)
        rows.append(_components_row(by, key, k, ns, msb, msw, target, run_cost, z))
    return pd.DataFrame(rows)


def _components_row(by, key, k: int, ns: np.ndarray, msb: float, msw: float, target: float,
                    run_cost: float | None, z: float) -> dict[str, Any]:
    """The split and the run plan from the one-way ANOVA mean squares (see variance_components)."""
    N = ns.sum()
    n0 = (N - (ns ** 2).sum() / N) / (k - 1)
    s2b = max(0.0, (msb - msw) / n0)
    s2w = msw
    F = msb / msw if msw > 0 else np.inf
    p = float(st.f.sf(F, k - 1, N - k)) if np.isfinite(F) else 0.0
    c = run_cost if run_cost is not None else 10.0
    n_star = math.ceil(math.sqrt(c * s2w / s2b)) if s2b > 0 else int(ns.max())
    n_star = max(n_star, 5)
    r_star = max(2, math.ceil(z ** 2 * (s2b + s2w / n_star) / target ** 2))
    return dict(zip(by, key if isinstance(key, tuple) else (key,)), runs=k, samples=int(N),
                between_cv=math.sqrt(s2b), within_cv=math.sqrt(s2w), icc=s2b / (s2b + s2w) if s2b + s2w else 0,
                F=F, p_between=p, run_cost_samples=c, plan_samples_per_run=n_star, plan_runs=r_star,
                plan_target_rel_halfwidth=target)


def variance_components_aggregate(df: pd.DataFrame, by: list[str], run: str = "run_id", target: float = 0.02,
                                  run_cost: float | None = None) -> pd.DataFrame:
    """``variance_components`` from per-run aggregates (a phone: one benchmark_model invocation
    per run, its ``n`` runs' mean ``latency_ms`` and population std ``latency_std_ms``).

    On the log scale by the delta method: a run's log mean ~ log(mean), its within-run
    variance ~ (std / mean)^2. MS_within = sum(n_i s_i^2) / (N - k) (``s_i`` the population
    std as benchmark_model prints it); MS_between from the log means weighted by ``n_i``."""
    z = st.norm.ppf(0.975)
    rows = []
    for key, g in df.groupby(by):
        g = g[(g["n"] > 1) & (g["latency_ms"] > 0)]
        k = g[run].nunique()
        if k < 2 or len(g) != k:
            continue
        ns = g["n"].to_numpy(int)
        lm = np.log(g["latency_ms"].to_numpy(float))
        cv2 = (g["latency_std_ms"].fillna(0).to_numpy(float) / g["latency_ms"].to_numpy(float)) ** 2
        N = ns.sum()
        grand = float((ns * lm).sum() / N)
        msb = float((ns * (lm - grand) ** 2).sum() / (k - 1))
        msw = float((ns * cv2).sum() / (N - k))
        row = _components_row(by, key, k, ns, msb, msw, target, run_cost, z)
        row["method"] = ("per-invocation aggregates (mean, std, n of benchmark_model); log scale by the delta method")
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- intervals and coverage
def rerun_interval(samples: np.ndarray, blocks: np.ndarray, confidence: float = 0.95, n_boot: int = 1000,
                   seed: int = 0, between_cv: float = 0.0, between_df: float = np.inf) -> tuple[float, float, float]:
    """An interval meant to hold a rerun's median (a prediction interval, log scale).

    A rerun's median differs from this run's by both runs' sampling errors *and* both runs'
    run effects: var = 2 se^2 + 2 sigma_b^2, with se the block (cluster) bootstrap standard
    error of this run's median and sigma_b the device's between-run spread (the between-run
    benchmark's random-effects split, Kalibera & Jones). ``between_cv = 0`` leaves the run
    effect out. sigma_b is estimated from few runs: with ``between_df`` degrees of freedom the
    quantile is Student's t instead of the normal one."""
    x = np.asarray(samples, float)
    b = np.asarray(blocks)
    med = float(np.median(x))
    ids = np.unique(b)
    z = st.norm.ppf(0.5 + confidence / 2)
    if between_cv > 0 and np.isfinite(between_df):
        z = st.t.ppf(0.5 + confidence / 2, max(1.0, between_df))
    if ids.size < 2:
        _, lo, hi = stats.median_ci(x, confidence)
        if between_cv > 0 and not np.isnan(lo):
            se = (math.log(hi) - math.log(lo)) / (2 * z)
            half = z * math.sqrt(2 * se ** 2 + 2 * between_cv ** 2)
            return med, float(math.exp(math.log(med) - half)), float(math.exp(math.log(med) + half))
        return med, lo, hi
    rng = np.random.default_rng(seed)
    parts = [np.log(x[b == i]) for i in ids]
    boots = np.empty(n_boot)
    for k in range(n_boot):
        pick = rng.integers(0, ids.size, ids.size)
        boots[k] = np.median(np.concatenate([parts[j] for j in pick]))
    se = float(np.std(boots, ddof=1))
    half = z * math.sqrt(2 * se ** 2 + 2 * between_cv ** 2)
    return med, float(math.exp(math.log(med) - half)), float(math.exp(math.log(med) + half))


def coverage(df: pd.DataFrame, by: list[str], first: str, second: str, confidence: float = 0.95,
             between_cv: float = 0.0, between_df: float = np.inf) -> pd.DataFrame:
    """Per configuration: does the second run's median fall inside the first run's intervals?
    Three intervals: the harness's order-statistic CI, the block-bootstrap rerun interval, and
    the rerun interval with the device's between-run spread ``between_cv`` added."""
    rows = []
    for key, g in df.groupby(by):
        a = g[g.run == first]
        b = g[g.run == second]
        if a.empty or b.empty:
            continue
        m1, lo, hi = stats.median_ci(a.latency_ms.to_numpy(), confidence)
        _, rlo, rhi = rerun_interval(a.latency_ms.to_numpy(), a.block.to_numpy(), confidence)
        _, plo, phi = rerun_interval(a.latency_ms.to_numpy(), a.block.to_numpy(), confidence, between_cv=between_cv,
                                     between_df=between_df)
        m2 = float(b.latency_ms.median())
        rows.append(dict(zip(by, key if isinstance(key, tuple) else (key,)), n1=len(a), n2=len(b), median1=m1,
                         ci_lo=lo, ci_hi=hi, rerun_lo=rlo, rerun_hi=rhi, pred_lo=plo, pred_hi=phi,
                         between_cv=between_cv, median2=m2,
                         inside_ci=bool(lo <= m2 <= hi) if not np.isnan(lo) else False,
                         inside_rerun=bool(rlo <= m2 <= rhi) if not np.isnan(rlo) else False,
                         inside_pred=bool(plo <= m2 <= phi) if not np.isnan(plo) else False,
                         rel_shift=(m2 - m1) / m1))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the stage
def _available(ctx, model: str, engine: str, processor: str) -> str | None:
    from study.engines import get_engine

    return get_engine(engine).availability(ctx.device, processor, ctx.model(model))


# --------------------------------------------------------------------------- the phone path
def sustained_blocks(ctx, model: str, processor: str, seconds: float, sensor_interval: float,
                     log: RawLog) -> pd.DataFrame:
    """On a phone: benchmark_model calls back to back for ``seconds`` (after the profile's
    cool-down), each of ``block_size`` runs after ``warmup``; sensors between calls."""
    cfg = phone.config(ctx, model, processor, ctx.params["core_group"])
    if ctx.settings.cooldown_s:
        time.sleep(ctx.settings.cooldown_s)
    key = cfg.key
    rows, t_start, next_sensor, i = [], time.monotonic(), 0.0, 0
    while True:
        now = time.monotonic() - t_start
        if now >= seconds:
            break
        if now >= next_sensor:
            reading = ctx.device.read_sensors()
            log.append({"type": "sensors", "config": key, "t": now, "sensors": reading})
            rows.append({**cfg.columns, "kind": "sensors", "t_s": now, "latency_ms": np.nan, "aggregate": False,
                         **sensor_summary(reading)})
            next_sensor = now + sensor_interval
        t0 = time.monotonic() - t_start
        b = phone.block(ctx, cfg, ctx.settings.block_size, ctx.settings.warmup)
        t1 = time.monotonic() - t_start
        log.append({"type": "sustained_block", "config": key, "i": i, "t": t0, "t_end": t1, **b})
        rows.append({**cfg.columns, "kind": "inference", "t_s": t0, "t_end_s": t1, "latency_ms": b["latency_ms"],
                     "n": b["n"], "latency_std_ms": b["latency_std_ms"], "latency_min_ms": b["latency_min_ms"],
                     "latency_max_ms": b["latency_max_ms"], "init_ms": b["init_ms"], "aggregate": True,
                     "method": b["method"]})
        i += 1
    df = pd.DataFrame(rows)
    df["cores"] = ",".join(map(str, cfg.cores or ()))
    return df


AGG_KEYS = ("n", "latency_ms", "latency_std_ms", "latency_min_ms", "latency_max_ms", "init_ms", "t_start", "t_end",
            "call_s", "aggregate", "method")


def measure_phone(ctx) -> pd.DataFrame:
    """The three parts on a phone (module docstring); the same tables as the host path."""
    import random

    from study.engines.base import EngineUnavailable

    p = ctx.params
    groups = ctx.device.core_groups()
    cg = p["core_group"]
    absent: list[dict[str, Any]] = []

    def why_not(model: str, engine: str, proc: str, group: str) -> str | None:
        why = phone.availability(ctx, model, engine, proc)
        if why is None and group not in groups:
            why = f"core group {group!r} not on this phone (groups: {sorted(groups)})"
        return why

    slog = ctx.raw_log("rigor-sustained")
    traces, usable = [], []
    for model in p["models"]:
        for engine in p["engines"]:
            for proc in p["processors"]:
                why = why_not(model, engine, proc, cg)
                if why is None:
                    try:
                        traces.append(sustained_blocks(ctx, model, proc, p["sustained_seconds"],
                                                       p["sensor_interval_s"], slog))
                        usable.append((model, proc))
                        continue
                    except EngineUnavailable as e:
                        why = f"benchmark failed: {e}"[:500]
                absent.append(dict(model=model, engine=engine, processor=proc, part="sustained", reason=why))
    trace = pd.concat(traces, ignore_index=True) if traces else pd.DataFrame()
    trace["core_group"] = cg
    ctx.write(trace)
    slog.mark_complete()

    # between-run: every run one independent benchmark_model invocation per configuration, interleaved
    stamp = f"{int(time.time()):x}"
    blog = ctx.raw_log("rigor-between")
    cfgs = [phone.config(ctx, m, pr, cg) for m, pr in dict.fromkeys(usable)]
    rng = random.Random(ctx.seed)
    rows, walls = [], []
    for k in range(p["between_runs"]):
        rid = f"between-{k}-{stamp}"
        order = list(cfgs)
        rng.shuffle(order)
        for cfg in order:
            try:
                b = phone.block(ctx, cfg, p["samples_per_run"], ctx.settings.warmup)
            except EngineUnavailable as e:
                absent.append(dict(model=cfg.columns["model"], engine=phone.ENGINE, processor=cfg.columns["processor"],
                                   part="between", reason=f"benchmark failed ({rid}): {e}"[:500]))
                continue
            blog.append({"type": "invocation", "config": cfg.key, "run_id": rid, **b})
            rows.append({**cfg.columns, "run_id": rid, "block": 0, **{x: b[x] for x in AGG_KEYS}})
            walls.append(b["call_s"])
        blog.mark_complete(run_id=rid)
    between = pd.DataFrame(rows)

    # coverage: the configurations measured twice, each a measuring session of its own
    specs = []
    for model in p["coverage_models"]:
        for engine in p["coverage_engines"]:
            for proc in ("cpu",) + tuple(x for x in p["processors"] if x != "cpu"):
                for g in (p["coverage_core_groups"] if proc == "cpu" else [cg]):
                    why = why_not(model, engine, proc, g)
                    if why:
                        absent.append(dict(model=model, engine=engine, processor=proc, part="coverage",
                                           reason=f"{g}: {why}"))
                    elif (model, proc, g) not in specs:
                        specs.append((model, proc, g))
    clog = ctx.raw_log("rigor-coverage")
    frames = []
    for which in ("first", "second"):
        rid = f"coverage-{which}-{stamp}"
        run_cfgs = [phone.config(ctx, m, pr, g, run=which) for m, pr, g in specs]
        df = phone.measure(ctx, run_cfgs, clog, run_id=rid, resume=False)  # independent: nothing of a killed run
        for f in phone.failures(df, run_cfgs).to_dict("records"):
            absent.append(dict(model=f["model"], engine=phone.ENGINE, processor=f["processor"], part="coverage",
                               reason=f"{f['core_group']} ({which}): {f['reason']}"[:500]))
        clog.mark_complete(run_id=rid)
        frames.append(df)
    cov = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else \
        pd.DataFrame()

    ctx.write(between, table="between_samples")
    ctx.write(cov, table="coverage_samples")
    ctx.write(pd.DataFrame(absent, columns=["model", "engine", "processor", "part", "reason"]), table="absent")
    ctx.write(pd.DataFrame([{"run_seconds": float(np.mean(walls)) if walls else np.nan,
                             "samples_per_run": p["samples_per_run"]}]), table="run_cost")
    return trace


def _is_aggregate(df: pd.DataFrame) -> bool:
    return len(df) > 0 and "aggregate" in df.columns and bool(df["aggregate"].fillna(False).astype(bool).all())


def measure(ctx) -> pd.DataFrame:
    """Sustained runs, between-run benchmark and the coverage check; returns the sustained trace."""
    if not devices.supports(ctx.device_spec, PYTHON):  # only benchmark_model runs there
        return measure_phone(ctx)
    p = ctx.params
    traces, absent = [], []
    slog = ctx.raw_log("rigor-sustained")
    for model in p["models"]:
        for engine in p["engines"]:
            for proc in p["processors"]:
                why = _available(ctx, model, engine, proc)
                if why:
                    absent.append(dict(model=model, engine=engine, processor=proc, part="sustained", reason=why))
                    continue
                traces.append(sustained_run(ctx, model, engine, proc, p["sustained_seconds"], p["sensor_interval_s"],
                                            slog))
    trace = pd.concat(traces, ignore_index=True) if traces else pd.DataFrame()
    trace["core_group"] = p["core_group"]
    ctx.write(trace)
    slog.mark_complete()

    # between-run variation: the same configurations, fixed sample count, in independent processes
    fixed = dataclasses.replace(ctx.settings, min_samples=p["samples_per_run"], max_samples=p["samples_per_run"],
                                max_seconds=1e9, rel_ci_halfwidth=0.5)
    between_cfgs = []
    for model in p["models"]:
        for engine in p["engines"]:
            for proc in p["processors"]:
                if not _available(ctx, model, engine, proc):
                    between_cfgs.append(dict(model=model, engine=engine, processor=proc, core_group=p["core_group"]))
    # every child run is its own session of the log (a complete marker after each), so no run
    # resumes another; run ids carry this invocation's stamp
    stamp = f"{int(time.time()):x}"
    blog = ctx.raw_log("rigor-between")
    t0 = time.time()
    ids = [f"between-{k}-{stamp}" for k in range(p["between_runs"])]
    for rid in ids:
        run_child(child_spec(ctx, between_cfgs, fixed, blog.path, rid))
        blog.mark_complete(run_id=rid)
    run_seconds = (time.time() - t0) / max(1, p["between_runs"])
    between = runs_frame(blog, ids)

    # coverage: the profile's own harness settings, twice, in independent processes
    cov_cfgs, groups = [], ctx.device.core_groups()
    for model in p["coverage_models"]:
        for engine in p["coverage_engines"]:
            for proc in ("cpu",) + tuple(x for x in p["processors"] if x != "cpu"):
                if _available(ctx, model, engine, proc):
                    continue
                for cg in (p["coverage_core_groups"] if proc == "cpu" else [p["core_group"]]):
                    if cg in groups:
                        cov_cfgs.append(dict(model=model, engine=engine, processor=proc, core_group=cg))
    clog = ctx.raw_log("rigor-coverage")
    ids = [f"coverage-first-{stamp}", f"coverage-second-{stamp}"]
    for rid in ids:
        run_child(child_spec(ctx, cov_cfgs, ctx.settings, clog.path, rid))
        clog.mark_complete(run_id=rid)
    cov = runs_frame(clog, ids)
    cov["run"] = cov.run_id.str.split("-").str[1]

    ctx.write(between, table="between_samples")
    ctx.write(cov, table="coverage_samples")
    ctx.write(pd.DataFrame(absent, columns=["model", "engine", "processor", "part", "reason"]), table="absent")
    ctx.write(pd.DataFrame([{"run_seconds": run_seconds, "samples_per_run": p["samples_per_run"]}]), table="run_cost")
    return trace


def analyse(ctx, trace: pd.DataFrame) -> dict[str, pd.DataFrame]:
    from study.datasets import read_table

    aux = paths.aux_dir(ctx.device_spec, ctx.finding, ctx.data_root)
    between = read_table(aux / "between_samples.parquet")
    cov = read_table(aux / "coverage_samples.parquet")
    cost = read_table(aux / "run_cost.parquet")
    keys = ["model", "engine", "processor", "core_group"]
    tables = {"methods": methods_table(ctx.device)}
    tables["burst_sustained"] = (burst_vs_sustained(trace, ctx.params["burst_seconds"],
                                                    material=ctx.params["material_change"])
                                 if len(trace) else pd.DataFrame())
    # the cost of starting a run, in samples: a run's wall time minus its samples' time, per sample
    run_cost = None
    if len(between):
        per_sample_s = between.latency_ms.median() / 1000
        run_s = float(cost.run_seconds.iloc[0])
        run_cost = max(1.0, (run_s - per_sample_s * cost.samples_per_run.iloc[0]) / per_sample_s)
    vc = variance_components_aggregate if _is_aggregate(between) else variance_components
    tables["between_run"] = (vc(between, keys, target=ctx.params["target_rel_halfwidth"], run_cost=run_cost)
                             if len(between) else pd.DataFrame())
    # the device's run-to-run spread, pooled over the benchmarked configurations (mean of the
    # variance components), with its degrees of freedom sum(runs - 1)
    br = tables["between_run"]
    between_cv = float(np.sqrt((br.between_cv ** 2).mean())) if len(br) else 0.0
    between_df = float((br.runs - 1).sum()) if len(br) else np.inf
    c = (coverage(cov, keys, "first", "second", between_cv=between_cv, between_df=between_df)
         if len(cov) else pd.DataFrame())
    tables["coverage"] = c
    if len(c):
        n = len(c)
        over = " over per-call block means (phone)" if _is_aggregate(cov) else ""
        tables["coverage_summary"] = pd.DataFrame([
            dict(interval="order-statistic CI of the median (harness)" + over, configs=n,
                 inside=int(c.inside_ci.sum()), share=c.inside_ci.mean(), target=0.9, holds=c.inside_ci.mean() >= 0.9),
            dict(interval="rerun interval (block bootstrap, widened for the rerun)" + over, configs=n,
                 inside=int(c.inside_rerun.sum()), share=c.inside_rerun.mean(), target=0.9,
                 holds=c.inside_rerun.mean() >= 0.9),
            dict(interval=f"rerun interval + between-run spread (CV {between_cv:.1%}, {between_df:.0f} df; "
                          "Kalibera & Jones)" + over,
                 configs=n, inside=int(c.inside_pred.sum()), share=c.inside_pred.mean(), target=0.9,
                 holds=c.inside_pred.mean() >= 0.9)])
    else:
        tables["coverage_summary"] = pd.DataFrame()
    for name, t in tables.items():
        ctx.write(t, table=name)
    return tables


def _plot_sustained_trace(trace: pd.DataFrame, burst_seconds: float):
    """Every latency of the sustained run over time, with the clocks where readable."""
    from study import plotting

    inf = trace[trace.kind == "inference"]
    fig, ax = plotting.figure()
    for (m, e, pr), g in inf.groupby(["model", "engine", "processor"]):
        ax.plot(g.t_s, g.latency_ms, ".", ms=2, alpha=0.5, label=f"{m} {e} {pr}",
                color=plotting.PROCESSOR_COLORS.get(pr))
    ax.axvline(burst_seconds, color="grey", ls=":", lw=1)
    title = ("Sustained run: every benchmark_model call (its mean)" if _is_aggregate(inf)
             else "Sustained run: every inference")
    ax.set(xlabel="time since start (s)", ylabel="latency (ms)", title=title)
    ax.legend(fontsize=7, loc="upper right")
    sen = trace[trace.kind == "sensors"]
    if len(sen) and sen[["cpu_mhz_mean", "gpu_sm_mhz", "temp_max_c", "gpu_temp_c"]].notna().any().any():
        ax2 = ax.twinx()
        for col, ls in (("cpu_mhz_mean", "-"), ("gpu_sm_mhz", "--")):
            if sen[col].notna().any():
                ax2.plot(sen.t_s, sen[col], ls, color="k", lw=0.8, label=col)
        ax2.set_ylabel("clock (MHz)")
        ax2.legend(fontsize=7, loc="lower right")
    return fig


def _per_configuration(df: pd.DataFrame):
    """A figure with one x position per configuration (row of ``df``): (figure, axes, positions)."""
    from study import plotting

    fig, ax = plotting.figure()
    return fig, ax, np.arange(len(df))


def _label_configurations(ax, df: pd.DataFrame, x, ylabel: str, title: str) -> None:
    """Each position named by its model, engine and processor; the axis label, title and legend."""
    ax.set_xticks(x, df.model + " " + df.engine + " " + df.processor, rotation=20, ha="right")
    ax.set(ylabel=ylabel, title=title)
    ax.legend()


def _plot_burst_sustained(bs: pd.DataFrame):
    fig, ax, x = _per_configuration(bs)
    ax.errorbar(x - 0.1, bs.burst_median, yerr=[bs.burst_median - bs.burst_lo, bs.burst_hi - bs.burst_median],
                fmt="o", label="burst (first seconds)")
    ax.errorbar(x + 0.1, bs.sustained_median, yerr=[bs.sustained_median - bs.sustained_lo,
                                                    bs.sustained_hi - bs.sustained_median], fmt="s",
                label="sustained (second half)")
    _label_configurations(ax, bs, x, "median latency (ms), 95% CI", "Burst vs sustained")
    return fig


def _plot_between_run(br: pd.DataFrame):
    fig, ax, x = _per_configuration(br)
    ax.bar(x - 0.2, br.between_cv * 100, 0.4, label="between runs")
    ax.bar(x + 0.2, br.within_cv * 100, 0.4, label="within a run")
    _label_configurations(ax, br, x, "spread of log latency (CV, %)", "Between-run vs within-run variation")
    return fig


def _plot_coverage(cov: pd.DataFrame):
    from study import plotting

    fig, ax = plotting.figure()
    cov = cov.sort_values("median1").reset_index(drop=True)
    x = np.arange(len(cov))
    ax.vlines(x - 0.1, cov.ci_lo / cov.median1, cov.ci_hi / cov.median1, color="C0", lw=3,
              label="harness CI (run 1)")
    ax.vlines(x + 0.1, cov.rerun_lo / cov.median1, cov.rerun_hi / cov.median1, color="C1", lw=3,
              label="rerun interval (run 1)")
    ax.plot(x, cov.median2 / cov.median1, "k.", label="run 2 median")
    ax.axhline(1, color="grey", lw=0.5)
    ax.set(xlabel="configuration", ylabel="relative to run 1 median", title="Do intervals hold on a rerun?")
    ax.legend(fontsize=7)
    return fig


def plot(ctx, tables: dict[str, pd.DataFrame], trace: pd.DataFrame | None = None) -> dict[str, Any]:
    from study import plotting

    return plotting.draw_and_save(ctx, [
        ("sustained_trace", trace, lambda t: _plot_sustained_trace(t, ctx.params["burst_seconds"])),
        ("burst_sustained", tables.get("burst_sustained"), _plot_burst_sustained),
        ("between_run", tables.get("between_run"), _plot_between_run),
        ("coverage", tables.get("coverage"), _plot_coverage)])


def run(ctx) -> dict[str, Any]:
    ctx.write_fingerprint()
    trace = measure(ctx)
    tables = analyse(ctx, trace)
    figs = plot(ctx, tables, trace)
    return {"data": trace, "tables": tables, "figures": figs}


if __name__ == "__main__":
    _child_main(json.loads(sys.argv[1]))
