"""Beyond the paper: an adaptive runtime that turns the pitfalls into a measured fix (claim C11).

The runtime (``study.runtime``) serves a stream of requests on the device's candidates and
chooses each request's candidate from its own observations (finding 4's estimators, online),
with bounded exploration and re-planning when contention changes. This stage measures it in
closed loop against every static choice.

Method (stage ``adaptive_runtime``, notebook ``07_adaptive_runtime.ipynb``):

1. **Candidates**: ``engine/processor/core_group`` strings (finding 4's); on a CPU-only host
   the core groups (and engines) of the CPU. A candidate that cannot run here is placed by
   the runtime's fallback (``study.runtime.place``) and listed with the reason.
2. **Independent runs**: ``runs`` fresh processes (``python -m study.adaptive_runtime``), each
   with its own sessions, warm-up and competitors, replaying the same seeded conditions.
3. **Offline profile** (each run, idle, before the conditions): ``offline_requests`` requests
   per candidate, interleaved; the candidate with the lowest median is the *offline-profile
   choice*.
4. **Conditions**: each stationary load of ``stationary`` (``none``, ``cpu1@g0``, ``memory1@all``
   ...: finding 3's competitor processes, on for the whole condition) for
   ``stationary_seconds``, then the dynamic scenario of finding 4 (``study.scenario``: seeded
   phases of idle, CPU, memory, bursty and GPU load; the same schedule in every run) for
   ``scenario_seconds``. Competitors start once per run (paused) and are switched by signals.
5. **Closed-loop serving**: at each step every policy serves one request, in an order drawn per
   step: each static candidate (its request runs there), and the adaptive runtime (its request
   runs where its planner chooses; only that latency is fed back to it). A fresh planner per
   condition (no knowledge carried between conditions). Every request is timed (pinning
   included, outputs read back) and logged as taken; the runtime's decision time (choose +
   observe) is logged apart and added to its latency in every statistic.
6. **Policies compared** (all from served requests): every static candidate; the offline-profile
   choice (the static candidate the idle profile picked, per run); the best static candidate in
   hindsight (per condition, the static candidate with the lowest p95 over the runs, chosen
   again in every bootstrap resample); the per-step oracle (each step's fastest static request:
   a bound, the static requests of one step run at adjacent moments, not simultaneously); the
   adaptive runtime.
7. **Metrics**: p50 / p95 / p99 latency, the share of requests over ``frame_budget_ms`` (missed
   deadlines), regret against the oracle (mean, per step), the runtime's decision overhead,
   energy per request where the device exposes an energy counter (RAPL; else NaN with the
   reason). Intervals: percentile bootstrap over ``block_seconds`` blocks of condition time,
   resampled within each run (stratified by run), every policy with the same blocks.
8. **Claim C11**: per condition, p95(adaptive) / p95(best static in hindsight) against a bar
   (``1 + stationary_margin`` in stationary conditions, 1 under the dynamic scenario); the
   statistic is the largest excess over its bar across conditions, claimed below 0 (one-sided
   bootstrap p with >= 10,000 resamples: intersection-union over the conditions).
9. **Split prediction** (``split_models``): on the co-execution pair (two core groups, or CPU+GPU),
   finding 2's r*, the runtime's predicted split (``study.runtime.split``: the profiles plus the
   engine's measured overhead per split layer) and every split of ``split_ratios``, measured in
   interleaved rounds.

On a phone nothing is served (Python does not run there); the stage writes the reason.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study import paths, phone, stats
from study import scenario as S
from study.config import check_models
from study.measure import current_affinity, set_affinity
from study.schema import STAGES, ParamError

FINDING = "adaptive_runtime"
ADAPTIVE = "adaptive"
ORACLE = "oracle"
OFFLINE = "offline_profile"
HINDSIGHT = "hindsight_static"
DYNAMIC = "dynamic"
PAPER_C11 = "not in the paper: this study's own claim"
PARAMS = STAGES[FINDING]


def check_params(resolved: dict[str, Any], params: dict[str, Any]) -> None:
    check_models(FINDING, resolved["models"] + resolved["split_models"], params)
    if resolved["phase_seconds"][0] > resolved["scenario_seconds"]:
        raise ParamError(f"{FINDING}.phase_seconds: shortest phase longer than scenario_seconds")
    from study.config import device_core_groups

    groups = device_core_groups(resolved["device"])
    for load in resolved["stationary"]:
        for _, g, _ in parse_load(load):
            if groups is not None and g not in groups:
                raise ParamError(f"{FINDING}.stationary: {load!r}: core group {g!r} does not exist on "
                                 f"{resolved['device']}; it has {', '.join(groups)}")


def parse_load(text: str) -> tuple[tuple[str, str, int], ...]:
    """``none`` -> (); ``cpu2@g0`` -> (("cpu", "g0", 2),); ``cpu1@g0+memory1@all`` -> both."""
    if text == "none":
        return ()
    out = []
    for part in text.split("+"):
        kind_n, group = part.split("@")
        kind = kind_n.rstrip("0123456789")
        out.append((kind, group, int(kind_n[len(kind):] or 1)))
    return tuple(out)


def static_name(cand: str) -> str:
    return f"static:{cand}"


# =========================================================================== energy
RAPL = Path("/sys/class/powercap/intel-rapl:0/energy_uj")


def energy_reader() -> tuple[Any, str]:
    """(a function returning joules so far, or None; the reason when None)."""
    try:
        RAPL.read_text()
    except OSError as e:
        return None, (f"no energy counter readable: RAPL ({RAPL}) {type(e).__name__}; no GPU board power is "
                      f"sampled per request")
    return (lambda: int(RAPL.read_text()) / 1e6), ""


# =========================================================================== one run (a fresh process)
def _open(ctx, model: str, cand: str):
    from study.runtime import Candidate
    from study.runtime import parse as parse_cand

    c = parse_cand(cand)
    cfg = ctx.latency_config(model, c["engine"], c["processor"], c["core_group"], candidate=cand)
    threads = cfg.columns["threads"]
    cores = cfg.cores

    def prepare():
        set_affinity(cores)
        if c["engine"] == "torch":
            import torch

            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
    sess = cfg.opener()
    prepare()
    for _ in range(max(1, ctx.settings.warmup)):
        sess.run()
    return Candidate(cand, sess, cores, prepare, dict(cfg.columns))


def plan(ctx, model: str) -> tuple[list[str], list[dict]]:
    """(candidates that run here, absent rows: the reason and where the runtime places them)."""
    from study.engines import get_engine
    from study.runtime import parse as parse_cand
    from study.runtime import place

    groups = ctx.device.core_groups()
    ok, absent = [], []
    spec = ctx.model(model)
    for cand in ctx.params["candidates"]:
        c = parse_cand(cand)
        why = get_engine(c["engine"]).availability(ctx.device, c["processor"], spec)
        if why is None and c["core_group"] not in groups:
            why = f"core group {c['core_group']!r} not on this device (groups: {sorted(groups)})"
        (absent.append(dict(model=model, candidate=cand, reason=why)) if why else ok.append(cand))
    for a in absent:
        alt, text = place(a["candidate"], a["reason"], ok)
        a.update(placed_on=alt or "", placement=text)
    return ok, absent


def run_one(spec: dict) -> None:
    """One independent run: offline profile, every condition served by every policy; every record
    appended to the raw log as taken, a ``run_done`` record last."""
    from study.common import context
    from study.competitors import CompetitorPool, available_kinds
    from study.measure import RawLog
    from study.runtime import PlannerSettings

    ctx = context(FINDING, {"device": spec["device"], "profile": spec["profile"], "seed": spec["seed"],
                            "harness": spec["harness"], **spec["params"]})
    p = ctx.params
    log = RawLog(Path(spec["log"]))
    run_id, key = spec["run_id"], spec["key"]
    rec0 = {"run_id": run_id, "key": key}
    groups = {k: list(v) for k, v in ctx.device.core_groups().items()}
    original = current_affinity()
    read_energy, energy_why = energy_reader()
    reasons = available_kinds(ctx.device)
    conditions = [(name, [S.Segment(0, 0, "stationary", 0.0, p["stationary_seconds"], parse_load(name))])
                  for name in p["stationary"]]
    kinds = [k for k in p["phase_kinds"] if not (S.PHASE_NEEDS[k] and reasons.get(S.PHASE_NEEDS[k]))]
    comp_groups = [g for g in p["competitor_groups"] if g in groups]
    dyn = S.make_schedule(p["scenario_seconds"], [ctx.seed, p["scenario_seed"]], kinds, phase_s=p["phase_seconds"],
                          burst_s=p["burst_seconds"], cpu_n=p["cpu_competitors"], memory_n=p["memory_competitors"],
                          gpu_n=p["gpu_competitors"], groups=comp_groups)
    conditions.append((DYNAMIC, dyn))
    skipped = [dict(condition=n, reason=f"{k} competitors: {reasons[k]}") for n, segs in conditions
               for s in segs for k, _, _ in s.load if reasons.get(k)]
    bad = {s["condition"] for s in skipped}
    conditions = [(n, segs) for n, segs in conditions if n not in bad]
    log.append({**rec0, "type": "meta", "pid": os.getpid(), "t_wall": time.time(), "energy": energy_why or "RAPL",
                "skipped_conditions": skipped, "phase_kinds": kinds, "dropped_phase_kinds":
                sorted(set(p["phase_kinds"]) - set(kinds)),
                "schedule": [s.as_row() for s in dyn]})
    rng = np.random.default_rng([ctx.seed, p["scenario_seed"], int(run_id.rsplit("-", 1)[-1]), 7])
    settings = PlannerSettings.from_params({**p, "alpha": p["ewma_alpha"]})
    try:
        for model in p["models"]:
            ok, absent = plan(ctx, model)
            for a in absent:
                log.append({**rec0, "type": "absent", **a})
            cands = {}
            for cand in ok:
                set_affinity(original)
                try:
                    cands[cand] = _open(ctx, model, cand)
                except Exception as e:  # noqa: BLE001 - the candidate is absent with the reason
                    log.append({**rec0, "type": "absent", "model": model, "candidate": cand,
                                "reason": f"open failed: {type(e).__name__}: {e}"[:400], "placed_on": "",
                                "placement": "left out"})
            if not cands:
                continue
            # the offline profile: idle, interleaved
            off = {c: [] for c in cands}
            for _ in range(p["offline_requests"]):
                for i in rng.permutation(len(cands)):
                    c = list(cands)[i]
                    t0 = time.perf_counter_ns()
                    cands[c].run()
                    off[c].append((time.perf_counter_ns() - t0) / 1e6)
            medians = {c: float(np.median(v)) for c, v in off.items()}
            log.append({**rec0, "type": "offline", "model": model, "latency_ms": off, "median_ms": medians,
                        "choice": min(medians, key=medians.get)})
            with CompetitorPool(device=ctx.device) as pool:
                ctl = S.LoadController(pool, lambda g: groups[g])
                needs: dict = {}
                for _, segs in conditions:
                    for k, v in S.competitor_needs(segs).items():
                        needs[k] = max(needs.get(k, 0), v)
                try:
                    ctl.prepare(needs)
                    for cond, segs in conditions:
                        _serve_condition(ctx, model, cond, segs, cands, ctl, log, rec0, rng, settings, read_energy)
                finally:
                    ctl.resume_all()
            for c in cands.values():
                c.close()
    finally:
        set_affinity(original)
    log.append({**rec0, "type": "run_done", "t_wall": time.time()})
    log.close()


def _serve_condition(ctx, model, cond, segs, cands, ctl, log, rec0, rng, settings, read_energy) -> None:
    from study.runtime import AdaptiveRuntime, Planner

    planner = Planner(list(cands), settings)
    runtime = AdaptiveRuntime(list(cands.values()), planner)
    policies = [static_name(c) for c in cands] + [ADAPTIVE]
    clock = time.perf_counter_ns
    t0 = clock()
    step = 0
    energy = read_energy or (lambda: float("nan"))
    for seg in segs:
        if (clock() - t0) / 1e9 >= seg.end_s:
            continue
        ctl.apply(seg.load)
        ctx_row = seg.as_row()
        while (clock() - t0) / 1e9 < seg.end_s:
            for pos, i in enumerate(rng.permutation(len(policies))):
                pol = policies[i]
                t_s = (clock() - t0) / 1e9
                e0 = energy()
                if pol == ADAPTIVE:
                    s = runtime.serve()
                    cand, why, lat, dec, fb = s.candidate, s.why, s.latency_ms, s.decision_ms, s.fallback
                else:
                    cand = pol.split(":", 1)[1]
                    a = clock()
                    cands[cand].run()
                    lat, why, dec, fb = (clock() - a) / 1e6, "static", 0.0, ""
                e1 = energy()
                log.append({**rec0, "type": "request", "model": model, "condition": cond, "step": step, "pos": pos,
                            "policy": pol, "candidate": cand, "why": why, "t_s": t_s, "latency_ms": lat,
                            "decision_ms": dec, "energy_j": e1 - e0, "fallback": fb, **ctx_row})
            step += 1
    for ev in planner.events:
        log.append({**rec0, "type": "planner_event", "model": model, "condition": cond,
                    **{("event" if k == "type" else k): v for k, v in ev.items()}})
    log.append({**rec0, "type": "condition_done", "model": model, "condition": cond, "steps": step,
                "move_bound": planner.move_bound()})


# =========================================================================== split prediction
def measure_splits(ctx, log, key: str) -> None:
    """Finding 2's r*, the runtime's predicted split and the grid, per model, on the pair."""
    import contextlib

    from study import coexec
    from study.mulayer_overhead import model_input
    from study.models.zoo import build
    from study.runtime import split as SP

    p = ctx.params
    done = {r["model"] for r in log.records("split") if r.get("key") == key}
    todo = [m for m in p["split_models"] if m not in done]
    if not todo:
        return
    groups = ctx.device.core_groups()
    gpu_why = ctx.device.processor("gpu").backend_reason("cuda")
    original = current_affinity()
    with contextlib.ExitStack() as stack:
        if gpu_why is None:
            pair = stack.enter_context(coexec.CudaPair(cpu_threads=len(groups["all"])))
            cores_a = groups["all"]
        elif "g0" in groups and "g1" in groups:
            pair = stack.enter_context(coexec.CpuWorkerPair(groups["g0"], groups["g1"], names=("g0", "g1")))
            cores_a = groups["g0"]
        else:
            log.append({"type": "split_absent", "key": key, "reason": f"no pair: {gpu_why}; no g0 + g1 groups"})
            return
        try:
            for m in todo:
                set_affinity(cores_a)
                rt = pair.load(m, build(m, 0), model_input(m, p["split_input_size"], 0))
                model, r_star, r_pred = SP.predict(pair, rt, p["profile_runs"], p["calib_runs"])
                ratios = sorted(set(p["split_ratios"]) | {r_star, r_pred})
                sessions = {r: coexec.CoexecSession(pair, rt, "operator", r) for r in ratios}
                for s in sessions.values():
                    s.run()
                lat: dict[float, list[float]] = {r: [] for r in ratios}
                rng = np.random.default_rng([ctx.seed, 11])
                for _ in range(p["split_runs"]):
                    for i in rng.permutation(len(ratios)):
                        t0 = time.perf_counter_ns()
                        sessions[ratios[i]].run()
                        lat[ratios[i]].append((time.perf_counter_ns() - t0) / 1e6)
                log.append({"type": "split", "key": key, "model": m, "pair": pair.name, "pair_kind": pair.kind,
                            "input_size": p["split_input_size"], "r_star": r_star, "r_pred": r_pred,
                            "grid": list(p["split_ratios"]), "latency_ms": {str(r): v for r, v in lat.items()},
                            "predicted_ms": {f"{r:.2f}": t for r, t in model.curve(np.round(np.linspace(0, 1, 21), 4))},
                            "calibration": model.calibration})
                pair.runtimes.pop(m, None)
        finally:
            set_affinity(original)


# =========================================================================== measure
def _key(ctx) -> str:
    return hashlib.sha256(json.dumps({"params": ctx.params, "seed": ctx.seed, "env": ctx.env,
                                      "harness": ctx.settings.__dict__}, sort_keys=True, default=str)
                          .encode()).hexdigest()[:16]


def run_child(spec: dict, timeout: float = 3600) -> None:
    from study import lifetime

    spec = {**spec, "parent": os.getpid()}
    r = subprocess.run([sys.executable, "-m", "study.adaptive_runtime", json.dumps(spec)], capture_output=True,
                       text=True, timeout=timeout, cwd=str(paths.ROOT), **lifetime.popen_kwargs())
    if r.returncode != 0:
        raise RuntimeError(f"run {spec['run_id']} failed: {r.stderr.strip()[-1500:]}")


def measure_phone(ctx) -> pd.DataFrame:
    from study.runtime import capabilities

    rows = [dict(part="capability", **r) for r in capabilities(ctx.device)]
    data = tidy(pd.DataFrame(rows))
    ctx.write(data)
    return data


def measure(ctx) -> pd.DataFrame:
    """``runs`` independent runs in fresh processes (complete ones of the same parameters and
    environment are kept from the raw log: a killed stage resumes at the first incomplete run),
    then the split prediction in this process."""
    if phone.not_measurable(ctx, FINDING):
        return measure_phone(ctx)
    log = ctx.raw_log()
    key = _key(ctx)
    for i in range(ctx.params["runs"]):
        run_id = f"{key}-{i}"
        if any(r.get("run_id") == run_id for r in log.records("run_done")):
            continue
        log.close()
        run_child({"device": ctx.device_spec, "profile": ctx.profile, "seed": ctx.seed,
                   "harness": ctx.settings.__dict__, "params": ctx.params, "log": str(log.path),
                   "run_id": run_id, "key": key})
    measure_splits(ctx, log, key)
    data = frame_from_log(log, key, ctx.params["runs"])
    from study.runtime import capabilities

    data = tidy(pd.concat([data, pd.DataFrame([dict(part="capability", **r) for r in capabilities(ctx.device)])],
                          ignore_index=True))
    ctx.write(data)
    log.mark_complete()
    log.close()
    return data


def frame_from_log(log, key: str, runs: int) -> pd.DataFrame:
    """The tidy rows of the complete runs of ``key`` (records of a run without ``run_done`` are
    left out: a run cut by a kill is measured again) and the split records."""
    recs = log.records()
    done = {r["run_id"] for r in recs if r.get("type") == "run_done" and r.get("key") == key}
    rows = []
    for r in recs:
        t = r.get("type")
        if t == "split" and r.get("key") == key:
            for ratio, v in r["latency_ms"].items():
                for x in v:
                    rows.append(dict(part="split", model=r["model"], pair=r["pair"], pair_kind=r["pair_kind"],
                                     input_size=r["input_size"], ratio=float(ratio), latency_ms=x,
                                     r_star=r["r_star"], r_pred=r["r_pred"], in_grid=float(ratio) in r["grid"],
                                     step_overhead_ms=r["calibration"].get("step_overhead_ms")))
            for ratio, v in r["predicted_ms"].items():
                rows.append(dict(part="split_model", model=r["model"], pair=r["pair"], ratio=float(ratio),
                                 predicted_ms=v))
            continue
        if r.get("run_id") not in done:
            continue
        if t == "request":
            rows.append({**{k: v for k, v in r.items() if k not in ("type", "key")}, "part": "request"})
        elif t == "offline":
            for c, v in r["latency_ms"].items():
                for x in v:
                    rows.append(dict(part="offline", run_id=r["run_id"], model=r["model"], candidate=c, latency_ms=x,
                                     offline_choice=r["choice"]))
        elif t == "absent":
            rows.append(dict(part="absent", run_id=r["run_id"], model=r.get("model"), candidate=r.get("candidate"),
                             reason=r.get("reason"), placed_on=r.get("placed_on"), placement=r.get("placement")))
        elif t == "planner_event":
            rows.append(dict(part="planner_event", run_id=r["run_id"], model=r["model"], condition=r["condition"],
                             event=r.get("event"), request=r.get("request"),
                             candidate=r.get("candidate"), reason=json.dumps({k: v for k, v in r.items() if k not in
                                                                              ("run_id", "key", "type")},
                                                                             default=str)))
        elif t == "meta":
            rows.append(dict(part="meta", run_id=r["run_id"], reason=r.get("energy"),
                             skipped=json.dumps(r.get("skipped_conditions")),
                             schedule=json.dumps(r.get("schedule"))))
        elif t == "condition_done":
            rows.append(dict(part="condition_done", run_id=r["run_id"], model=r["model"], condition=r["condition"],
                             steps=r["steps"], move_bound=r["move_bound"]))
    return pd.DataFrame(rows)


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    for c in ("part", "model", "candidate", "policy", "condition", "reason", "run_id"):
        if c not in df.columns:
            df[c] = pd.Series(dtype=object)
    if "burst_on" in df.columns:
        df["burst_on"] = df["burst_on"].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v))
                                            else bool(v)).astype("boolean")
    for c in df.columns:
        if df[c].dtype == object and c != "burst_on":
            df[c] = df[c].map(lambda v: v if v is None or isinstance(v, (str, bool)) or
                              (isinstance(v, float) and np.isnan(v)) else str(v))
    return df.reset_index(drop=True)


# =========================================================================== analyse
def _part(data: pd.DataFrame, part: str) -> pd.DataFrame:
    return data[data["part"] == part].reset_index(drop=True) if "part" in data.columns else data.iloc[0:0]


def wide_steps(req: pd.DataFrame, offline_choice: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per (run, step) of one model and condition: each policy's end-to-end latency
    (the adaptive runtime's decision time added), the oracle (the step's fastest static request)
    and the offline-profile choice's request; ``t_s``, ``block`` and the segment's context."""
    r = req.assign(e2e_ms=req.latency_ms + req.decision_ms.fillna(0.0))
    w = r.pivot_table(index=["run_id", "step"], columns="policy", values="e2e_ms", aggfunc="first")
    statics = [c for c in w.columns if str(c).startswith("static:")]
    w = w.dropna(subset=statics + ([ADAPTIVE] if ADAPTIVE in w.columns else []))
    w[ORACLE] = w[statics].min(axis=1)
    if offline_choice:
        runs = w.index.get_level_values("run_id")
        w[OFFLINE] = [w.loc[i, static_name(offline_choice[rid])] if static_name(offline_choice.get(rid, "")) in w
                      else np.nan for i, rid in zip(w.index, runs)]
    ctx = r.groupby(["run_id", "step"]).agg(t_s=("t_s", "min"), phase_kind=("phase_kind", "first"),
                                            segment=("segment", "first"), load=("load", "first"),
                                            seg_start_s=("seg_start_s", "first"), seg_end_s=("seg_end_s", "first"),
                                            burst_on=("burst_on", "first"))
    return w.join(ctx).reset_index()


def _blocks(w: pd.DataFrame, block_seconds: float) -> list[list[np.ndarray]]:
    """Per run, the row indices of each block of ``block_seconds`` of condition time."""
    out = []
    for _, g in w.groupby("run_id", sort=True):
        b = np.floor(g.t_s.to_numpy(float) / block_seconds).astype(int)
        out.append([g.index.to_numpy()[b == k] for k in np.unique(b)])
    return out


def _resample(blocks: list[list[np.ndarray]], rng) -> np.ndarray:
    """Row indices of one stratified block-bootstrap resample (blocks drawn within each run)."""
    parts = []
    for run in blocks:
        for i in rng.integers(0, len(run), len(run)):
            parts.append(run[i])
    return np.concatenate(parts)


def policy_columns(w: pd.DataFrame) -> list[str]:
    statics = sorted(c for c in w.columns if str(c).startswith("static:"))
    return statics + [c for c in (OFFLINE, ADAPTIVE, ORACLE) if c in w.columns]


def _metrics(m: np.ndarray, budget: float) -> dict[str, np.ndarray]:
    q = np.nanpercentile(m, [50, 95, 99], axis=0)
    return {"p50": q[0], "p95": q[1], "p99": q[2], "miss_pct": np.nanmean(m > budget, axis=0) * 100}


def summary_table(w: pd.DataFrame, budget: float, block_seconds: float, n_boot: int, seed: int,
                  energy: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per policy: p50/p95/p99 (ms), missed deadlines (%), mean regret against the oracle (ms),
    each with a 95% stratified block-bootstrap interval; the hindsight-best static appended."""
    cols = policy_columns(w)
    m = w[cols].to_numpy(float)
    regret = m - w[[ORACLE]].to_numpy(float)
    blocks = _blocks(w, block_seconds)
    rng = np.random.default_rng(seed)
    boot = {k: [] for k in ("p50", "p95", "p99", "miss_pct", "regret")}
    for _ in range(n_boot):
        idx = _resample(blocks, rng)
        met = _metrics(m[idx], budget)
        for k in ("p50", "p95", "p99", "miss_pct"):
            boot[k].append(met[k])
        boot["regret"].append(np.nanmean(regret[idx], axis=0))
    est = {**_metrics(m, budget), "regret": np.nanmean(regret, axis=0)}
    statics = [i for i, c in enumerate(cols) if c.startswith("static:")]
    hs = statics[int(np.argmin(est["p95"][statics]))]
    rows = []
    for i, c in enumerate(cols + [HINDSIGHT]):
        j = hs if c == HINDSIGHT else i
        row = {"policy": c, "candidate": cols[j].split(":", 1)[1] if cols[j].startswith("static:") else "",
               "n": int(np.isfinite(m[:, j]).sum()), "runs": int(w.run_id.nunique())}
        for k in ("p50", "p95", "p99", "miss_pct", "regret"):
            if c == HINDSIGHT:   # chosen again in every resample
                b = np.array([bb[statics][int(np.argmin(p95[statics]))] for bb, p95 in zip(boot[k], boot["p95"])])
            else:
                b = np.array([bb[j] for bb in boot[k]])
            row[k] = float(est[k][j])
            row[f"{k}_lo"], row[f"{k}_hi"] = (float(np.nanpercentile(b, 2.5)), float(np.nanpercentile(b, 97.5))) \
                if len(b) else (np.nan, np.nan)
        rows.append(row)
    df = pd.DataFrame(rows).rename(columns={"regret": "regret_ms", "regret_lo": "regret_ms_lo",
                                            "regret_hi": "regret_ms_hi"})
    return df


def c11_resamples(wides: dict[str, pd.DataFrame], bars: dict[str, float], block_seconds: float, n_boot: int,
                  seed: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Per condition, the ratio p95(adaptive) / p95(best static in hindsight) and its resamples
    (blocks within runs; the hindsight best chosen again in each)."""
    est, reps = {}, {}
    rng = np.random.default_rng(seed)
    for cond, w in wides.items():
        statics = [c for c in w.columns if str(c).startswith("static:")]
        m = w[statics + [ADAPTIVE]].to_numpy(float)
        q = np.nanpercentile(m, 95, axis=0)
        est[cond] = float(q[-1] / q[:-1].min())
        blocks = _blocks(w, block_seconds)
        r = np.empty(n_boot)
        for b in range(n_boot):
            qq = np.nanpercentile(m[_resample(blocks, rng)], 95, axis=0)
            r[b] = qq[-1] / qq[:-1].min()
        reps[cond] = r
    return est, reps


def c11_table(est: dict[str, float], reps: dict[str, np.ndarray], bars: dict[str, float]) -> pd.DataFrame:
    rows = []
    for cond, r in reps.items():
        lo, hi = np.nanpercentile(r, [2.5, 97.5])
        rows.append(dict(condition=cond, kind="dynamic" if cond == DYNAMIC else "stationary", ratio=est[cond],
                         ratio_lo=float(lo), ratio_hi=float(hi), bar=bars[cond], excess=est[cond] - bars[cond],
                         p_below_bar=stats.boot_p(r, bars[cond], "less"), n_boot=int(len(r))))
    return pd.DataFrame(rows)


CLAIM_COLUMNS = ["claim", "form", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "n", "paper_value",
                 "verdict", "reason", "primary", "threshold", "direction", "margin", "runs"]


def claims(est: dict[str, float], reps: dict[str, np.ndarray], bars: dict[str, float], p: dict[str, Any],
           where: str, n_runs: int) -> pd.DataFrame:
    from study import claims as C

    claim = C.CLAIMS["C11"]
    margin = p["stationary_margin"]
    base = dict(claim="C11", form="paper", primary=True, paper_value=PAPER_C11, threshold=0.0, direction="less",
                margin=claim.margin, statistic=claim.statistic,
                text=(f"The adaptive runtime's p95 latency is never more than {margin:.0%} worse than the best static "
                      f"candidate in hindsight in any stationary condition, and lower than it under dynamic "
                      f"contention: max over conditions of p95(adaptive)/p95(hindsight best) - bar < 0"))
    stationary = [c for c in reps if c != DYNAMIC]
    if DYNAMIC not in reps or not stationary or n_runs < 1:
        return pd.DataFrame([{**base, "effect": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "p_value": np.nan, "n": 0,
                              "verdict": "not measurable",
                              "reason": f"needs the dynamic scenario and at least one stationary condition ({where})"}],
                            columns=CLAIM_COLUMNS)
    conds = list(reps)
    mat = np.column_stack([reps[c] - bars[c] for c in conds])
    worst = mat.max(axis=1)
    effect = max(est[c] - bars[c] for c in conds)
    lo, hi = (float(x) for x in np.nanpercentile(worst, [2.5, 97.5]))
    pval = stats.boot_p(worst, 0.0, "less")
    v = C.ci_verdict("less", lo, hi, 0.0, claim.margin)
    if v == "reproduced" and not pval < 0.05:
        v = "inconclusive"
    per = "; ".join(f"{c}: {est[c]:.3f} (bar {bars[c]:g})" for c in conds)
    return pd.DataFrame([{**base, "effect": effect, "ci_lo": lo, "ci_hi": hi, "p_value": pval, "n": n_runs,
                          "runs": n_runs, "verdict": v,
                          "reason": (f"p95 ratio adaptive / best static in hindsight per condition: {per}; largest "
                                     f"excess over its bar {effect:+.3f} [{lo:+.3f}, {hi:+.3f}]; one-sided "
                                     f"stratified block-bootstrap p {pval:.2g} ({len(worst)} resamples of "
                                     f"{p['block_seconds']:g}-s blocks within each of {n_runs} independent runs, the "
                                     f"hindsight best chosen again in each); {where}")}], columns=CLAIM_COLUMNS)


def split_table(data: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per model: r*, the runtime's predicted split and the grid best, with medians and the
    predicted split's latency over the grid best's (bootstrap CI of the ratio of medians)."""
    sp = _part(data, "split")
    rows = []
    for m, g in sp.groupby("model", sort=False):
        med = g.groupby("ratio").latency_ms.median()
        grid = g[g.in_grid.astype(bool)].groupby("ratio").latency_ms.median()
        r_grid = float(grid.idxmin())
        r_pred, r_star = float(g.r_pred.iloc[0]), float(g.r_star.iloc[0])
        a = g[g.ratio == r_pred].latency_ms.to_numpy(float)
        b = g[g.ratio == r_grid].latency_ms.to_numpy(float)
        rel, lo, hi = stats.ratio_of_medians_ci(a, b, n_boot=n_boot, seed=seed)
        rows.append(dict(model=m, pair=g.pair.iloc[0], input_size=int(g.input_size.iloc[0]), r_star=r_star,
                         t_r_star_ms=float(med[r_star]), r_pred=r_pred, t_r_pred_ms=float(med[r_pred]),
                         r_grid=r_grid, t_r_grid_ms=float(med[r_grid]), pred_over_grid=float(rel),
                         pred_over_grid_lo=float(lo), pred_over_grid_hi=float(hi),
                         r_star_over_grid=float(med[r_star] / med[r_grid]),
                         step_overhead_ms=float(g.step_overhead_ms.iloc[0]), n=int(len(a)),
                         within_5pct=bool(med[r_pred] <= 1.05 * med[r_grid])))
    return pd.DataFrame(rows)


def analyse(ctx, data: pd.DataFrame) -> dict[str, pd.DataFrame]:
    p = ctx.params
    seed = int(getattr(ctx, "seed", 0))
    req = _part(data, "request")
    off = _part(data, "offline")
    absent = _part(data, "absent")
    caps = _part(data, "capability")
    tables: dict[str, pd.DataFrame] = {"capabilities": caps[[c for c in ("dimension", "choosable", "options", "reason")
                                                             if c in caps.columns]].reset_index(drop=True),
                                       "absent": absent.drop_duplicates(["model", "candidate"]) if len(absent)
                                       else absent}
    summaries, wides, bars = [], {}, {}
    n_runs = int(req.run_id.nunique()) if len(req) else 0
    primary = p["models"][0]
    for (model, cond), g in (req.groupby(["model", "condition"], sort=False) if len(req) else []):
        choice = off[off.model == model].groupby("run_id").offline_choice.first().to_dict() if len(off) else {}
        w = wide_steps(g, choice)
        s = summary_table(w, p["frame_budget_ms"], p["block_seconds"], p["n_boot"], seed)
        summaries.append(s.assign(model=model, condition=cond))
        if model == primary:
            wides[cond] = w
            bars[cond] = 1.0 if cond == DYNAMIC else 1.0 + p["stationary_margin"]
    tables["summary"] = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame()
    if len(req):
        a = req[req.policy == ADAPTIVE]
        tables["adaptive_choices"] = (a.groupby(["model", "condition", "candidate", "why"]).size()
                                      .rename("requests").reset_index())
        tables["overhead"] = (a.groupby(["model", "condition"])
                              .agg(decision_ms_mean=("decision_ms", "mean"),
                                   decision_ms_p99=("decision_ms", lambda x: float(np.percentile(x, 99))),
                                   latency_ms_median=("latency_ms", "median"), requests=("decision_ms", "size"))
                              .reset_index())
        tables["overhead"]["decision_share_pct"] = (tables["overhead"].decision_ms_mean
                                                    / tables["overhead"].latency_ms_median * 100)
        e = req.groupby(["model", "condition", "policy"]).energy_j.mean().rename("energy_j_per_request").reset_index()
        meta = _part(data, "meta")
        why = str(meta.reason.iloc[0]) if len(meta) else ""
        e["energy_source"] = why if e.energy_j_per_request.isna().all() else "RAPL package counter (competitors included)"
        tables["energy"] = e
        ev = _part(data, "planner_event")
        tables["replans"] = (ev.groupby(["model", "condition", "event"]).size().rename("count").reset_index()
                             if len(ev) else pd.DataFrame(columns=["model", "condition", "event", "count"]))
        tables["regret_trace"] = (wides[DYNAMIC].assign(regret_ms=lambda d: d[ADAPTIVE] - d[ORACLE])
                                  [["run_id", "step", "t_s", "phase_kind", "segment", "seg_start_s", "seg_end_s",
                                    "burst_on", "regret_ms", ADAPTIVE, ORACLE]] if DYNAMIC in wides else pd.DataFrame())
        cdf = []
        for cond, w in wides.items():
            for pol in policy_columns(w):
                cdf.append(pd.DataFrame({"condition": cond, "policy": pol, "e2e_ms": np.sort(w[pol].dropna())}))
        tables["cdf"] = pd.concat(cdf, ignore_index=True) if cdf else pd.DataFrame()
    else:
        for k in ("adaptive_choices", "overhead", "energy", "replans", "regret_trace", "cdf"):
            tables[k] = pd.DataFrame()
    est, reps = c11_resamples(wides, bars, p["block_seconds"], stats.p_resamples(p["n_boot"]), seed + 1) if wides \
        else ({}, {})
    tables["c11_conditions"] = c11_table(est, reps, bars) if reps else pd.DataFrame()
    cands = sorted(set(req.candidate)) if len(req) else []
    where = (f"model {primary}; candidates served: {', '.join(cands) or 'none'}"
             + ("; absent: " + "; ".join(f"{r.candidate}: {r.reason}" for r in tables["absent"].itertuples())
                if len(tables["absent"]) else ""))
    if phone.not_measurable(ctx, FINDING):
        why = caps.reason.iloc[0] if len(caps) else "no Python on a phone"
        tables["claims"] = pd.DataFrame([dict(claim="C11", form="paper", primary=True, paper_value=PAPER_C11,
                                              verdict="not measurable", reason=why, effect=np.nan, ci_lo=np.nan,
                                              ci_hi=np.nan, p_value=np.nan, n=0)])
    else:
        tables["claims"] = claims(est, reps, bars, p, where, n_runs)
    tables["split"] = split_table(data, seed=seed) if len(_part(data, "split")) else pd.DataFrame()
    sp = _part(data, "split")
    tables["split_grid"] = (sp[sp.in_grid.astype(bool)].groupby(["model", "ratio"]).latency_ms.median()
                            .rename("median_ms").reset_index() if len(sp) else pd.DataFrame())
    tables["split_model"] = _part(data, "split_model")[["model", "ratio", "predicted_ms"]] \
        if len(_part(data, "split_model")) else pd.DataFrame()
    for name, df in tables.items():
        ctx.write(df, table=name)
    return tables


# =========================================================================== plot
PHASE_COLORS = {"idle": None, "cpu": "#C44E52", "memory": "#8172B3", "burst": "#DD8452", "gpu": "#55A868"}


def _style(pol: str) -> dict[str, Any]:
    if pol == ADAPTIVE:
        return dict(color="#C44E52", lw=2.0, ls="-")
    if pol == ORACLE:
        return dict(color="k", lw=1.2, ls="--")
    if pol == OFFLINE:
        return dict(color="#4C72B0", lw=1.2, ls=":")
    return dict(lw=0.9, ls="-", alpha=0.8)


def _plot_latency_cdf(cdf: pd.DataFrame, summ: pd.DataFrame | None):
    """Each condition's latency CDF per policy; the best static candidate in hindsight named."""
    from matplotlib.ticker import NullFormatter

    from study import plotting

    conds = list(dict.fromkeys(cdf.condition))
    ncol = min(len(conds), 2)
    nrow = int(np.ceil(len(conds) / ncol))
    fig, axes = plotting.figure(plotting.WIDTH, 2.6 * nrow + 0.6, nrows=nrow, ncols=ncol, squeeze=False)
    for ax, cond in zip(axes.flat, conds):
        g = cdf[cdf.condition == cond]
        hs = ""
        if summ is not None and len(summ):
            h = summ[(summ.condition == cond) & (summ.policy == HINDSIGHT)]
            hs = h.candidate.iloc[0] if len(h) else ""
        for pol, gg in g.groupby("policy", sort=False):
            y = np.arange(1, len(gg) + 1) / len(gg)
            label = pol + (" (best in hindsight)" if pol == static_name(hs) else "")
            ax.step(gg.e2e_ms, y, where="post", label=label, **_style(pol))
        ax.axhline(0.95, color="grey", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(cond, fontsize=8, loc="left")
        ax.set_xlabel("request latency (ms, log)", fontsize=7)
        ax.set_ylabel("share of requests", fontsize=7)
        ax.legend(fontsize=5, loc="lower right")
    for ax in list(axes.flat)[len(conds):]:
        ax.set_visible(False)
    fig.suptitle("Latency CDF per policy and condition (dotted: p95)", fontsize=10)
    fig.tight_layout()
    return fig


def _plot_regret_time(rt: pd.DataFrame):
    """The adaptive runtime's regret against the per-step oracle over the scenario, per run,
    over the first run's load phases."""
    from matplotlib.patches import Patch

    from study import plotting

    fig, ax = plotting.figure()
    first = rt[rt.run_id == rt.run_id.iloc[0]]
    segs = first.groupby("segment").agg(t0=("seg_start_s", "first"), t1=("seg_end_s", "first"),
                                        kind=("phase_kind", "first"), on=("burst_on", "first")).reset_index()
    for r in segs.itertuples():
        color = PHASE_COLORS.get(r.kind)
        if color is None or (r.kind == "burst" and not (r.on is not None and not pd.isna(r.on) and bool(r.on))):
            continue
        ax.axvspan(r.t0, r.t1, color=color, alpha=0.12, lw=0)
    for i, (rid, g) in enumerate(rt.groupby("run_id", sort=True)):
        g = g.sort_values("t_s")
        ax.plot(g.t_s, g.regret_ms.rolling(9, min_periods=1, center=True).median(), lw=0.9,
                label=f"run {i + 1}")
    ax.axhline(0, color="k", lw=0.6)
    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(color=c, alpha=0.3, label=f"{k} phase") for k, c in PHASE_COLORS.items() if c]
    ax.legend(handles=handles, fontsize=6, ncol=3, loc="upper right")
    ax.set(xlabel="time since the dynamic scenario's start (s)",
           ylabel="adaptive - oracle (ms, rolling median of 9)",
           title="Regret of the adaptive runtime against the per-step oracle")
    return fig


def _plot_split(sp: pd.DataFrame, sm: pd.DataFrame | None, sg: pd.DataFrame | None):
    """Per model: the runtime's split model T(r), the measured grid, and the grid-best, profile
    and runtime split ratios."""
    from study import plotting

    fig, axes = plotting.figure(plotting.WIDTH, 2.4 * int(np.ceil(len(sp) / 2)) + 0.6,
                                nrows=int(np.ceil(len(sp) / 2)), ncols=min(2, len(sp)), squeeze=False)
    for ax, r in zip(axes.flat, sp.itertuples()):
        if sm is not None and len(sm):
            c = sm[sm.model == r.model].sort_values("ratio")
            ax.plot(c.ratio, c.predicted_ms, color="#8C8C8C", lw=1, label="runtime's model T(r)")
        if sg is not None and len(sg):
            g = sg[sg.model == r.model].sort_values("ratio")
            ax.plot(g.ratio, g.median_ms, ".-", color="k", lw=0.8, ms=4, alpha=0.6, label="measured (grid)")
        for rr, t, lab, mk, col in ((r.r_grid, r.t_r_grid_ms, "grid best", "o", "k"),
                                     (r.r_star, r.t_r_star_ms, "profile r*", "s", "#4C72B0"),
                                     (r.r_pred, r.t_r_pred_ms, "runtime's split", "*", "#C44E52")):
            ax.plot([rr], [t], mk, color=col, ms=8 if mk == "*" else 6, label=f"{lab} {rr:.2f}: {t:.1f} ms")
        ax.set_title(f"{r.model} ({r.pair})", fontsize=8, loc="left")
        ax.set(xlabel="share on b (r)", ylabel="latency (ms, median)")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(sp):]:
        ax.set_visible(False)
    fig.suptitle("Predicted vs grid-best co-execution split", fontsize=10)
    return fig


def _plot_not_measured(caps: pd.DataFrame | None):
    from study import plotting

    fig, ax = plotting.figure()
    why = caps.reason.iloc[0] if caps is not None and len(caps) else "nothing served"
    ax.text(0.5, 0.5, f"not measured here:\n{why}", ha="center", va="center", wrap=True, fontsize=8)
    ax.set_axis_off()
    return fig


def plot(ctx, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    from study import plotting

    figs = plotting.draw_and_save(ctx, [
        ("latency_cdf", tables.get("cdf"), lambda cdf: _plot_latency_cdf(cdf, tables.get("summary"))),
        ("regret_time", tables.get("regret_trace"), _plot_regret_time),
        ("split", tables.get("split"),
         lambda sp: _plot_split(sp, tables.get("split_model"), tables.get("split_grid")))])
    if not figs:
        figs["latency_cdf"] = _plot_not_measured(tables.get("capabilities"))
        ctx.save(figs["latency_cdf"], "latency_cdf")
    return figs


def paper_panel(ax, tables: dict[str, pd.DataFrame]) -> bool:
    """The report's facet: each condition's p95 ratio (adaptive / best static in hindsight) with its CI and bar."""
    c = tables.get("c11_conditions")
    if c is None or c.empty:
        return False
    x = np.arange(len(c))
    ax.errorbar(x, c.ratio, yerr=[c.ratio - c.ratio_lo, c.ratio_hi - c.ratio], fmt="o", color="#C44E52", capsize=3)
    for xi, bar in zip(x, c.bar):
        ax.plot([xi - 0.3, xi + 0.3], [bar, bar], color="#777777", ls=":", lw=1)
    ax.set_xticks(x, c.condition, rotation=30, ha="right", fontsize=7)
    return True


def run(ctx) -> dict[str, Any]:
    from study.common import run_finding

    return run_finding(ctx, measure, analyse, plot)


if __name__ == "__main__":
    _spec = json.loads(sys.argv[1])
    from study import lifetime

    lifetime.die_with_parent(_spec.get("parent"))
    run_one(_spec)
