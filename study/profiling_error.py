"""Finding 4: offline latency profiles vs runtime latency, and a runtime profiler that
closes the gap (claim C7; C9 as a second angle).

Method (stage ``profiling_error``, notebook ``04_profiling_error.ipynb``):

1. **Candidates** ("processors" a scheduler chooses between): ``engine/processor/core
   group`` strings, e.g. ``litert/cpu/g0``. On a host without a GPU they are the CPU core
   groups (``g0``, ``g1``, ``all`` from the device); with a GPU also ``litert/gpu/all``
   (LiteRT GPU accelerator) and ``torch/gpu/all`` (PyTorch CUDA). A candidate that
   cannot run here is a row of ``part='absent'`` with the reason.
2. **Offline profiles, idle, before the scenario**: end-to-end latency of every model x
   candidate with the harness (interleaved blocks, stopping rule, raw log
   ``profiling_error-offline``); per-operator times from the engine's own profiler
   (``engine.op_profile``: LiteRT single-operator slices, ONNX Runtime's profiler,
   torch.profiler), pinned to the candidate's cores.
3. **Dynamic scenario** reproducible from ``seed`` and ``scenario_seed``
   (``study.scenario``): phases of idle, CPU competitors pinned to a core group, memory
   competitors, bursts of short on/off CPU load, GPU competitors where a GPU exists.
   The models run continuously, round-robin: each step runs every model x candidate once
   (order drawn per step), every latency appended to the raw log ``profiling_error`` as
   taken, with its time, phase, segment and load; sensors at phase changes and every
   ``sensor_interval_s``. Competitors are paused/resumed by signals and always ended.
4. **Estimators on the same trace** (``study.estimators``): offline end-to-end, offline
   operator sum, calibrated operator sum (leave-one-out), runtime window median/mean
   and EWMA (from observations before each prediction only). MAPE, RMSE, within +-10%
   with block-bootstrap CIs; paired Wilcoxon tests (offline vs runtime, Holm).
5. **Decisions**: per step each estimator picks the candidate it predicts fastest;
   achieved latency = that candidate's real latency at that step; regret against the
   step's fastest (oracle) and the best single candidate in hindsight.

Main dataset ``data/<device>/profiling_error.parquet``: one row per measurement, ``part`` in
{``offline`` (harness sample), ``op_time`` (one operator's time), ``scenario`` (one
inference of the trace), ``sensors`` (a reading), ``absent`` (what could not run, why),
``error`` (a configuration that failed during the trace)}.

On a phone (``device=adb:SERIAL``; ``study.phone``) the candidates are the phone's own:
``litert/cpu/<group>`` for each of its core groups (``big``, ``mid1``.., ``little``, ``all``),
``litert/gpu/all`` and ``litert/npu/all`` (NNAPI), each absent with the phone's reason
where it cannot run; requested candidates that exist on the phone are kept, the others are
``absent`` rows (PyTorch/ONNX Runtime: no Python there; host core groups). Everything runs
through ``benchmark_model``, which prints aggregates only, so:

* offline end-to-end = idle benchmark blocks (``study.phone.measure``), one row per call
  with its mean; offline operator sum = the op profile's top-level nodes
  (``--enable_op_profiling``, pinned to the candidate's cores; a delegate partition is one
  node);
* the scenario's steps are ONE benchmark_model call per configuration (``block_size``
  runs after ``warmup``; the model is loaded anew each call), so every trace value, the
  runtime estimators' observations and the decisions are per-block means;
* competitors run on the phone (``AdbCompetitorPool``), started at each segment change and
  ended at the next (``scenario.RestartLoadController``: no pause/resume over adb).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from study import claims as C
from study import estimators as E
from study import devices, phone, stats
from study import scenario as S
from study.config import check_models
from study.devices import PYTHON
from study.measure import Config, current_affinity, sensor_summary, set_affinity
from study.schema import STAGES, ParamError

FINDING = "profiling_error"
OFFLINE_LOG = f"{FINDING}-offline"
ENGINES = ("litert", "onnxruntime", "torch")
DEFAULT_CANDIDATES = ["litert/cpu/g0", "litert/cpu/g1", "litert/cpu/all", "litert/gpu/all", "torch/gpu/all"]
PRIMARY = ("offline_e2e", "ewma")   # the pre-specified C7 comparison
PAPER_C7 = "qualitative (offline profiles diverge from runtime latency under dynamics; runtime profiling needed)"
PAPER_C9 = "qualitative (no single strategy fits every context)"


def parse_candidate(text: str) -> tuple[str, str, str]:
    parts = str(text).split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"candidate {text!r}: expected engine/processor/core_group, e.g. litert/cpu/g0")
    return parts[0], parts[1], parts[2]


PARAMS = STAGES["profiling_error"]   # the schema of this stage's section (study.schema)


def check_params(resolved: dict[str, Any], params: dict[str, Any]) -> None:
    check_models(FINDING, resolved["models"], params)
    if resolved["phase_seconds"][0] > resolved["scenario_seconds"]:
        raise ParamError(f"{FINDING}.phase_seconds: shortest phase longer than scenario_seconds")


# =========================================================================== measure
class _TorchThreads:
    """A torch session whose thread count is set before each run (``torch.set_num_threads`` is
    process-wide: another torch session may have changed it)."""

    def __init__(self, sess, threads: int):
        self.sess, self.threads = sess, threads

    def run(self):
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        self.sess.run()

    def close(self):
        getattr(self.sess, "close", lambda: None)()


def _config(ctx, model: str, cand: str) -> Config:
    e, pr, g = parse_candidate(cand)
    cfg = ctx.latency_config(model, e, pr, g, candidate=cand)
    if e != "torch":
        return cfg
    threads = cfg.columns["threads"]
    return Config(columns=cfg.columns, opener=lambda: _TorchThreads(cfg.opener(), threads), cores=cfg.cores)


def config_name(model: str, cand: str) -> str:
    return f"{model} | {cand}"


def _prepare(cores, threads: int, engine: str):
    def prepare():
        set_affinity(cores)
        if engine == "torch":
            import torch

            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
    return prepare


def plan(ctx) -> tuple[list[dict], list[dict], list[str], list[str]]:
    """(available configurations, absent rows, phase kinds usable here, competitor groups)."""
    from study.competitors import available_kinds
    from study.engines import get_engine

    p = ctx.params
    groups = ctx.device.core_groups()
    avail, absent = [], []
    for model in p["models"]:
        spec = ctx.model(model)
        for cand in p["candidates"]:
            e, pr, g = parse_candidate(cand)
            why = get_engine(e).availability(ctx.device, pr, spec)
            if why is None and g not in groups:
                why = f"core group {g!r} not on this device (groups: {sorted(groups)})"
            row = dict(model=model, candidate=cand, config=config_name(model, cand), engine=e, processor=pr,
                       core_group=g)
            if why:
                absent.append({**row, "part": "absent", "reason": why})
            else:
                avail.append(row)
    comp_groups = [g for g in p["competitor_groups"] if g in groups]
    for g in p["competitor_groups"]:
        if g not in groups:
            absent.append(dict(part="absent", candidate=f"competitor group {g}",
                               reason=f"core group {g!r} not on this device (groups: {sorted(groups)})"))
    kinds = _phase_kinds(p["phase_kinds"], available_kinds(ctx.device), comp_groups, absent)
    return avail, absent, kinds, comp_groups


def _phase_kinds(wanted: list[str], reasons: dict[str, str | None], comp_groups: list[str],
                 absent: list[dict]) -> list[str]:
    """The scenario's phase kinds that this device can run; the others go to ``absent`` with why."""
    kinds = []
    for k in wanted:
        need = S.PHASE_NEEDS[k]
        why = reasons.get(need) if need else None
        if why is None and need in ("cpu", "memory") and not comp_groups:
            why = "no usable competitor core group"
        if why:
            absent.append(dict(part="absent", candidate=f"phase {k}", reason=f"{k} phases left out: {why}"))
        else:
            kinds.append(k)
    return kinds


def _failed_offline(failures: list[dict], engine: str | None = None) -> list[dict]:
    """Absent rows for configurations whose offline run failed (engine: the row's own unless given)."""
    return [dict(part="absent", model=f["model"], candidate=f["candidate"],
                 config=config_name(f["model"], f["candidate"]), engine=engine or f["engine"],
                 processor=f["processor"], core_group=f["core_group"], reason=f"offline run {f['reason']}")
            for f in failures]


def _offline_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """Idle samples labelled as the offline part, keyed by the finding's config name."""
    if len(samples):
        samples = samples.rename(columns={"config": "config_key"})
        samples["config"] = [config_name(m, c) for m, c in zip(samples.model, samples.candidate)]
        samples["part"] = "offline"
    return samples


def offline_profiles(ctx, avail: list[dict], log, groups: dict[str, list[int]]
                     ) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Idle end-to-end samples (harness) and per-operator times of every available configuration."""
    from study.engines import get_engine

    configs = [_config(ctx, a["model"], a["candidate"]) for a in avail]
    samples = ctx.harness(log).run(configs) if configs else pd.DataFrame()
    failed = ctx.failures(log, configs) if configs else pd.DataFrame()
    absent = _failed_offline(failed.to_dict("records") if len(failed) else [])
    samples = _offline_samples(samples)
    bad = {a["config"] for a in absent}
    ops = []
    original = current_affinity()
    try:
        for a in avail:
            if a["config"] in bad:
                continue
            spec = ctx.model(a["model"])
            cores = tuple(groups[a["core_group"]])
            threads = ctx.threads_for(a["processor"], cores)
            set_affinity(cores)
            t0 = time.time()
            try:
                op = get_engine(a["engine"]).op_profile(spec, a["processor"], threads, runs=ctx.params["op_runs"])
            except Exception as e:  # the end-to-end profile stands; the operator sum is missing, with the reason
                op = pd.DataFrame([dict(op_index=-1, op_type="", op_name="", placed_on="", time_ms=np.nan, n=0,
                                        method=f"failed: {type(e).__name__}: {e}"[:300])])
            op = op.drop(columns=[c for c in ("model", "engine", "processor") if c in op.columns])
            op = op.rename(columns={"n": "op_n"}).assign(**a, part="op_time", threads=threads,
                                                         cores=",".join(map(str, cores)),
                                                         profile_seconds=time.time() - t0)
            for rec in op.to_dict("records"):
                log.append({"type": "op_time", **rec})
            ops.append(op)
    finally:
        set_affinity(original)
    return samples, (pd.concat(ops, ignore_index=True) if ops else pd.DataFrame()), absent


def post_run_cpu_ms(sess, window_s: float = 0.05) -> float:
    """CPU time (ms) this process uses in the ``window_s`` after one run: engines whose worker
    threads spin-wait after a run (ONNX Runtime's intra-op pool, OpenMP) load the cores the next
    configuration of a round-robin step runs on; LiteRT's XNNPACK pool yields at once."""
    time.sleep(window_s)
    sess.run()
    c0 = time.process_time()
    time.sleep(window_s)
    return (time.process_time() - c0) * 1e3


def _begin_scenario(ctx, avail: list[dict], kinds: list[str], comp_groups: list[str], log,
                    groups: dict[str, list[int]], **meta) -> list[S.Segment]:
    """The seeded schedule, logged with its meta record; an unfinished earlier trace in the log is
    marked abandoned (history, not resumed: a trace is continuous)."""
    p = ctx.params
    schedule = S.make_schedule(p["scenario_seconds"], [ctx.seed, p["scenario_seed"]], kinds,
                               phase_s=p["phase_seconds"], burst_s=p["burst_seconds"], cpu_n=p["cpu_competitors"],
                               memory_n=p["memory_competitors"], gpu_n=p["gpu_competitors"], groups=comp_groups)
    if log.records():
        log.mark_complete(abandoned=True)
    log.append({"type": "meta", "t_wall": time.time(), "seed": ctx.seed, "scenario_seed": p["scenario_seed"],
                "configs": [a["config"] for a in avail], "phase_kinds": kinds, "competitor_groups": comp_groups,
                "schedule": [s.as_row() for s in schedule], "core_groups": groups, **meta})
    return schedule


def scenario_trace(ctx, avail: list[dict], kinds: list[str], comp_groups: list[str], log,
                   groups: dict[str, list[int]]) -> tuple[pd.DataFrame, pd.DataFrame, list[S.Segment], list[dict]]:
    """Open every configuration, run the seeded scenario under its competitors, log every inference."""
    from study.competitors import CompetitorPool

    schedule = _begin_scenario(ctx, avail, kinds, comp_groups, log, groups)
    trace_cfgs, errors = [], []
    original = current_affinity()
    try:
        for a in avail:
            set_affinity(original)  # the device's core groups are read from the current affinity
            cfg = ctx.latency_config(a["model"], a["engine"], a["processor"], a["core_group"], candidate=a["candidate"])
            prep = _prepare(cfg.cores, cfg.columns["threads"], a["engine"])
            try:
                sess = cfg.opener()
                prep()
                for _ in range(max(1, ctx.settings.warmup)):
                    sess.run()
                spin = post_run_cpu_ms(sess)
            except Exception as e:
                why = f"scenario session failed: {type(e).__name__}: {e}"[:500]
                errors.append({**a, "part": "absent", "reason": why})
                continue
            cols = {**cfg.columns, "config": a["config"], "cores": ",".join(map(str, cfg.cores)),
                    "post_run_cpu_ms": spin}
            trace_cfgs.append(S.TraceConfig(a["config"], cols, sess, cfg.cores, prep))
        rows, sens = [], []
        if trace_cfgs:
            with CompetitorPool(device=ctx.device) as pool:
                rows, sens = trace_under_load(
                    ctx, S.LoadController(pool, lambda g: groups[g]), trace_cfgs, schedule, log,
                    lambda ctl: {"pool": pool.describe(),
                                 "by_group": {f"{k}@{g}": v for (k, g), v in ctl.pids.items()}})
    finally:
        for c in trace_cfgs:
            getattr(c.session, "close", lambda: None)()
        set_affinity(original)
    return (*trace_tables(trace_cfgs, rows, sens, errors), schedule, errors)


def trace_under_load(ctx, ctl, trace_cfgs: list, schedule: list[S.Segment], log,
                     describe) -> tuple[list[dict], list[dict]]:
    """The trace's (inference rows, sensor readings): the seeded scenario run over the
    configurations with each segment's competitor load applied by the controller ``ctl``;
    ``describe(ctl)``: the competitors as logged once they are prepared."""
    p = ctx.params
    try:
        ctl.prepare(S.competitor_needs(schedule))
        log.append({"type": "competitors", "t_wall": time.time(), **describe(ctl)})
        return S.run_trace(trace_cfgs, schedule, apply_load=lambda seg: ctl.apply(seg.load), log=log,
                           order_seed=[ctx.seed, p["scenario_seed"], 1], read_sensors=ctx.device.read_sensors,
                           sensor_interval_s=p["sensor_interval_s"])
    finally:
        ctl.resume_all()


def trace_tables(trace_cfgs: list, rows: list[dict], sens: list[dict],
                 errors: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trace's scenario and sensors parts; a configuration that failed during the scenario
    is added to ``errors`` with its reason."""
    for c in trace_cfgs:
        if c.error:
            errors.append(dict(part="error", model=c.columns["model"], candidate=c.columns["candidate"],
                               config=c.name, reason=f"failed during the scenario: {c.error}"))
    trace = pd.DataFrame(rows)
    if len(trace):
        trace = trace.drop(columns=["type"]).assign(part="scenario")
    srows = [{"part": "sensors", "t_s": r["t_s"], "why": r["why"],
              **{k: r[k] for k in ("segment", "phase", "phase_kind", "load", "burst_on")},
              **sensor_summary(r["sensors"])} for r in sens]
    return trace, pd.DataFrame(srows)


def tidy(frames: list[pd.DataFrame]) -> pd.DataFrame:
    df = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else pd.DataFrame()
    for c in ("part", "model", "candidate", "config", "reason"):
        if c not in df.columns:
            df[c] = pd.Series(dtype=object)
    if "burst_on" in df.columns:
        df["burst_on"] = df["burst_on"].astype("boolean")
    for c in ("reason", "method", "why"):
        if c in df.columns:
            df[c] = df[c].where(df[c].notna(), "").astype(str)
    return df


# =========================================================================== the phone path
def phone_candidates(groups: dict[str, list[int]], requested: list[str]) -> tuple[list[str], list[dict]]:
    """(the phone's candidates, absent rows for requested ones it cannot run)."""
    cands = [f"litert/cpu/{g}" for g in groups] + ["litert/gpu/all", "litert/npu/all"]
    absent = []
    for c in requested:
        if c in cands:
            continue
        e, pr, g = parse_candidate(c)
        why = phone.engine_reason(e)
        if why is None and g not in groups:
            why = (f"core group {g!r} not on this phone (groups: {sorted(groups)}); the phone's candidates are its "
                   f"core groups and accelerators")
        if why:
            absent.append(dict(part="absent", candidate=c, reason=why))
        else:
            cands.append(c)
    return cands, absent


def plan_phone(ctx, groups: dict[str, list[int]], reasons: dict[str, str | None]
               ) -> tuple[list[dict], list[dict], list[str], list[str]]:
    """``plan`` on a phone: (available configurations, absent rows, phase kinds, competitor groups)."""
    p = ctx.params
    cands, absent = phone_candidates(groups, list(p["candidates"]))
    avail = []
    for model in p["models"]:
        for cand in cands:
            e, pr, g = parse_candidate(cand)
            row = dict(model=model, candidate=cand, config=config_name(model, cand), engine=phone.ENGINE, processor=pr,
                       core_group=g)
            why = phone.availability(ctx, model, e, pr)
            if why:
                absent.append({**row, "part": "absent", "reason": why})
            else:
                avail.append(row)
    comp_groups = [g for g in p["competitor_groups"] if g in groups]
    if not comp_groups:
        comp_groups = list(groups)
        absent.append(dict(part="absent", candidate="competitor groups " + ", ".join(p["competitor_groups"]),
                           reason=f"not on this phone; its own groups are used: {', '.join(comp_groups)}"))
    kinds = _phase_kinds(p["phase_kinds"], reasons, comp_groups, absent)
    return avail, absent, kinds, comp_groups


def offline_profiles_phone(ctx, avail: list[dict], log, groups: dict[str, list[int]]
                           ) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Idle benchmark blocks (one row per call, its mean) and the op profile of every configuration."""
    configs = [phone.config(ctx, a["model"], a["processor"], a["core_group"], candidate=a["candidate"])
               for a in avail]
    samples = phone.measure(ctx, configs, log)
    absent = _failed_offline(phone.failures(samples, configs).to_dict("records"), engine=phone.ENGINE)
    samples = _offline_samples(samples)
    bad = {a["config"] for a in absent}
    ops = []
    for a in avail:
        if a["config"] in bad:
            continue
        cores = tuple(groups[a["core_group"]])
        threads = ctx.threads_for(a["processor"], cores)
        t0 = time.time()
        try:
            op = phone.op_profile(ctx, a["model"], a["processor"], cores, threads, ctx.params["op_runs"])
        except Exception as e:  # noqa: BLE001 - the end-to-end profile stands; the operator sum is missing
            from study.devices import DeviceError

            if isinstance(e, DeviceError) and getattr(e, "disconnected", False):
                raise
            op = pd.DataFrame([dict(op_index=-1, op_type="", op_name="", placed_on="", time_ms=np.nan, n=0,
                                    method=f"failed: {type(e).__name__}: {e}"[:300])])
        op = op.drop(columns=[c for c in ("model", "engine", "processor") if c in op.columns])
        op = op.rename(columns={"n": "op_n"}).assign(**a, part="op_time", threads=threads,
                                                     cores=",".join(map(str, cores)), profile_seconds=time.time() - t0)
        for rec in op.to_dict("records"):
            log.append({"type": "op_time", **rec})
        ops.append(op)
    return samples, (pd.concat(ops, ignore_index=True) if ops else pd.DataFrame()), absent


def scenario_trace_phone(ctx, avail: list[dict], kinds: list[str], comp_groups: list[str], log,
                         groups: dict[str, list[int]], pool) -> tuple[pd.DataFrame, pd.DataFrame, list, list[dict]]:
    """The seeded scenario on the phone: each step one benchmark block per configuration."""
    from study.engines.base import EngineUnavailable

    p = ctx.params
    schedule = _begin_scenario(ctx, avail, kinds, comp_groups, log, groups,
                               block_runs=ctx.settings.block_size, method=phone.BLOCK_METHOD)
    trace_cfgs, errors = [], []
    for a in avail:
        cfg = phone.config(ctx, a["model"], a["processor"], a["core_group"], candidate=a["candidate"])
        sess = phone.BlockSession(ctx, cfg, ctx.settings.block_size, ctx.settings.warmup)
        try:
            sess.measure_block()  # the configuration runs (its failure is a reason, not a hole in the trace)
        except EngineUnavailable as e:
            errors.append({**a, "part": "absent", "reason": f"scenario session failed: {e}"[:500]})
            continue
        cols = {**cfg.columns, "config": a["config"], "cores": ",".join(map(str, cfg.cores or ())),
                "post_run_cpu_ms": np.nan}
        trace_cfgs.append(S.TraceConfig(a["config"], cols, sess, cfg.cores, None))
    rows, sens = [], []
    if trace_cfgs:
        ctl = S.RestartLoadController(pool, lambda g: groups[g])
        try:
            ctl.prepare(S.competitor_needs(schedule))
            log.append({"type": "competitors", "t_wall": time.time(),
                        "pool": "AdbCompetitorPool (started and ended per segment)"})
            rows, sens = S.run_trace(trace_cfgs, schedule, apply_load=lambda seg: ctl.apply(seg.load), log=log,
                                     order_seed=[ctx.seed, p["scenario_seed"], 1], read_sensors=ctx.device.read_sensors,
                                     sensor_interval_s=p["sensor_interval_s"])
        finally:
            ctl.resume_all()
    for c in trace_cfgs:
        if c.error:
            errors.append(dict(part="error", model=c.columns["model"], candidate=c.columns["candidate"],
                               config=c.name, reason=f"failed during the scenario: {c.error}"))
    trace = pd.DataFrame(rows)
    if len(trace):
        trace = trace.drop(columns=["type"]).assign(part="scenario")
    srows = [{"part": "sensors", "t_s": r["t_s"], "why": r["why"],
              **{k: r[k] for k in ("segment", "phase", "phase_kind", "load", "burst_on")},
              **sensor_summary(r["sensors"])} for r in sens]
    return trace, pd.DataFrame(srows), schedule, errors


def _write_measured(ctx, parts: list[pd.DataFrame], schedule, logs) -> pd.DataFrame:
    """The dataset and the scenario's schedule written; the raw logs marked complete and closed."""
    data = tidy(parts)
    ctx.write(data)
    ctx.write(pd.DataFrame([s.as_row() for s in schedule]), table="schedule")
    for log in logs:
        log.mark_complete()
        log.close()
    return data


def measure_phone(ctx) -> pd.DataFrame:
    olog = ctx.raw_log(OFFLINE_LOG)
    slog = ctx.raw_log(FINDING)
    groups = {k: list(v) for k, v in ctx.device.core_groups().items()}
    with phone.competitor_pool(ctx, phone.gpu_competitor_model(ctx, ctx.params["models"])) as pool:
        avail, absent, kinds, comp_groups = plan_phone(ctx, groups, pool.reasons())
        samples, ops, failed = offline_profiles_phone(ctx, avail, olog, groups)
        bad = {f["config"] for f in failed}
        usable = [a for a in avail if a["config"] not in bad]
        trace, sens, schedule, errors = scenario_trace_phone(ctx, usable, kinds, comp_groups, slog, groups, pool)
    return _write_measured(ctx, [samples, ops, trace, sens, pd.DataFrame(absent + failed + errors)], schedule,
                           (olog, slog))


def measure(ctx) -> pd.DataFrame:
    if not devices.supports(ctx.device_spec, PYTHON):  # only benchmark_model runs there
        return measure_phone(ctx)
    olog = ctx.raw_log(OFFLINE_LOG)
    slog = ctx.raw_log(FINDING)
    # core groups once, before any pinning: LocalDevice.core_groups() reads the current affinity
    groups = {k: list(v) for k, v in ctx.device.core_groups().items()}
    avail, absent, kinds, comp_groups = plan(ctx)
    samples, ops, failed = offline_profiles(ctx, avail, olog, groups)
    bad = {f["config"] for f in failed}
    usable = [a for a in avail if a["config"] not in bad]
    trace, sens, schedule, errors = scenario_trace(ctx, usable, kinds, comp_groups, slog, groups)
    return _write_measured(ctx, [samples, ops, trace, sens, pd.DataFrame(absent + failed + errors)], schedule,
                           (olog, slog))


# =========================================================================== analyse
def _part(data: pd.DataFrame, part: str) -> pd.DataFrame:
    return data[data["part"] == part].reset_index(drop=True) if "part" in data.columns else data.iloc[0:0]


def availability_table(data: pd.DataFrame) -> pd.DataFrame:
    """Every configuration and phase kind: measured (with counts) or absent (with the reason)."""
    rows = []
    tr = _part(data, "scenario")
    off = _part(data, "offline")
    none = pd.Series(dtype=str)
    for cfg in sorted(set(off.get("config", none).dropna()) | set(tr.get("config", none).dropna())):
        t = tr[tr.config == cfg] if len(tr) else tr
        o = off[off.config == cfg]
        src = t if len(t) else o
        rows.append(dict(config=cfg, model=src.model.iloc[0], candidate=src.candidate.iloc[0], available=True,
                         n_offline=int(len(o)), n_scenario=int(len(t)), reason=""))
    for part in ("absent", "error"):
        a = _part(data, part)
        for _, r in a.iterrows():
            rows.append(dict(config=r.get("config") if isinstance(r.get("config"), str) else "",
                             model=r.get("model") if isinstance(r.get("model"), str) else "",
                             candidate=r.get("candidate"), available=False, n_offline=0, n_scenario=0,
                             reason=r.get("reason")))
    df = pd.DataFrame(rows, columns=["config", "model", "candidate", "available", "n_offline", "n_scenario", "reason"])
    if len(tr) and "post_run_cpu_ms" in tr.columns:
        spin = tr.groupby("config").post_run_cpu_ms.first()
        df["post_run_cpu_ms"] = df.config.map(spin)
    return df


SENSOR_COLUMNS = ["cpu_mhz_mean", "temp_max_c", "gpu_sm_mhz", "gpu_temp_c", "gpu_power_w"]


def sensors_table(data: pd.DataFrame) -> pd.DataFrame:
    """Sensor readings during the scenario (phase changes and intervals); NaN where unreadable."""
    s = _part(data, "sensors")
    cols = ["t_s", "why", "segment", "phase", "phase_kind", "load", "cpu_governor", *SENSOR_COLUMNS]
    for c in cols:
        if c not in s.columns:
            s[c] = np.nan
    return s[cols].sort_values("t_s").reset_index(drop=True)


def _verdict(lo: float, hi: float, p_adj: float | None = None, null: float = 0.0) -> str:
    """Reproduced: CI entirely on the claimed side (above ``null``) and, where a test applies, its
    (adjusted) p < 0.05; contradicted: CI entirely on the other side; inconclusive otherwise."""
    if lo is None or hi is None or np.isnan(lo) or np.isnan(hi):
        return "inconclusive"
    sig = p_adj is None or (not np.isnan(p_adj) and p_adj < 0.05)
    if lo > null and sig:
        return "reproduced"
    if hi < null:
        return "contradicted"
    return "inconclusive"


def _p(p: float) -> str:
    if p is None or np.isnan(p):
        return "n/a"
    return "< 1e-300" if p == 0 else f"{p:.2g}"


CLAIM_COLUMNS = ["claim", "form", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "p_holm", "n",
                 "paper_value", "verdict", "reason", "comparison", "primary", "threshold", "direction"]


def _one_sided(p_two: float, effect: float) -> float:
    if p_two is None or np.isnan(p_two) or np.isnan(effect):
        return np.nan
    return p_two / 2 if effect > 0 else 1 - p_two / 2


def _by_phase(errors_by_phase: pd.DataFrame | None, est: str) -> str:
    """'idle x%, loaded y%': MAPE of an estimator in idle phases and in phases with load."""
    if errors_by_phase is None or errors_by_phase.empty:
        return "n/a"
    e = errors_by_phase[errors_by_phase.estimator == est]
    idle = e[e.phase_kind == "idle"]
    load = e[e.phase_kind != "idle"]
    parts = []
    if len(idle):
        parts.append(f"idle {idle.mape_pct.iloc[0]:.1f}%")
    if len(load):
        parts.append(f"loaded {np.average(load.mape_pct, weights=load.n):.1f}%")
    return ", ".join(parts) or "n/a"


def _where(avail: pd.DataFrame, cands: list[str]) -> str:
    """'candidates measured: ...; absent: ...: why' (every claim row's reason ends with it)."""
    by_reason: dict[str, list[str]] = {}
    for r in avail[~avail.available].itertuples():
        by_reason.setdefault(str(r.reason), []).append(str(r.candidate))
    return (f"candidates measured: {', '.join(cands) if cands else 'none'}"
            + ("; absent: " + "; ".join(f"{', '.join(c)}: {why}" for why, c in by_reason.items()) if by_reason
               else ""))


def _not_measurable(reason: str, n: int = 0) -> dict[str, Any]:
    return {"effect": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "p_value": np.nan, "p_holm": np.nan, "n": n,
            "verdict": "not measurable", "reason": reason}


def _c7_estimator_rows(tests: pd.DataFrame, params: dict[str, Any], where: str,
                       errors_by_phase: pd.DataFrame | None) -> list[dict[str, Any]]:
    """C7, one row per offline x runtime estimator pair: the MAPE difference on the trace."""
    rows = []
    win, alpha = params.get("window"), params.get("ewma_alpha")
    for off in E.OFFLINE:
        for rt in E.RUNTIME:
            primary = (off, rt) == PRIMARY
            base = dict(claim="C7", comparison=f"{off} vs {rt}", primary=primary, paper_value=PAPER_C7,
                        statistic="MAPE(offline) - MAPE(runtime), percentage points",
                        text=(f"Runtime-profiled estimates ({E.LABELS[rt]}, window {win}, alpha {alpha}) have lower "
                              f"error than the offline profile ({E.LABELS[off]}) on the same dynamic trace: MAPE "
                              f"difference > 0 (95% block-bootstrap CI above 0, one-sided block-bootstrap p: "
                              f"whole {params.get('block_seconds')}-s blocks of the trace are resampled, as "
                              f"consecutive predictions are correlated)"))
            t = tests[(tests.offline == off) & (tests.runtime == rt)] if len(tests) else tests
            if t.empty:
                rows.append({**base, **_not_measurable(f"no trace with both estimators ({where})")})
                continue
            r = t.iloc[0]
            if "p_blocks_greater" in t:
                p1, ph = r.p_blocks_greater, r.p_holm_blocks_greater
            else:   # tables of older code: the two-sided Wilcoxon test on block means, halved
                p1 = ph = _one_sided(r.p_wilcoxon_blocks, r.mape_diff_pp)
            v = _verdict(r.ci_lo, r.ci_hi, ph)
            if v == "contradicted" and not r.ci_hi < -C.CLAIMS["C7"].margin:
                v = "inconclusive"
            rows.append({**base, "effect": r.mape_diff_pp, "ci_lo": r.ci_lo, "ci_hi": r.ci_hi,
                         "p_value": p1, "p_holm": ph, "n": int(r.n_blocks), "verdict": v,
                         "reason": (f"MAPE offline {r.mape_offline_pct:.1f}% vs runtime {r.mape_runtime_pct:.1f}% "
                                    f"over {int(r.n)} predictions ({int(r.n_blocks)} bootstrap blocks); by phase: "
                                    f"offline {_by_phase(errors_by_phase, off)}, runtime "
                                    f"{_by_phase(errors_by_phase, rt)}; runtime better on "
                                    f"{r.share_runtime_better:.0%} of predictions; one-sided block-bootstrap p over "
                                    f"{int(r.n_blocks)} blocks {_p(p1)} (Holm over the estimator pairs: "
                                    f"{_p(ph)}); per-prediction two-sided p {_p(r.p_wilcoxon)}, shown only: "
                                    f"it treats correlated predictions as independent; {where}")})
    return rows


def _c7_regret_row(regret: pd.DataFrame, regret_diff: dict, n_cands: int, where: str) -> dict[str, Any]:
    """C7's decision impact: the scheduler using the offline profile vs the one using the
    runtime profiler."""
    base = dict(claim="C7", comparison=f"regret {PRIMARY[0]} - {PRIMARY[1]}", primary=False, paper_value=PAPER_C7,
                statistic="mean regret per step (ms): scheduler on offline_e2e minus scheduler on ewma",
                text=("Decision impact: a scheduler that picks each inference's processor from the runtime profiler "
                      "(EWMA) has less regret against the oracle than one that uses the offline end-to-end profile "
                      "(difference > 0, block-bootstrap CI above 0, paired Wilcoxon over steps p < 0.05)"))
    if not regret_diff or regret_diff.get("n", 0) == 0 or n_cands < 2:
        return {**base, **_not_measurable(f"fewer than two candidates measured for a model: nothing to choose "
                                          f"({where})")}
    d = regret_diff
    rr = regret[regret.model == (regret.model.iloc[-1])] if len(regret) else regret
    rel = {r.policy: r.regret_rel_pct for r in rr.itertuples()}
    return {**base, "effect": d["effect"], "ci_lo": d["ci_lo"], "ci_hi": d["ci_hi"], "p_value": d["p_value"],
            "p_holm": np.nan, "n": d["n"], "verdict": _verdict(d["ci_lo"], d["ci_hi"], d["p_value"]),
            "reason": (f"regret relative to the oracle: offline_e2e {rel.get('offline_e2e', np.nan):.1f}%, "
                       f"ewma {rel.get('ewma', np.nan):.1f}%, best single candidate in hindsight "
                       f"{rel.get('hindsight_static', np.nan):.1f}% over {d['n']} steps; Wilcoxon over "
                       f"steps p = {_p(d['p_value'])}; {where}")}


def _c9_rows(switching: dict, cands: list[str], n_cands: int, params: dict[str, Any],
             where: str) -> list[dict[str, Any]]:
    """C9: no single processor is best in every context (the paper's form needs candidates on
    two processors; core groups / engines of one are the host form, with a not-measurable
    paper row)."""
    mat = params.get("c9_material", 0.05)
    base = dict(claim="C9", comparison="best single candidate vs per-context fastest", primary=True,
                paper_value=PAPER_C9,
                statistic=("latency of the best single candidate in hindsight / latency picking each context's "
                           "fastest - 1"),
                text=(f"No single processor is best in every context: over the scenario's contexts (the competitor "
                      f"load on), always using the best single candidate is more than {mat:.0%} slower than using "
                      f"each context's fastest (95% block-bootstrap CI above {mat:.0%})"))
    sw = switching or {}
    procs = {str(c).split("/")[1] for c in cands if str(c).count("/") >= 1}
    form = "paper" if len(procs) >= 2 else "host"
    base.update(form=form, threshold=mat, direction="greater")
    if n_cands < 2 or not sw.get("n") or sw.get("contexts", 0) < 2:
        return [{**base, "form": "paper",
                 **_not_measurable(f"needs at least two candidates and two contexts ({where})",
                                   int(sw.get("n", 0) or 0))}]
    v = _verdict(sw["ci_lo"], sw["ci_hi"], None, null=mat)
    if v == "contradicted" and sw.get("contexts_static_not_best", 0) > 0:
        v = "inconclusive"      # contradicted only where one strategy is the fastest in every context
    host = ("" if form == "paper" else
            f"host form: the candidates ({', '.join(cands)}) are core groups / engines of one processor; ")
    rows = [{**base, "effect": sw["effect"], "ci_lo": sw["ci_lo"], "ci_hi": sw["ci_hi"],
             "p_value": sw.get("p_value", np.nan), "p_holm": np.nan,
             "n": int(sw.get("n_blocks", sw["n"])), "verdict": v,
             "reason": (f"{host}in {sw['contexts_static_not_best']} of {sw['contexts']} contexts the best "
                        f"single candidate was not the fastest; threshold {mat:.0%}; one-sided block-"
                        f"bootstrap p {_p(sw.get('p_value', np.nan))}; contradicted only if one candidate is "
                        f"the fastest in every context; {where}")}]
    if form == "host":
        rows.append({**base, "form": "paper",
                     **_not_measurable(f"the paper's form needs candidates on at least two processors; measured "
                                       f"here: {', '.join(sorted(procs)) or 'none'} ({where})")})
    return rows


def claims(tests: pd.DataFrame, regret: pd.DataFrame, regret_diff: dict, switching: dict, avail: pd.DataFrame,
           params: dict[str, Any], errors_by_phase: pd.DataFrame | None = None) -> pd.DataFrame:
    ok = avail[avail.available]
    cands = sorted(set(ok.candidate))
    where = _where(avail, cands)
    n_cands = ok.groupby("model").candidate.nunique().max() if len(ok) else 0
    rows = (_c7_estimator_rows(tests, params, where, errors_by_phase)
            + [_c7_regret_row(regret, regret_diff, n_cands, where)]
            + _c9_rows(switching, cands, n_cands, params, where))
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def analyse(ctx, data: pd.DataFrame) -> dict[str, pd.DataFrame]:
    p = ctx.params
    seed = int(getattr(ctx, "seed", 0))
    kw = dict(block_seconds=p["block_seconds"], n_boot=p["n_boot"], seed=seed)
    off = _part(data, "offline")
    ops = _part(data, "op_time")
    trace = _part(data, "scenario")
    offline = E.offline_table(off, ops) if len(off) else pd.DataFrame()
    pred = E.predictions(trace, offline, p["window"], p["ewma_alpha"]) if len(trace) and len(offline) else \
        E.predictions(trace.iloc[0:0], pd.DataFrame(), p["window"], p["ewma_alpha"])
    tests = E.paired_tests(pred, **kw) if len(pred) else pd.DataFrame()
    dec = E.decisions(pred) if len(pred) else pd.DataFrame()
    regret = E.regret_summary(dec, **kw) if len(dec) else pd.DataFrame()
    rdiff = E.regret_difference(dec, PRIMARY[0], PRIMARY[1], **kw) if len(dec) else {}
    switching = E.switching_gain(trace, **{**kw, "n_boot": stats.p_resamples(p["n_boot"])},
                                 material=p.get("c9_material", 0.05)) if len(trace) else {}
    avail = availability_table(data)
    tables = {
        "availability": avail,
        "offline": offline,
        "predictions": pred,
        "errors": E.error_summary(pred, ["estimator"], **kw) if len(pred) else pd.DataFrame(),
        "errors_by_candidate": E.error_summary(pred, ["model", "candidate", "estimator"], **kw) if len(pred)
        else pd.DataFrame(),
        "errors_by_phase": E.error_summary(pred, ["phase_kind", "estimator"], **kw) if len(pred) else pd.DataFrame(),
        "tests": tests,
        "decisions": dec,
        "regret": regret,
        "contexts": E.context_table(trace) if len(trace) else pd.DataFrame(),
        "sensors": sensors_table(data),
    }
    tables["claims"] = claims(tests, regret, rdiff, switching, avail, p, tables["errors_by_phase"])
    if not devices.supports(ctx.device_spec, PYTHON):
        note = ("; phone: every latency (offline, trace, estimator input and decision) is the mean of one "
                "benchmark_model block (no per-run latencies); offline operator sum from --enable_op_profiling")
        tables["claims"]["reason"] = tables["claims"]["reason"].astype(str) + note
    for name, df in tables.items():
        ctx.write(df, table=name)
    return tables


# =========================================================================== plot
PHASE_COLORS = {"idle": None, "cpu": "#C44E52", "memory": "#8172B3", "burst": "#DD8452", "gpu": "#55A868"}
EST_STYLE = {"offline_e2e": dict(color="#4C72B0", ls="--", lw=1.2),
             "offline_opsum": dict(color="#937860", ls=":", lw=1.2),
             "offline_opsum_cal": dict(color="#8C8C8C", ls="-.", lw=1.2),
             "window_median": dict(color="#55A868", ls="-", lw=1.0),
             "window_mean": dict(color="#64B5CD", ls="-", lw=0.8),
             "ewma": dict(color="#C44E52", ls="-", lw=1.0)}


def _shade_phases(ax, segs: pd.DataFrame) -> None:
    for r in segs.itertuples():
        color = PHASE_COLORS.get(r.phase_kind)
        if color is None or (r.phase_kind == "burst" and not (r.burst_on is not None and bool(r.burst_on))):
            continue
        ax.axvspan(r.t0, r.t1, color=color, alpha=0.12, lw=0)


def _trace_segments(pred: pd.DataFrame) -> pd.DataFrame:
    """The scenario's segments (start, end, phase kind, burst on) as the predictions recorded them."""
    segs = (pred[pred.estimator == "offline_e2e"].groupby("segment")
            .agg(t0=("seg_start_s", "first"), t1=("seg_end_s", "first"), phase_kind=("phase_kind", "first"),
                 burst_on=("burst_on", "first")).reset_index())
    segs["burst_on"] = segs["burst_on"].map(lambda v: bool(v) if v is not None and not pd.isna(v) else None)
    return segs


def _trace_panel(ax, g: pd.DataFrame, segs: pd.DataFrame, cfg: str) -> None:
    """One configuration: the measured latencies and each estimator's predictions over the
    phases; the scale follows the measured latencies, an offline value far off it is named,
    not drawn."""
    act = g[g.estimator == "offline_e2e"].sort_values("t_s")
    _shade_phases(ax, segs)
    ax.plot(act.t_s, act.actual_ms, ".", ms=2, color="k", alpha=0.45, label="measured")
    hi = max(np.nanpercentile(act.actual_ms, 99.5) * 1.15, float(g.loc[g.estimator == "offline_e2e",
                                                                         "predicted_ms"].max()) * 1.1)
    off_scale = []
    for est in E.ESTIMATORS:
        if est == "window_mean":
            continue
        e = g[g.estimator == est].sort_values("t_s")
        ax.plot(e.t_s, e.predicted_ms, label=E.LABELS[est], **EST_STYLE[est])
        if E.FAMILY[est] == "offline" and e.predicted_ms.max() > hi:
            off_scale.append(f"{E.LABELS[est]}: {e.predicted_ms.max():.3g} ms")
    ax.set_ylim(0, hi)
    if off_scale:
        ax.annotate("off scale: " + "; ".join(off_scale), xy=(0.99, 0.96), xycoords="axes fraction",
                    ha="right", va="top", fontsize=6, color="#555555")
    ax.set_ylabel("ms")
    ax.set_title(cfg, fontsize=8, loc="left")


def _sensor_panel(ax, sen: pd.DataFrame, readable: list[str], segs: pd.DataFrame) -> None:
    _shade_phases(ax, segs)
    for c in readable:
        v = sen[c].astype(float)
        ax.plot(sen.t_s, v / v.max(), ".-", ms=3, lw=0.8, label=f"{c} (max {v.max():.0f})")
    ax.set_ylabel("relative to max")
    ax.set_title("sensors read during the scenario", fontsize=8, loc="left")
    ax.legend(fontsize=6, loc="lower left")


def _plot_trace(pred: pd.DataFrame, sen: pd.DataFrame | None, each: str):
    """One panel per configuration (latency trace and predictions), and one of the sensors
    that changed during the scenario."""
    from matplotlib.patches import Patch

    from study import plotting

    configs = sorted(pred.config.unique())
    readable = [c for c in SENSOR_COLUMNS if sen is not None and len(sen) and sen[c].notna().sum() >= 2
                and sen[c].nunique() > 1]
    nrows = len(configs) + (1 if readable else 0)
    height = 1.9 * nrows + 1.2
    fig, axes = plotting.figure(plotting.WIDTH, height, nrows=nrows, sharex=True, squeeze=False)
    fig.subplots_adjust(top=1 - 1.15 / height, bottom=0.55 / height, hspace=0.45)
    segs = _trace_segments(pred)
    for ax, cfg in zip(axes[:, 0], configs):
        _trace_panel(ax, pred[pred.config == cfg], segs, cfg)
    if readable:
        _sensor_panel(axes[-1, 0], sen, readable, segs)
    axes[-1, 0].set_xlabel("time since the scenario's start (s)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles += [Patch(color=c, alpha=0.3, label=f"{k} phase") for k, c in PHASE_COLORS.items() if c]
    fig.legend(handles=handles, loc="upper center", ncol=4, fontsize=7, bbox_to_anchor=(0.5, 1 - 0.3 / height))
    fig.suptitle(f"Latency trace with the estimators' predictions (made before {each})",
                 y=1 - 0.05 / height, fontsize=10)
    return fig


def _plot_error_cdf(pred: pd.DataFrame):
    from study import plotting

    fig, ax = plotting.figure()
    for est in E.ESTIMATORS:
        a = np.sort(pred.loc[(pred.estimator == est) & pred.ape.notna(), "ape"].to_numpy() * 100)
        if a.size:
            ax.step(np.maximum(a, 1e-2), np.arange(1, a.size + 1) / a.size, where="post", label=E.LABELS[est],
                    color=EST_STYLE[est]["color"], ls=EST_STYLE[est]["ls"])
    ax.axvline(10, color="grey", lw=0.8, ls=":")
    ax.annotate(" ±10% (nn-Meter's accuracy bound)", xy=(10, 0.97), fontsize=7, color="grey", ha="left", va="top")
    ax.set_xscale("log")
    ax.set(xlabel="absolute percentage error (%)", ylabel="share of predictions",
           title="Error CDF per estimator (all candidates, whole scenario)")
    ax.legend(fontsize=7, loc="upper left")
    return fig


def _plot_mape_by_phase(eb: pd.DataFrame):
    from study import plotting

    kinds = [k for k in S.PHASE_KINDS if k in set(eb.phase_kind)]
    fig, ax = plotting.figure()
    w = 0.8 / len(E.ESTIMATORS)
    x = np.arange(len(kinds))
    for i, est in enumerate(E.ESTIMATORS):
        e = eb[eb.estimator == est].set_index("phase_kind").reindex(kinds)
        ax.bar(x + (i - (len(E.ESTIMATORS) - 1) / 2) * w, e.mape_pct, w, label=E.LABELS[est],
               color=EST_STYLE[est]["color"],
               yerr=[e.mape_pct - e.mape_lo, e.mape_hi - e.mape_pct], capsize=2, error_kw=dict(lw=0.8))
    ax.set_xticks(x, kinds)
    if eb.mape_pct.max() > 20 * max(eb.mape_pct.min(), 1e-9):
        ax.set_yscale("log")
    ax.set(ylabel="MAPE (%), 95% block-bootstrap CI", title="Estimator error by phase kind")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    return fig


def _plot_regret(rg: pd.DataFrame):
    from study import plotting

    part = rg[rg.model == ("all" if "all" in set(rg.model) else rg.model.iloc[0])]
    part = part.set_index("policy").reindex([p for p in E.POLICIES if p in set(part.policy)]).reset_index()
    fig, ax = plotting.figure()
    x = np.arange(len(part))
    colors = [EST_STYLE.get(p, {}).get("color", "#555555") for p in part.policy]
    ax.bar(x, part.regret_mean_ms, color=colors,
           yerr=[part.regret_mean_ms - part.regret_lo, part.regret_hi - part.regret_mean_ms], capsize=3)
    for xi, r in zip(x, part.itertuples()):
        ax.annotate(f"{r.regret_rel_pct:.0f}%", xy=(xi, r.regret_hi if not np.isnan(r.regret_hi) else 0),
                    xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7)
    ax.set_xticks(x, [E.LABELS[p] for p in part.policy], rotation=25, ha="right", fontsize=7)
    ax.set(ylabel="mean regret per inference (ms), 95% CI",
           title="Scheduler regret vs the oracle (label: % of the oracle's latency)")
    return fig


def plot(ctx, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    from study import plotting

    each = "each benchmark_model block: its mean" if not devices.supports(ctx.device_spec, PYTHON) else "each inference"
    pred = tables.get("predictions")
    return plotting.draw_and_save(ctx, [
        ("trace", pred, lambda p: _plot_trace(p, tables.get("sensors"), each)),
        ("error_cdf", pred, _plot_error_cdf),
        ("mape_by_phase", tables.get("errors_by_phase"), _plot_mape_by_phase),
        ("regret", tables.get("regret"), _plot_regret)])


def replicate_params(p: dict[str, Any]) -> dict[str, Any]:
    """What an independent run measures (``study.replicate``): the same seeded scenario and
    candidates (C7's trace, C9's contexts) for C7's primary model."""
    prim = C.CLAIMS["C7"].primary_model
    return {**p, "models": [prim] if prim in p["models"] else list(p["models"])[:1]}


def run(ctx) -> dict[str, Any]:
    from study import replicate

    ctx.write_fingerprint()
    data = measure(ctx)
    tables = replicate.independent_runs(ctx, analyse(ctx, data), replicate_params(ctx.params))
    return {"data": data, "tables": tables, "figures": plot(ctx, tables)}
