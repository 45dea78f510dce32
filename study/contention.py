"""Finding 3: contention from competing processes, and the cost of inference to co-running apps.

Claims (docs/paper.md):

* **C5**: competing processes inflate latency far more on the CPU than on the GPU or DSP
  (paper: with 3 competitors, CPU 10.2x, GPU 2.1x, DSP 1.8x). Measurable form: the
  slowdown (median latency with 3 same-processor competitors / median with none) of the
  CPU configuration divided by that of the GPU configuration, geometric mean over the
  models, with a bootstrap CI; reproduced if the CI lies above 1.
* **C6**: dedicating processors to inference degrades co-running apps (paper: over 90%
  frame drops for VGG-16 on the GPU beside video playback). Measurable form: the
  missed-deadline share of a co-running video app while inference runs continuously on
  a processor, minus the app's share when idle, in percentage points, with a block
  bootstrap CI; reproduced if the CI lies above a stated materiality threshold
  (``c6_threshold_pp``).

Method.

*Contention* (``measurement='latency'`` rows). A *condition* is the competitor state:
none, or ``n`` competitors (``study.competitors``) of one kind (cpu, memory, gpu) on one
side: ``competitor_cores='same'`` (pinned to the inference's core group) or ``'cross'``
(the other core group); GPU competitors keep their host threads on the other group and
load the GPU. The competitors are started once and kept on stand-by (SIGSTOP) between
visits. Conditions are visited in a seeded random order, ``rounds`` times each:
resume ``n`` competitors of the kind pinned to the condition's cores, let them ramp up
(``ramp_s``), measure every model x
system-under-test configuration with the harness (``samples_per_visit`` timed calls
after the profile's warm-up, configurations interleaved in random order, every sample
appended to ``raw/contention.jsonl`` as taken), pause them again. Sessions stay open across
visits (loading a model is not what is measured). ``placement`` says whether the
competitors load the processor the inference runs on (``same``: CPU-side competitors on
a CPU configuration's cores, GPU competitors for a GPU configuration) or not (``cross``).

*Co-running app* (``measurement='frame'`` and ``'corun_inference'`` rows). The app
(``study.corunning_app``), a separate foreground process, plays a real clip at a fixed
frame budget (``fps``), decoding and drawing each frame on the CPU or the GPU, and logs
every frame (``raw/contention_app.jsonl``): its work time and whether it missed its
deadline. It runs alone (idle baseline) and while this process runs inference
back-to-back on one processor (each inference appended to ``raw/contention.jsonl``).
Runs are ordered at random within each round.

Statistics: an OLS of log latency (statsmodels) with a baseline per model x system and a
slope per competitor for each kind x core side x system; the processor x competitors
interaction (do slopes differ between systems for the same kind of competitor?) is
tested jointly with a Wald F test on HC3 covariance (and a nested-model F test).
Slowdowns are ratios of medians with percentile bootstrap CIs
(``study.stats.ratio_of_medians_ci``). Sample-level bootstraps treat the samples of a
condition as independent; the rounds spread drift over conditions but the intervals do
not widen for it.

On a phone (``device=adb:SERIAL``; ``study.phone``). *Contention*: the same conditions and
seeded visits; the systems are ``benchmark_model`` on the phone's CPU (XNNPACK), GPU
(delegate) and, where the phone has one, the NPU (NNAPI; ``npu/litert``, the paper's DSP);
PyTorch and ONNX Runtime systems are absent (no Python there). Competitors run on the phone
(``AdbCompetitorPool``: ``cpu`` shell busy loops, ``memory`` dd of 4 MiB blocks, ``gpu``
benchmark_model on the GPU in a loop with the first model), pinned with ``taskset``,
started at each visit and ended after it (no stand-by: no pause/resume over adb);
``memory_mib`` does not apply. Each visit measures every system in ``benchmark_model``
calls of up to ``block_size`` runs until ``samples_per_visit`` runs; one row per call with
its mean (``aggregate=True``): slowdowns, CIs and the OLS use the per-call means as samples.
*Co-running app*: the app named in ``adb.gfxinfo_package`` (started by hand, e.g. video
playback) renders on the phone; each run resets ``dumpsys gfxinfo``, then polls its
framestats while the phone is idle or while ONE benchmark_model call runs inference for
``corun_seconds`` (``--min_secs``); a frame is missed when it took longer than its frame
interval (janky). The app's frame rate is the display's (``FrameInterval``), not ``fps``
(the C6 row uses the measured rate); ``renders``, ``clip``, ``canvas`` and ``app_core_group``
do not apply. Without a package, C6 is not measurable (reason).
"""
from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from study import devices, phone, stats
from study.competitors import KINDS, CompetitorError, CompetitorPool, available_kinds, spawn_child, wait_ready
from study.config import check_models
from study.devices import PYTHON
from study.measure import Config, HarnessSettings, current_affinity, set_affinity
from study.schema import STAGES, ParamError

FINDING = "contention"
APP_LOG = "contention_app"
SUTS = ("cpu/litert", "cpu/onnxruntime", "cpu/torch", "gpu/litert", "gpu/torch")
PLACEMENTS = ("same", "cross")
RENDERS = ("cpu", "gpu")
CLIPS = ("bikes", "bigbuckbunny", "carphone")
PAPER_SLOWDOWN = {"cpu": 10.2, "gpu": 2.1, "dsp": 1.8}   # docs/paper.md C5, reference marks only
PAPER_C5 = "3 competitors: CPU 10.2x, GPU 2.1x, DSP 1.8x"
PAPER_C6 = "over 90% frame drops (VGG-16 on GPU, MACE, beside video playback)"
PAPER_DROP_PCT = 90.0


PARAMS = STAGES["contention"]   # the schema of this stage's section (study.schema)


def check_params(resolved: dict[str, Any], params: dict[str, Any]) -> None:
    check_models(FINDING, list(resolved["models"]), params)
    check_models(FINDING, list(resolved["corun_models"]), params)
    if resolved["claim_fps"] not in resolved["fps"]:
        raise ParamError(f"{FINDING}.claim_fps: {resolved['claim_fps']} is not one of fps {resolved['fps']}")
    if len(resolved["canvas"]) != 2 or not all(isinstance(v, int) for v in resolved["canvas"]):
        raise ParamError(f"{FINDING}.canvas: [width, height] in pixels expected")


# =========================================================================== measurement helpers
def split_sut(sut: str) -> tuple[str, str]:
    processor, engine = sut.split("/")
    return processor, engine


def choose_groups(groups: dict[str, list[int]], wanted: str) -> tuple[str, str | None]:
    """(inference group, the other group or None). ``auto``: big, else g0, else all."""
    disjoint = [g for g in groups if g != "all"]
    if wanted == "auto":
        wanted = "big" if "big" in groups else ("g0" if "g0" in groups else "all")
    if wanted not in groups:
        raise ParamError(f"{FINDING}.inference_core_group: {wanted!r} is not a core group of this device "
                         f"({sorted(groups)})")
    others = [g for g in disjoint if g != wanted and not set(groups[g]) & set(groups[wanted])]
    return wanted, (others[0] if others else None)


def placement_of(processor: str, kind: str, competitor_cores: str) -> str:
    """Whether competitors load the processor the inference runs on."""
    if kind == "none":
        return "none"
    if kind == "gpu":
        return "same" if processor == "gpu" else "cross"
    return "same" if processor == "cpu" and competitor_cores == "same" else "cross"


@dataclass(frozen=True)
class Condition:
    kind: str              # none | cpu | memory | gpu
    n: int
    competitor_cores: str  # none | same | cross

    @property
    def label(self) -> str:
        return "none" if self.n == 0 else f"{self.n} {self.kind} ({self.competitor_cores} cores)"


def conditions(kinds: list[str], ns: list[int], placements: list[str], has_cross: bool) -> list[Condition]:
    out = [Condition("none", 0, "none")] if 0 in ns else []
    for kind in kinds:
        for n in sorted(x for x in ns if x > 0):
            if kind == "gpu":
                out.append(Condition(kind, n, "cross" if has_cross else "same"))
                continue
            for pl in placements:
                if pl == "cross" and not has_cross:
                    continue
                out.append(Condition(kind, n, pl))
    return out


def schedule(conds: list, rounds: int, seed: int) -> list[tuple[int, int, Any]]:
    """(visit, round, condition): every condition (or co-running app run) once per round, in a
    seeded random order, numbered in that order."""
    rng = random.Random(seed)
    out = []
    for r in range(rounds):
        order = list(conds)
        rng.shuffle(order)
        base = len(out)
        out.extend((base + i, r, c) for i, c in enumerate(order))
    return out


class _Shared:
    """A session kept open across visits: the harness's close() does nothing."""

    def __init__(self, sess):
        self.sess = sess

    def run(self):
        self.sess.run()

    def close(self):
        pass


class SessionCache:
    """Sessions opened once (or their failure remembered), closed at the end."""

    def __init__(self):
        self._open: dict[str, Any] = {}
        self._failed: dict[str, BaseException] = {}

    def get(self, key: str, opener):
        if key in self._failed:
            raise self._failed[key]
        if key not in self._open:
            try:
                self._open[key] = opener()
            except Exception as e:
                self._failed[key] = e
                raise
        return self._open[key]

    def shared_opener(self, key: str, opener):
        return lambda: _Shared(self.get(key, opener))

    def close(self):
        for s in self._open.values():
            getattr(s, "close", lambda: None)()
        self._open.clear()


def visit_settings(base: HarnessSettings, samples: int, max_seconds: float, seed: int,
                   warmup: int | None = None) -> HarnessSettings:
    """One visit: ``warmup`` untimed then ``samples`` timed calls per configuration in one
    block (min = max: the condition's rounds, not the stopping rule, give n)."""
    return replace(base, warmup=base.warmup if warmup is None else warmup, min_samples=samples,
                   max_samples=samples, block_size=samples, max_seconds=max_seconds, cooldown_s=0.0, seed=seed,
                   max_open_sessions=max(base.max_open_sessions, 64))


def availability_rows(ctx, models: list[str], suts: list[str], kinds: list[str]) -> pd.DataFrame:
    """Every model x system and competitor kind, usable or not with the reason; the NPU
    (the paper's DSP) is always listed."""
    rows = []
    for m in models:
        for sut in suts:
            proc, eng = split_sut(sut)
            a = ctx.availability([m], [eng], [proc]).iloc[0].to_dict()
            rows.append(dict(what="system", model=m, sut=sut, processor=proc, engine=eng, kind="",
                             available=bool(a["available"]), reason=a["reason"]))
        npu = ctx.device.processor("npu")
        rows.append(dict(what="system", model=m, sut="npu/-", processor="npu", engine="", kind="",
                         available=False, reason=("the paper's DSP: " + (npu.reason or "no NPU/DSP usable"))
                         if not npu.available else "NPU present but no engine of the study targets it here"))
    for kind, why in available_kinds(ctx.device).items():
        if kind in kinds:
            rows.append(dict(what="competitor", model="", sut="", processor="", engine="", kind=kind,
                             available=why is None, reason=why or ""))
    return pd.DataFrame(rows)


# =========================================================================== measure
def _usable(sel: pd.DataFrame) -> bool:
    return bool(len(sel)) and bool(sel.available.all())


def usable_kinds_and_suts(avail: pd.DataFrame, p: dict[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """The competitor kinds and (model, system) pairs that the availability table says can run."""
    kinds_ok = [k for k in p["kinds"] if _usable(avail[(avail.what == "competitor") & (avail.kind == k)])]
    suts_ok = [(m, s) for m in p["models"] for s in p["suts"]
               if _usable(avail[(avail.what == "system") & (avail.model == m) & (avail.sut == s)])]
    return kinds_ok, suts_ok


def _warm_sessions(cfg_for, suts_ok: list[tuple[str, str]], warmup: int, all_cores: list[int]) -> None:
    """Open and warm every session before any competitor starts."""
    for m, s in suts_ok:
        cfg = cfg_for(m, s, -1, -1, Condition("none", 0, "none"))
        try:
            sess = cfg.opener()
            set_affinity(cfg.cores)
            for _ in range(max(1, warmup)):
                sess.run()
        except Exception:
            pass  # remembered by the cache; the harness records it as failed in every visit
        finally:
            set_affinity(all_cores)


def _start_standby(pool, conds: list[Condition], gpu_cores: list[int],
                   inf_cores: list[int]) -> tuple[dict[str, list[int]], dict[str, str]]:
    """Competitors on stand-by: started once (the most any condition needs, of each kind) and
    paused (SIGSTOP), to be resumed, re-pinned, for the visits that need them. Returns their
    pids per kind and, for each kind that could not start, why."""
    needed = {k: max(c.n for c in conds if c.kind == k) for k in {c.kind for c in conds if c.n}}
    standby: dict[str, list[int]] = {}
    standby_error: dict[str, str] = {}
    for kind in sorted(needed):
        try:
            standby[kind] = pool.start(kind, needed[kind], gpu_cores if kind == "gpu" else inf_cores)
            pool.pause(standby[kind])
        except CompetitorError as e:
            standby_error[kind] = str(e)
    return standby, standby_error


def _standby_for(cond: Condition, pool, standby: dict[str, list[int]],
                 standby_error: dict[str, str]) -> tuple[list[int], str | None]:
    """The stand-by competitors a condition resumes, and why they are not running (None: they are)."""
    if not cond.n:
        return [], None
    active = standby.get(cond.kind, [])[:cond.n]
    lost = [pid for pid in active if pid not in pool.pids()]
    return active, standby_error.get(cond.kind) or (f"competitor(s) {lost} exited" if lost else None)


def _failed_rows(configs: list[Config], why: str) -> pd.DataFrame:
    return pd.DataFrame([{**c.columns, "measurement": "failed", "reason": why[:500]} for c in configs])


def _run_visit(ctx, log, pool, configs: list[Config], settings: HarnessSettings, active: list[int],
               cores: list[int] | None, all_cores: list[int]) -> tuple[Any, float, float, float, int]:
    """One visit measured: the competitors ``active`` resumed on ``cores`` and ramped up, every
    configuration through the harness, the competitors paused again. Returns the harness, the
    visit's start (wall clock), its measuring seconds, the competitors' CPU seconds meanwhile
    and how many competitors still ran at its end."""
    t_start = time.time()
    harness = ctx.harness(log, settings, progress=False)
    try:
        if active:
            pool.resume(active, cores)
            time.sleep(ctx.params["ramp_s"])
        cpu0, t0 = pool.cpu_seconds(), time.monotonic()
        harness.run(configs, resume=False)
        cpu1, t1 = pool.cpu_seconds(), time.monotonic()
        alive = sum(pool.running().values())
    finally:
        pool.pause(active)
        set_affinity(all_cores)
    return harness, t_start, t1 - t0, cpu1 - cpu0, alive


def measure_contention(ctx, avail: pd.DataFrame, cache: SessionCache) -> pd.DataFrame:
    p = ctx.params
    groups = {k: list(v) for k, v in ctx.device.core_groups().items()}  # before anything pins us
    inf_group, cross_group = choose_groups(groups, p["inference_core_group"])
    kinds_ok, suts_ok = usable_kinds_and_suts(avail, p)
    conds = conditions(kinds_ok, list(p["n_competitors"]), list(p["core_placements"]), cross_group is not None)
    visits = schedule(conds, p["rounds"], ctx.seed)
    log = ctx.raw_log()
    memory_bytes = p["memory_mib"] * 2**20 or None
    gpu_cores = groups[cross_group] if cross_group else groups[inf_group]

    def cfg_for(model, sut, visit, rnd, cond):
        proc, eng = split_sut(sut)
        c = ctx.latency_config(model, eng, proc, inf_group, sut=sut, kind=cond.kind, n_competitors=cond.n,
                               competitor_cores=cond.competitor_cores,
                               placement=placement_of(proc, cond.kind, cond.competitor_cores),
                               condition=cond.label, round=rnd, visit=visit)
        key = f"contention|{model}|{sut}|{inf_group}"
        return Config(columns=c.columns, opener=cache.shared_opener(key, c.opener), cores=c.cores)

    def cores_of(cond: Condition) -> list[int]:
        if cond.kind == "gpu":
            return gpu_cores
        return groups[inf_group if cond.competitor_cores == "same" else cross_group]

    def recorded(configs, settings, rec) -> list[pd.DataFrame]:
        return _visit_frames(ctx.samples(log, configs, settings, run_ids=[rec["run_id"]]),
                             ctx.failures(log, configs, settings, run_ids=[rec["run_id"]]), rec)

    _warm_sessions(cfg_for, suts_ok, ctx.settings.warmup, groups["all"])
    frames = []
    with CompetitorPool(device=ctx.device, memory_bytes=memory_bytes) as pool:
        standby, standby_error = _start_standby(pool, conds, gpu_cores, groups[inf_group])
        finished = visit_records(log)
        for visit, rnd, cond in visits:
            configs = [cfg_for(m, s, visit, rnd, cond) for m, s in suts_ok]
            settings = visit_settings(ctx.settings, p["samples_per_visit"], p["visit_max_seconds"],
                                      ctx.seed + visit, p["visit_warmup"])
            rec = _matching_visit(finished, visit, cond, settings.hash(ctx.env))
            if rec is not None:  # resumed: measured and recorded before a kill
                frames += recorded(configs, settings, rec)
                continue
            # a visit without its record (killed before it) is measured again, its samples ignored
            cores = cores_of(cond) if cond.n else None
            active, why = _standby_for(cond, pool, standby, standby_error)
            if why:
                log.append({"type": "visit_failed", "visit": visit, "round": rnd, "kind": cond.kind,
                            "n": cond.n, "competitor_cores": cond.competitor_cores, "reason": why[:500]})
                frames.append(_failed_rows(configs, f"competitors not running: {why}"))
                continue
            harness, t_start, measure_s, cpu_s, alive = _run_visit(ctx, log, pool, configs, settings, active,
                                                                   cores, groups["all"])
            rec = _visit_record(visit, rnd, cond, cores, active, t_start, measure_s, cpu_s, alive,
                                harness.run_id, settings.hash(ctx.env))
            log.append(rec)
            if ctx.settings.cooldown_s > 0:
                time.sleep(ctx.settings.cooldown_s)
            frames += recorded(configs, settings, rec)
    return _latency_frame(frames, inf_group, cross_group)


def _visit_record(visit: int, rnd: int, cond, cores, pids, t_start: float, measure_s: float,
                  competitor_cpu_s: float, alive: int, run_id: str, settings_hash: str) -> dict:
    """The raw log's record of one visit, written after all of its samples: its condition, where
    it ran, whether the competitors were still running at its end (competitor CPU seconds: NaN
    where not readable, on a phone), and the measuring run (``run_id``) whose samples it owns.
    A visit is done only once this record is in the log."""
    return {"type": "visit", "visit": visit, "round": rnd, "kind": cond.kind, "n": cond.n,
            "competitor_cores": cond.competitor_cores, "cores": cores, "pids": pids, "t_start": t_start,
            "t_end": time.time(), "measure_s": measure_s, "competitor_cpu_s": competitor_cpu_s,
            "competitors_alive_at_end": alive, "run_id": run_id, "settings_hash": settings_hash}


def visit_records(log) -> dict[int, dict]:
    """The last complete record of every visit in the log's current session."""
    return {int(r["visit"]): r for r in log.records("visit") if r.get("run_id")}


def _matching_visit(finished: dict[int, dict], visit: int, cond, settings_hash: str) -> dict | None:
    """The visit's record if it was measured under this condition and settings."""
    r = finished.get(visit)
    if r is None or r.get("settings_hash") != settings_hash or (r.get("kind"), r.get("n"),
                                                                r.get("competitor_cores")) != \
            (cond.kind, cond.n, cond.competitor_cores):
        return None
    return r


def _visit_frames(samples: pd.DataFrame, failed: pd.DataFrame, rec: dict) -> list[pd.DataFrame]:
    """A done visit's rows: its run's samples with the visit record's competitor figures, and its
    failed configurations."""
    out = [_with_visit_info(samples, rec)]
    if len(failed):
        out.append(failed.assign(measurement="failed"))
    return out


def _latency_frame(frames: list[pd.DataFrame], inf_group: str, cross_group: str | None) -> pd.DataFrame:
    """The visits' samples and failures in one table, labelled with the core groups."""
    out = pd.concat([f for f in frames if len(f)], ignore_index=True) if frames else pd.DataFrame()
    if len(out):
        if "measurement" not in out:
            out.insert(0, "measurement", "latency")
        out["measurement"] = out["measurement"].fillna("latency")
        out["inference_core_group"] = inf_group
        out["cross_core_group"] = cross_group or ""
    return out


def _with_visit_info(df: pd.DataFrame, r: dict) -> pd.DataFrame:
    """The visit record's competitor CPU time, utilisation and survivors on every sample row."""
    if not len(df):
        return df
    df = df.copy()
    n = max(int(r.get("n", 0) or 0), 1)
    df["competitor_cpu_s"] = r.get("competitor_cpu_s", np.nan)
    df["competitor_util"] = (r.get("competitor_cpu_s", np.nan) / r["measure_s"] / n
                             if r.get("measure_s") else np.nan)
    df["competitors_alive_at_end"] = r.get("competitors_alive_at_end", np.nan)
    return df


def pending_tag(tag: dict[str, Any], finished, attempt: str) -> dict[str, Any] | None:
    """A run's tag with its key (the tag's JSON) and ``attempt``; None when a run of that key is
    already done (in ``finished``)."""
    tag = {**tag, "run_key": json.dumps(tag, sort_keys=True)}
    if tag["run_key"] in finished:
        return None
    return {**tag, "attempt": attempt}


def measure_corun(ctx, avail: pd.DataFrame, cache: SessionCache) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(frames, inference samples) of the co-running app runs."""
    from study.corunning_app import render_reason

    p = ctx.params
    groups = {k: list(v) for k, v in ctx.device.core_groups().items()}
    for g in (p["corun_core_group"], p["app_core_group"]):
        if g not in groups:
            raise ParamError(f"{FINDING}: core group {g!r} unknown on this device ({sorted(groups)})")
    renders_ok = [r for r in p["renders"] if render_reason(r, ctx.device) is None]
    infs: list[tuple[str, str] | None] = [None]
    for m in p["corun_models"]:
        for s in p["corun_suts"]:
            proc, eng = split_sut(s)
            a = ctx.availability([m], [eng], [proc]).iloc[0]
            if a.available:
                infs.append((m, s))
    log, app_log = ctx.raw_log(), ctx.raw_log(APP_LOG)
    app_path = str(app_log.path)
    runs = schedule([(fps, render, inf) for fps in p["fps"] for render in renders_ok for inf in infs],
                    p["corun_rounds"], ctx.seed + 7)
    # a run is done once its corun_done record (after the app exited and every inference beside it
    # was logged) is in the log; a run cut by a kill is run again as a new attempt, its records ignored
    finished = corun_finished(log, "corun_done")
    stamp = f"{time.time_ns():x}-{os.getpid()}"
    original = current_affinity()
    w, h = p["canvas"]
    failures = []
    for run, rnd, (fps, render, inf) in runs:
        model, sut = inf if inf else ("", "")
        proc_name, eng = split_sut(sut) if sut else ("none", "")
        tag = pending_tag({"run": run, "corun_round": rnd, "fps": fps, "render": render, "inference_model": model,
                           "inference_sut": sut or "idle", "inference_processor": proc_name,
                           "inference_engine": eng, "clip": p["clip"]}, finished, f"{stamp}-{run}")
        if tag is None:
            continue
        sess = None
        if inf:
            c = ctx.latency_config(model, eng, proc_name, p["corun_core_group"])
            try:
                sess = cache.get(f"corun|{model}|{sut}|{p['corun_core_group']}", c.opener)
            except Exception as e:
                failures.append({**tag, "reason": f"inference failed to open: {type(e).__name__}: {e}"[:400]})
                continue
            set_affinity(c.cores)
            sess.run()
        args = ["--fps", fps, "--seconds", p["corun_seconds"], "--clip", p["clip"], "--render", render,
                "--canvas", f"{w}x{h}", "--warmup", p["app_warmup_s"], "--log", app_path, "--tag", json.dumps(tag)]
        app, err = spawn_child("study.corunning_app", args, cores=groups[p["app_core_group"]])
        try:
            problems = wait_ready([app], 120.0)
            if problems:
                err.seek(0)
                failures.append({**tag, "reason": f"app: {problems[app.pid]}: {err.read().decode(errors='replace')[-300:]}"})
                continue
            i = 0
            if sess is not None:
                while app.poll() is None:
                    t0 = time.perf_counter_ns()
                    sess.run()
                    dt = (time.perf_counter_ns() - t0) / 1e6
                    log.append({"type": "corun_sample", **tag, "sample": i, "latency_ms": dt, "t_wall": time.time()})
                    i += 1
            app.wait(timeout=p["corun_seconds"] + p["app_warmup_s"] + 120)
            if app.returncode != 0:
                err.seek(0)
                failures.append({**tag, "reason": f"app exited {app.returncode}: "
                                                  f"{err.read().decode(errors='replace')[-300:]}"})
            else:
                log.append({"type": "corun_done", "run_key": tag["run_key"], "attempt": tag["attempt"],
                            "samples": i, "t_wall": time.time()})
        finally:
            if app.poll() is None:
                app.kill()
                app.wait()
            err.close()
            set_affinity(original)
    return _corun_tables(app_log, log, failures, ("frame",), corun_finished(log, "corun_done"))


# =========================================================================== the phone path
PHONE_RENDER = "phone app"
PHONE_NPU_SUT = "npu/litert"


def phone_suts(suts: list[str]) -> list[str]:
    """The systems on a phone: the requested ones plus the NPU through NNAPI (absent with the
    phone's reason where it has none)."""
    return list(suts) + ([PHONE_NPU_SUT] if PHONE_NPU_SUT not in suts else [])


def phone_availability_rows(ctx, models: list[str], suts: list[str], kinds: list[str],
                            reasons: dict[str, str | None]) -> pd.DataFrame:
    rows = []
    for m in models:
        for sut in suts:
            proc, eng = split_sut(sut)
            why = phone.availability(ctx, m, eng, proc)
            if why and proc == "npu":
                why = f"the paper's DSP: {why}"
            rows.append(dict(what="system", model=m, sut=sut, processor=proc, engine=eng, kind="",
                             available=why is None, reason=why or ""))
    for kind in kinds:
        why = reasons.get(kind, f"unknown competitor kind {kind}")
        rows.append(dict(what="competitor", model="", sut="", processor="", engine="", kind=kind,
                         available=why is None, reason=why or ""))
    return pd.DataFrame(rows)


def measure_contention_phone(ctx, avail: pd.DataFrame, pool, groups: dict[str, list[int]]) -> pd.DataFrame:
    from study.devices.adb import CompetitorError as PhoneCompetitorError

    p = ctx.params
    inf_group, cross_group = choose_groups(groups, p["inference_core_group"])

    def usable(sel: pd.DataFrame) -> bool:
        return bool(len(sel)) and bool(sel.available.all())

    kinds_ok = [k for k in p["kinds"] if usable(avail[(avail.what == "competitor") & (avail.kind == k)])]
    suts_ok = [(m, s) for m in p["models"] for s in phone_suts(p["suts"])
               if usable(avail[(avail.what == "system") & (avail.model == m) & (avail.sut == s)])]
    conds = conditions(kinds_ok, list(p["n_competitors"]), list(p["core_placements"]), cross_group is not None)
    visits = schedule(conds, p["rounds"], ctx.seed)
    log = ctx.raw_log()
    gpu_cores = groups[cross_group] if cross_group else groups[inf_group]

    def cfg_for(model, sut, visit, rnd, cond):
        proc, _ = split_sut(sut)
        return phone.config(ctx, model, proc, inf_group, sut=sut, kind=cond.kind, n_competitors=cond.n,
                            competitor_cores=cond.competitor_cores,
                            placement=placement_of(proc, cond.kind, cond.competitor_cores),
                            condition=cond.label, round=rnd, visit=visit)

    def cores_of(cond: Condition) -> list[int]:
        if cond.kind == "gpu":
            return gpu_cores
        return groups[inf_group if cond.competitor_cores == "same" else cross_group]

    frames = []
    finished = visit_records(log)
    for visit, rnd, cond in visits:
        configs = [cfg_for(m, s, visit, rnd, cond) for m, s in suts_ok]
        if not configs:
            break
        settings = replace(visit_settings(ctx.settings, p["samples_per_visit"], p["visit_max_seconds"],
                                          ctx.seed + visit, p["visit_warmup"]),
                           block_size=max(1, min(ctx.settings.block_size, p["samples_per_visit"])))
        rec = _matching_visit(finished, visit, cond, settings.hash(ctx.env))
        if rec is not None:  # resumed: measured and recorded before a kill
            done = ctx.samples(log, configs, settings, run_ids=[rec["run_id"]])
            frames += _visit_frames(done, phone.failures(done, configs), rec)
            continue
        # a visit without its record (killed before it) is measured again, its calls ignored
        run_id = f"visit{visit}-{time.time_ns():x}-{os.getpid()}"
        pids: list[int] = []
        cores = cores_of(cond) if cond.n else None
        t_start = time.time()
        try:
            if cond.n:
                try:
                    pids = pool.start(cond.kind, cond.n, cores)
                except PhoneCompetitorError as e:
                    log.append({"type": "visit_failed", "visit": visit, "round": rnd, "kind": cond.kind, "n": cond.n,
                                "competitor_cores": cond.competitor_cores, "reason": str(e)[:500]})
                    frames.append(pd.DataFrame([{**c.columns, "measurement": "failed",
                                                 "reason": f"competitors not running: {e}"[:500]} for c in configs]))
                    continue
                time.sleep(p["ramp_s"])
            t0 = time.monotonic()
            df = phone.measure(ctx, configs, log, settings, run_id=run_id, resume=False)
            t1 = time.monotonic()
            alive = sum(pool.running().values()) if pids else 0
        finally:
            if pids:
                pool.stop(pids)
        rec = _visit_record(visit, rnd, cond, cores, pids, t_start, t1 - t0, float("nan"), alive, run_id,
                            settings.hash(ctx.env))
        log.append(rec)
        if ctx.settings.cooldown_s > 0:
            time.sleep(ctx.settings.cooldown_s)
        frames += _visit_frames(df, phone.failures(df, configs), rec)
    return _latency_frame(frames, inf_group, cross_group)


def corun_finished(log, done_type: str) -> dict[str, str]:
    """run_key -> the attempt that finished it, from the log's done records of co-running runs."""
    return {r["run_key"]: r["attempt"] for r in log.records(done_type) if r.get("run_key") and r.get("attempt")}


def _done_attempts(df: pd.DataFrame, done: dict[str, str]) -> pd.DataFrame:
    """The rows of finished attempts only (an attempt cut by a kill leaves rows that do not count)."""
    if not len(df):
        return df
    if "attempt" not in df or "run_key" not in df:
        return df.iloc[0:0]
    keep = [done.get(k) == a for k, a in zip(df["run_key"], df["attempt"])]
    return df[keep].reset_index(drop=True)


def _corun_tables(app_log, log, failures: list[dict], app_types: tuple[str, ...], done: dict[str, str]
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the app's records of ``app_types`` and the failed runs, the inferences beside the app)
    from the raw logs, each labelled with its measurement; records of the finished attempts
    (``done``: run_key -> attempt) only."""
    label = {"frame": "frame", "gfxinfo": "corun_gfxinfo"}
    parts = [_done_attempts(pd.DataFrame(app_log.records(t)), done) for t in app_types]
    for t, part in zip(app_types, parts):
        if len(part):
            part.insert(0, "measurement", label[t])
    parts.append(pd.DataFrame([{**f, "measurement": "corun_failed"} for f in failures]))
    parts = [x for x in parts if len(x)]
    frames = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    samples = _done_attempts(pd.DataFrame(log.records("corun_sample")), done)
    if len(samples):
        samples.insert(0, "measurement", "corun_inference")
    return frames, samples


def measure_corun_phone(ctx, avail: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(frames and gfxinfo counters, inference beside the app) on a phone."""
    from study.devices import DeviceError
    from study.engines.base import EngineUnavailable

    p = ctx.params
    groups = ctx.device.core_groups()
    pkg = ctx.device.settings.gfxinfo_package
    if not pkg:
        return (pd.DataFrame([dict(measurement="corun_failed", inference_sut="", render=PHONE_RENDER,
                                   reason="no co-running app on the phone: set adb.gfxinfo_package to the package of "
                                          "an app playing video (e.g. org.videolan.vlc) and start it")]),
                pd.DataFrame())
    if p["corun_core_group"] not in groups:
        raise ParamError(f"{FINDING}.corun_core_group: {p['corun_core_group']!r} unknown on this phone "
                         f"({sorted(groups)})")
    infs: list[tuple[str, str] | None] = [None]
    for m in p["corun_models"]:
        for s in phone_suts(p["corun_suts"]):
            proc, eng = split_sut(s)
            if phone.availability(ctx, m, eng, proc) is None:
                infs.append((m, s))
    log, app_log = ctx.raw_log(), ctx.raw_log(APP_LOG)
    rng = random.Random(ctx.seed + 7)
    runs = []
    for rnd in range(p["corun_rounds"]):
        block = list(infs)
        rng.shuffle(block)
        base = len(runs)
        runs.extend((base + i, rnd, b) for i, b in enumerate(block))
    # a run is done once its app_done record (after its frames, counters and inference) is in the
    # app log; a run cut by a kill is run again as a new attempt, its records ignored
    finished = corun_finished(app_log, "app_done")
    stamp = f"{time.time_ns():x}-{os.getpid()}"
    failures = []
    for run, rnd, inf in runs:
        model, sut = inf if inf else ("", "")
        proc_name, eng = split_sut(sut) if sut else ("none", "")
        tag = {"run": run, "corun_round": rnd, "render": PHONE_RENDER, "inference_model": model,
               "inference_sut": sut or "idle", "inference_processor": proc_name, "inference_engine": eng,
               "clip": "", "package": pkg}
        tag["run_key"] = json.dumps(tag, sort_keys=True)
        if tag["run_key"] in finished:
            continue
        tag["attempt"] = f"{stamp}-{run}"
        during = None
        if inf:
            cfg = phone.config(ctx, model, proc_name, p["corun_core_group"])
            during = (lambda c=cfg: phone.block(ctx, c, 1, ctx.settings.warmup,
                                                extra_flags={"min_secs": p["corun_seconds"]}))
        time.sleep(p["app_warmup_s"])  # the phone settles after the previous run
        try:
            fr, counters, res = phone.frame_trace(ctx, p["corun_seconds"], during)
        except (DeviceError, EngineUnavailable) as e:
            if getattr(e, "disconnected", False):
                raise
            failures.append({**tag, "reason": f"{type(e).__name__}: {e}"[:400]})
            continue
        fps = float(round(1000.0 / float(np.median(fr.frame_interval_ms)))) if len(fr) else np.nan
        for rec in fr.to_dict("records"):
            app_log.append({"type": "frame", **tag, "fps": fps, **rec})
        app_log.append({"type": "gfxinfo", **tag, "fps": fps, **counters})
        if res is not None:
            log.append({"type": "corun_sample", **tag, "fps": fps, "sample": 0, "latency_ms": res["latency_ms"],
                        "n": res["n"], "init_ms": res["init_ms"], "aggregate": True, "method": res["method"],
                        "t_wall": time.time()})
        app_log.append({"type": "app_done", "run_key": tag["run_key"], "attempt": tag["attempt"], "frames": len(fr)})
    return _corun_tables(app_log, log, failures, ("frame", "gfxinfo"), corun_finished(app_log, "app_done"))


def measure_phone(ctx) -> pd.DataFrame:
    """``measure`` on a phone (module docstring): the same tidy schema."""
    p = ctx.params
    groups = {k: list(v) for k, v in ctx.device.core_groups().items()}
    gpu_model = phone.gpu_competitor_model(ctx, p["models"])
    with phone.competitor_pool(ctx, gpu_model) as pool:
        reasons = pool.reasons()
        avail = pd.concat([phone_availability_rows(ctx, p["models"], phone_suts(p["suts"]), p["kinds"],
                                                   reasons).assign(part="contention"),
                           phone_availability_rows(ctx, p["corun_models"], phone_suts(p["corun_suts"]), [],
                                                   reasons).assign(part="corun")], ignore_index=True)
        pkg = ctx.device.settings.gfxinfo_package
        avail = pd.concat([avail, pd.DataFrame([dict(
            what="render", model="", sut="", processor=PHONE_RENDER, engine="", kind="", available=bool(pkg),
            reason="" if pkg else "no co-running app: adb.gfxinfo_package is empty", part="corun")])],
            ignore_index=True)
        lat = measure_contention_phone(ctx, avail, pool, groups)
    frames, corun = measure_corun_phone(ctx, avail)
    unavailable = avail[~avail.available].copy()
    unavailable.insert(0, "measurement", "unavailable")
    data = pd.concat([x for x in (lat, frames, corun, unavailable) if len(x)], ignore_index=True)
    if "available" in data:
        data["available"] = data["available"].astype("boolean")
    ctx.write(data)
    ctx.write(avail, table="availability")
    ctx.raw_log().mark_complete(finding=FINDING)
    ctx.raw_log(APP_LOG).mark_complete(finding=FINDING)
    return data


def phone_notes(data: pd.DataFrame, slowdown: pd.DataFrame) -> dict[str, str]:
    """What the phone's claim rows add to their reasons (method, the NPU as the paper's DSP)."""
    notes = {"C5": "phone: latencies are per-call means of benchmark_model blocks (no per-run latencies); the "
                   "bootstrap resamples call means; competitors run on the phone (shell busy loops, dd, "
                   "benchmark_model on the GPU)"}
    fr = data[data["measurement"] == "frame"] if "measurement" in data else data.iloc[:0]
    pkg = ", ".join(sorted(set(fr["package"].dropna().astype(str)))) if "package" in fr else ""
    notes["C6"] = (f"phone: {pkg} frames from dumpsys gfxinfo framestats (missed = janky: FrameCompleted - "
                   "IntendedVsync > frame interval); the frame rate is the display's, not contention.fps; inference = "
                   "one benchmark_model call running for corun_seconds") if len(fr) else ""
    sd = slowdown
    npu = sd[(sd.processor == "npu") & sd.available.astype(bool) & (sd.n_competitors > 0)] if len(sd) else sd
    if len(npu):
        nmax = npu.n_competitors.max()
        top = npu[npu.n_competitors == nmax]
        notes["dsp"] = "NPU (NNAPI; the paper's DSP) slowdown at {} competitors: {}".format(
            int(nmax), "; ".join(f"{r.kind} ({r.competitor_cores} cores) {r.slowdown:.2f}x [{r.ci_lo:.2f}, "
                                 f"{r.ci_hi:.2f}]" for r in top.itertuples()))
    return notes


def measure(ctx) -> pd.DataFrame:
    """Contention latencies, co-running app frames and the inference beside it, plus one
    ``measurement='unavailable'`` row for every system or competitor kind absent here.
    Writes the tidy dataset; closes both raw logs with a ``complete`` marker."""
    if not devices.supports(ctx.device_spec, PYTHON):  # only benchmark_model runs there
        return measure_phone(ctx)
    p = ctx.params
    avail = pd.concat([availability_rows(ctx, p["models"], p["suts"], p["kinds"]).assign(part="contention"),
                       availability_rows(ctx, p["corun_models"], p["corun_suts"], []).assign(part="corun")],
                      ignore_index=True)
    from study.corunning_app import render_reason

    for r in p["renders"]:
        why = render_reason(r, ctx.device)
        avail = pd.concat([avail, pd.DataFrame([dict(what="render", model="", sut="", processor=r, engine="",
                                                     kind="", available=why is None, reason=why or "",
                                                     part="corun")])], ignore_index=True)
    cache = SessionCache()
    try:
        lat = measure_contention(ctx, avail, cache)
        frames, corun = measure_corun(ctx, avail, cache)
    finally:
        cache.close()
    unavailable = avail[~avail.available].copy()
    unavailable.insert(0, "measurement", "unavailable")
    data = pd.concat([x for x in (lat, frames, corun, unavailable) if len(x)], ignore_index=True)
    for c in ("available",):
        if c in data:
            data[c] = data[c].astype("boolean")
    ctx.write(data)
    ctx.write(avail, table="availability")
    ctx.raw_log().mark_complete(finding=FINDING)
    ctx.raw_log(APP_LOG).mark_complete(finding=FINDING)
    return data


# =========================================================================== analysis helpers
def _boot_medians(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.median(x[rng.integers(0, x.size, size=(n_boot, x.size))], axis=1)


def _ci(boot: np.ndarray, conf: float = 0.95) -> tuple[float, float]:
    q = (1 - conf) / 2
    return float(np.quantile(boot, q)), float(np.quantile(boot, 1 - q))


def _boot_p(boot_log: np.ndarray, null_log: float = 0.0) -> float:
    """Two-sided bootstrap p-value of H0: statistic = null (percentile method)."""
    b = np.asarray(boot_log)
    return float(min(1.0, 2 * min((b <= null_log).mean(), (b >= null_log).mean())))


def block_bootstrap_share(runs: list[np.ndarray], block: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap distribution of the pooled mean of 0/1 series (one per run), moving
    blocks of ``block`` frames resampled within each run (frames are autocorrelated)."""
    total = sum(len(r) for r in runs)
    if total == 0:
        return np.full(n_boot, np.nan)
    acc = np.zeros(n_boot)
    for r in runs:
        r = np.asarray(r, dtype=float)
        n = r.size
        if n == 0:
            continue
        b = max(1, min(block, n))
        k = -(-n // b)
        starts = rng.integers(0, n - b + 1, size=(n_boot, k))
        idx = (starts[:, :, None] + np.arange(b)[None, None, :]).reshape(n_boot, -1)[:, :n]
        acc += r[idx].sum(axis=1)
    return acc / total


def _sut_label(df: pd.DataFrame) -> pd.Series:
    return df["processor"].astype(str) + "/" + df["engine"].astype(str)


def latency_rows(data: pd.DataFrame) -> pd.DataFrame:
    lat = data[data["measurement"] == "latency"].copy()
    if len(lat):
        lat["n_competitors"] = lat["n_competitors"].astype(int)
        if "sut" not in lat or lat["sut"].isna().any():
            lat["sut"] = _sut_label(lat)
    return lat


def slowdown_table(data: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Median latency with competitors / median without, per model x system x kind x
    core side x n, with a bootstrap CI; absent systems and kinds listed with the reason."""
    lat = latency_rows(data)
    rows = []
    if len(lat):
        base = {k: g["latency_ms"].to_numpy() for k, g in lat[lat.n_competitors == 0].groupby(["model", "sut"])}
        for (m, sut, kind, cc, n), g in lat.groupby(["model", "sut", "kind", "competitor_cores", "n_competitors"]):
            proc, eng = split_sut(sut)
            x = g["latency_ms"].to_numpy()
            b = base.get((m, sut))
            if b is None or not len(b):
                continue
            if n == 0:
                r, lo, hi = 1.0, 1.0, 1.0
            else:
                r, lo, hi = stats.ratio_of_medians_ci(x, b, n_boot=n_boot, seed=seed)
            rows.append(dict(model=m, sut=sut, processor=proc, engine=eng, kind=kind, competitor_cores=cc,
                             placement=placement_of(proc, kind, cc), n_competitors=int(n),
                             median_ms=float(np.median(x)), baseline_ms=float(np.median(b)), n=int(len(x)),
                             n_baseline=int(len(b)), slowdown=r, ci_lo=lo, ci_hi=hi,
                             competitor_util=float(g["competitor_util"].mean()) if "competitor_util" in g else np.nan,
                             available=True, reason=""))
    un = data[data["measurement"] == "unavailable"] if "measurement" in data else data.iloc[:0]
    for _, u in un.iterrows():
        if u.get("part", "contention") != "contention":
            continue
        rows.append(dict(model=u.get("model", ""), sut=u.get("sut", ""), processor=u.get("processor", ""),
                         engine=u.get("engine", ""), kind=u.get("kind", ""), competitor_cores="", placement="",
                         n_competitors=np.nan, median_ms=np.nan, baseline_ms=np.nan, n=0, n_baseline=0,
                         slowdown=np.nan, ci_lo=np.nan, ci_hi=np.nan, competitor_util=np.nan, available=False,
                         reason=f"not measurable: {u.get('reason', '')}"))
    cols = ["model", "sut", "processor", "engine", "kind", "competitor_cores", "placement", "n_competitors",
            "median_ms", "baseline_ms", "n", "n_baseline", "slowdown", "ci_lo", "ci_hi", "competitor_util",
            "available", "reason"]
    return pd.DataFrame(rows, columns=cols)


def interaction_model(data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """OLS of log latency: a baseline per model x system, a slope per competitor for each
    kind x core side x system. Returns (coefficients, tests): the joint test that slopes do
    not depend on the system (processor x competitors interaction), and each difference."""
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    lat = latency_rows(data)
    coef_cols = ["term", "kind", "competitor_cores", "sut", "estimate", "ci_lo", "ci_hi", "p_value",
                 "per_competitor_factor"]
    test_cols = ["test", "kind", "competitor_cores", "sut", "reference_sut", "estimate", "ci_lo", "ci_hi",
                 "statistic", "df_num", "df_den", "p_value", "n", "method", "reason"]
    if not len(lat) or lat.sut.nunique() < 1 or lat.n_competitors.max() == 0:
        return (pd.DataFrame(columns=coef_cols),
                pd.DataFrame([dict(test="processor x n_competitors", reason="no contention samples")],
                             columns=test_cols))
    d = lat[["latency_ms", "model", "sut", "kind", "competitor_cores", "n_competitors"]].copy()
    d = d[d.latency_ms > 0]
    d["log_latency"] = np.log(d.latency_ms)
    d["cell"] = d.model + "|" + d.sut
    loaded = d.n_competitors > 0
    d["cond"] = np.where(loaded, d.kind + "|" + d.competitor_cores, "")
    d["slope"] = np.where(loaded, d.cond + "|" + d.sut, "")
    first_cond = sorted(set(d.cond[loaded]))[0]
    first_slope = sorted(set(d.slope[loaded]))[0]
    d.loc[~loaded, "cond"] = first_cond     # n = 0 rows: the slope terms are 0 whatever the level
    d.loc[~loaded, "slope"] = first_slope
    n_cells = d.cell.nunique()
    cell_term = "C(cell)" if n_cells > 1 else "1"
    full = smf.ols(f"log_latency ~ 0 + {cell_term} + n_competitors:C(slope)", d).fit(cov_type="HC3")
    names = list(full.model.exog_names)
    ci = full.conf_int()
    coefs = []
    for nm in names:
        if not nm.startswith("n_competitors:C(slope)"):
            continue
        kind, cc, sut = nm.split("[", 1)[1].rstrip("]").split("|")
        coefs.append(dict(term=nm, kind=kind, competitor_cores=cc, sut=sut, estimate=full.params[nm],
                          ci_lo=ci.loc[nm, 0], ci_hi=ci.loc[nm, 1], p_value=full.pvalues[nm],
                          per_competitor_factor=float(np.exp(full.params[nm]))))
    coefs = pd.DataFrame(coefs, columns=coef_cols)
    tests = []
    suts = sorted(d.sut.unique())
    ref = next((s for s in suts if s.startswith("cpu/")), suts[0])
    R = []
    for (kind, cc), g in coefs.groupby(["kind", "competitor_cores"]):
        have = set(g.sut)
        if ref not in have:
            continue
        for s in sorted(have - {ref}):
            r = np.zeros(len(names))
            r[names.index(f"n_competitors:C(slope)[{kind}|{cc}|{s}]")] = 1.0
            r[names.index(f"n_competitors:C(slope)[{kind}|{cc}|{ref}]")] = -1.0
            R.append(r)
            t = full.t_test(r)
            lo, hi = np.asarray(t.conf_int()).ravel()
            tests.append(dict(test="slope difference", kind=kind, competitor_cores=cc, sut=s, reference_sut=ref,
                              estimate=float(np.asarray(t.effect).ravel()[0]), ci_lo=lo, ci_hi=hi,
                              statistic=float(np.asarray(t.tvalue).ravel()[0]), df_num=1, df_den=full.df_resid,
                              p_value=float(np.asarray(t.pvalue).ravel()[0]), n=int(full.nobs),
                              method="OLS log latency, HC3; slope(system) - slope(reference) per competitor",
                              reason=""))
    if R:
        w = full.wald_test(np.vstack(R), use_f=True, scalar=True)
        tests.insert(0, dict(test="processor x n_competitors", kind="all", competitor_cores="all", sut="all",
                             reference_sut=ref, estimate=np.nan, ci_lo=np.nan, ci_hi=np.nan,
                             statistic=float(w.statistic), df_num=float(w.df_num), df_den=float(w.df_denom),
                             p_value=float(w.pvalue), n=int(full.nobs),
                             method="joint Wald F test (HC3) that per-competitor slopes do not differ between "
                                    "systems for the same kind of competitor", reason=""))
        restricted = smf.ols(f"log_latency ~ 0 + {cell_term} + n_competitors:C(cond)", d).fit()
        classic = smf.ols(f"log_latency ~ 0 + {cell_term} + n_competitors:C(slope)", d).fit()
        a = anova_lm(restricted, classic)
        tests.insert(1, dict(test="processor x n_competitors (nested F)", kind="all", competitor_cores="all",
                             sut="all", reference_sut=ref, estimate=np.nan, ci_lo=np.nan, ci_hi=np.nan,
                             statistic=float(a["F"].iloc[1]), df_num=float(a["df_diff"].iloc[1]),
                             df_den=float(a["df_resid"].iloc[1]), p_value=float(a["Pr(>F)"].iloc[1]),
                             n=int(full.nobs), method="nested OLS F test: slope per kind x core side vs per kind x "
                                                      "core side x system (classical covariance)", reason=""))
    else:
        tests.append(dict(test="processor x n_competitors", kind="all", competitor_cores="all", sut="all",
                          reference_sut=ref, estimate=np.nan, ci_lo=np.nan, ci_hi=np.nan, statistic=np.nan,
                          df_num=np.nan, df_den=np.nan, p_value=np.nan, n=int(full.nobs), method="",
                          reason="not measurable: one system under test only (" + ", ".join(suts) + ")"))
    return coefs, pd.DataFrame(tests, columns=test_cols)


def _pick(lat: pd.DataFrame, model: str, sut: str, kind: str, cc: str | None, n: int) -> np.ndarray:
    g = lat[(lat.model == model) & (lat.sut == sut) & (lat.n_competitors == n)]
    if n > 0:
        g = g[g.kind == kind]
        if cc is not None:
            g = g[g.competitor_cores == cc]
    return g.latency_ms.to_numpy(dtype=float)


def cpu_vs_gpu(data: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Slowdown of the CPU system over that of each GPU system at the largest number of
    competitors, per model and pooled (geometric mean over models), two forms:
    ``same-processor`` (CPU-bound competitors on the CPU system's cores vs GPU competitors
    for the GPU system: the claim's form) and ``cpu-competitors`` (CPU-bound competitors on
    the inference's host cores for both)."""
    lat = latency_rows(data)
    cols = ["form", "model", "cpu_sut", "gpu_sut", "n_competitors", "slowdown_cpu", "slowdown_gpu", "ratio",
            "ci_lo", "ci_hi", "p_value", "n", "reason"]
    if not len(lat):
        return pd.DataFrame(columns=cols)
    nmax = int(lat.n_competitors.max())
    cpu_suts = [s for s in dict.fromkeys(lat.sut) if s.startswith("cpu/")]
    gpu_suts = [s for s in dict.fromkeys(lat.sut) if s.startswith("gpu/")]
    forms = {"same-processor": (("cpu", "same"), ("gpu", None)),
             "cpu-competitors": (("cpu", "same"), ("cpu", "same"))}
    rows = []
    rng = np.random.default_rng(seed)
    for form, ((kc, cc_c), (kg, cc_g)) in forms.items():
        for cs in cpu_suts[:1]:
            for gs in gpu_suts:
                per_model = []
                for m in sorted(lat.model.unique()):
                    parts = [_pick(lat, m, cs, kc, cc_c, nmax), _pick(lat, m, cs, kc, cc_c, 0),
                             _pick(lat, m, gs, kg, cc_g, nmax), _pick(lat, m, gs, kg, cc_g, 0)]
                    if any(len(x) == 0 for x in parts):
                        continue
                    boots = [_boot_medians(x, n_boot, rng) for x in parts]
                    meds = [float(np.median(x)) for x in parts]
                    sc, sg = meds[0] / meds[1], meds[2] / meds[3]
                    bl = np.log(boots[0] / boots[1]) - np.log(boots[2] / boots[3])
                    per_model.append((m, sc, sg, bl, sum(len(x) for x in parts)))
                    lo, hi = _ci(np.exp(bl))
                    rows.append(dict(form=form, model=m, cpu_sut=cs, gpu_sut=gs, n_competitors=nmax, slowdown_cpu=sc,
                                     slowdown_gpu=sg, ratio=sc / sg, ci_lo=lo, ci_hi=hi, p_value=_boot_p(bl),
                                     n=sum(len(x) for x in parts), reason=""))
                if per_model:
                    bl = np.mean([pm[3] for pm in per_model], axis=0)
                    point = float(np.exp(np.mean([np.log(pm[1] / pm[2]) for pm in per_model])))
                    lo, hi = _ci(np.exp(bl))
                    rows.append(dict(form=form, model="geomean", cpu_sut=cs, gpu_sut=gs, n_competitors=nmax,
                                     slowdown_cpu=float(np.exp(np.mean([np.log(pm[1]) for pm in per_model]))),
                                     slowdown_gpu=float(np.exp(np.mean([np.log(pm[2]) for pm in per_model]))),
                                     ratio=point, ci_lo=lo, ci_hi=hi, p_value=_boot_p(bl),
                                     n=int(sum(pm[4] for pm in per_model)), reason=""))
    return pd.DataFrame(rows, columns=cols)


def corun_table(data: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per condition: missed share with block-bootstrap CI, frame-time percentiles, inference
    latency beside the app; per condition vs the idle baseline at the same fps and render:
    the increase in missed share with its CI)."""
    fr = data[data["measurement"] == "frame"] if "measurement" in data else data.iloc[:0]
    inf = data[data["measurement"] == "corun_inference"] if "measurement" in data else data.iloc[:0]
    cols = ["fps", "render", "inference_sut", "inference_model", "runs", "frames", "missed_share", "ci_lo", "ci_hi",
            "skipped_share", "frame_ms_p50", "frame_ms_p90", "frame_ms_p99", "lateness_ms_p99",
            "inference_ms_median", "inferences"]
    vcols = ["fps", "render", "inference_sut", "inference_model", "missed_share", "idle_missed_share",
             "increase_pp", "ci_lo", "ci_hi", "p_value_zero", "frame_ms_p99", "idle_frame_ms_p99", "p99_ratio",
             "frames", "idle_frames"]
    if not len(fr):
        return pd.DataFrame(columns=cols), pd.DataFrame(columns=vcols)
    rng = np.random.default_rng(seed)
    rows, boots = [], {}
    keys = ["fps", "render", "inference_sut", "inference_model"]
    fr = fr.copy()
    fr["inference_model"] = fr["inference_model"].fillna("")
    for key, g in fr.groupby(keys, sort=True):
        fps = float(key[0])
        runs = [r.sort_values("frame").missed.astype(float).to_numpy() for _, r in g.groupby("run")]
        b = block_bootstrap_share(runs, int(round(fps)), n_boot, rng)
        boots[key] = (b, runs, g)
        lo, hi = _ci(b)
        drawn = g[~g.skipped.astype(bool)]
        ii = inf[(inf.get("run", pd.Series(dtype=float)).isin(g.run.unique()))] if len(inf) else inf
        rows.append(dict(zip(keys, key), runs=len(runs), frames=len(g), missed_share=float(g.missed.mean()),
                         ci_lo=lo, ci_hi=hi, skipped_share=float(g.skipped.mean()),
                         frame_ms_p50=float(np.percentile(drawn.frame_ms, 50)) if len(drawn) else np.nan,
                         frame_ms_p90=float(np.percentile(drawn.frame_ms, 90)) if len(drawn) else np.nan,
                         frame_ms_p99=float(np.percentile(drawn.frame_ms, 99)) if len(drawn) else np.nan,
                         lateness_ms_p99=float(np.percentile(g.lateness_ms, 99)),
                         inference_ms_median=float(ii.latency_ms.median()) if len(ii) else np.nan,
                         inferences=int(len(ii))))
    summary = pd.DataFrame(rows, columns=cols)
    vs = []
    for key, (b, runs, g) in boots.items():
        if key[2] == "idle":
            continue
        idle_key = (key[0], key[1], "idle", "")
        if idle_key not in boots:
            continue
        bi, _, gi = boots[idle_key]
        diff = (b - bi) * 100
        lo, hi = _ci(diff)
        p99 = summary.set_index(keys).loc[key, "frame_ms_p99"]
        p99i = summary.set_index(keys).loc[idle_key, "frame_ms_p99"]
        vs.append(dict(zip(keys, key), missed_share=float(g.missed.mean()), idle_missed_share=float(gi.missed.mean()),
                       increase_pp=float((g.missed.mean() - gi.missed.mean()) * 100), ci_lo=lo, ci_hi=hi,
                       p_value_zero=_boot_p(diff, 0.0), frame_ms_p99=p99, idle_frame_ms_p99=p99i,
                       p99_ratio=p99 / p99i if p99i else np.nan, frames=len(g), idle_frames=len(gi)))
    return summary, pd.DataFrame(vs, columns=vcols)


def _verdict(lo: float, hi: float, null: float) -> str:
    if np.isnan(lo) or np.isnan(hi):
        return "inconclusive"
    if lo > null:
        return "reproduced"
    if hi < null:
        return "contradicted"
    return "inconclusive"


CLAIM_COLUMNS = ["claim", "form", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "n", "paper_value",
                 "verdict", "reason"]


def claims_table(data: pd.DataFrame, contrast: pd.DataFrame, vs_idle: pd.DataFrame, params: dict[str, Any],
                 n_boot: int = 2000, seed: int = 0, dsp_note: str | None = None) -> pd.DataFrame:
    rows = []
    # ---- C5
    lat = latency_rows(data)
    nmax = int(lat.n_competitors.max()) if len(lat) else 3
    un = data[data["measurement"] == "unavailable"] if "measurement" in data else data.iloc[:0]
    un = un.reindex(columns=list(dict.fromkeys(list(un.columns) + ["what", "sut", "processor", "kind", "reason"])))
    gpu_order = [s for s in params.get("suts", []) if s.startswith("gpu/")]
    c5 = contrast[(contrast.form == "same-processor") & (contrast.model == "geomean")] if len(contrast) else contrast
    c5 = c5.assign(_o=c5.gpu_sut.map({s: i for i, s in enumerate(gpu_order)}).fillna(99)).sort_values("_o") \
        if len(c5) else c5
    npu_why = un[un.processor == "npu"].reason
    dsp = f"DSP not measurable: {npu_why.iloc[0]}" if len(npu_why) else "DSP not measurable on this device"
    if dsp_note:
        dsp = dsp_note
    text5 = (f"slowdown (median latency with {nmax} same-processor competitors / none) of the CPU configuration "
             f"over that of the GPU configuration > 1")
    if len(c5):
        r = c5.iloc[0]
        rows.append(dict(claim="C5", text=text5 + f" ({r.cpu_sut} vs {r.gpu_sut}; CPU-bound competitors on the CPU "
                                                  f"system's cores, GPU-bound competitors on the GPU)",
                         statistic="geometric mean over models of slowdown_CPU / slowdown_GPU; percentile bootstrap, "
                                   "samples resampled within each condition; p: one-sided bootstrap, H1 ratio > 1",
                         effect=r.ratio, ci_lo=r.ci_lo, ci_hi=r.ci_hi,
                         p_value=_one_sided(r.p_value, r.ratio, 1.0, stats.p_resamples(n_boot)),
                         n=int(r.n),
                         paper_value=PAPER_C5, verdict=_verdict(r.ci_lo, r.ci_hi, 1.0),
                         reason=(f"slowdown CPU {r.slowdown_cpu:.2f}x, GPU {r.slowdown_gpu:.2f}x at {nmax} competitors; "
                                 f"ratio CI [{r.ci_lo:.2f}, {r.ci_hi:.2f}] vs 1; {dsp}")))
    else:
        why = un[((un.processor == "gpu") & (un.what == "system")) | (un.kind == "gpu")]
        reasons = _grouped_reasons(why) if len(why) else "no GPU configuration measured with GPU competitors"
        rows.append(dict(claim="C5", text=text5, statistic="ratio of slowdowns CPU/GPU", effect=np.nan, ci_lo=np.nan,
                         ci_hi=np.nan, p_value=np.nan, n=int(len(lat)), paper_value=PAPER_C5,
                         verdict="not measurable", reason=f"{reasons}; {dsp}"))
    # ---- C6
    thr = float(params.get("c6_threshold_pp", 5.0))
    fps = params.get("claim_fps", 30)
    text6 = (f"missed-deadline share of a co-running video app ({fps} fps) while inference runs continuously on "
             f"a processor minus its idle share > {thr:g} percentage points")
    if len(vs_idle):
        v = vs_idle[vs_idle.fps.astype(float) == float(fps)]
        if len(v):
            models = list(params.get("corun_models", []))
            # the paper's case first: GPU inference, the largest model listed last in corun_models (vgg16),
            # the app drawing on the GPU where it can; else the CPU
            v = v.assign(_gpu=v.inference_sut.str.startswith("gpu/").astype(int),
                         _rg=(v.render == "gpu").astype(int),
                         _m=v.inference_model.map({m: i for i, m in enumerate(models)}).fillna(-1),
                         _s=v.inference_sut.map({s: i for i, s in enumerate(params.get("corun_suts", []))}).fillna(99))
            v = v.sort_values(["_gpu", "_rg", "_m", "_s"], ascending=[False, False, False, True])
            # the paper's form: GPU inference beside an app drawing on the same GPU (a phone's app draws on
            # its GPU); CPU inference beside the app is the host form, its own row
            paper = v[v.inference_sut.str.startswith("gpu/") & v.render.isin(["gpu", PHONE_RENDER])]
            host = v[v.inference_sut.str.startswith("cpu/")]
            B = stats.p_resamples(n_boot)
            for form, sel in (("paper", paper), ("host", host)):
                if sel.empty:
                    continue
                r = sel.iloc[0]
                note = "" if form == "paper" else "host form: CPU inference beside the app, not the paper's GPU; "
                rows.append(dict(claim="C6", form=form,
                                 text=text6 + f" ({r.inference_model} on {r.inference_sut}, app drawing on the "
                                              f"{r.render})",
                                 statistic="difference of missed shares (pp), moving-block bootstrap over frames (1 s "
                                           "blocks) within runs; p: one-sided bootstrap, H1 difference > threshold",
                                 effect=r.increase_pp, ci_lo=r.ci_lo, ci_hi=r.ci_hi,
                                 p_value=_one_sided(_p_against(data, r, thr, B, seed), r.increase_pp, thr, B),
                                 n=int(r.frames + r.idle_frames),
                                 paper_value=PAPER_C6, verdict=_verdict(r.ci_lo, r.ci_hi, thr),
                                 reason=(f"{note}missed {100 * r.missed_share:.1f}% vs idle "
                                         f"{100 * r.idle_missed_share:.1f}%; increase CI [{r.ci_lo:.1f}, "
                                         f"{r.ci_hi:.1f}] pp vs threshold {thr:g} pp")))
            if paper.empty:
                rows.append(dict(claim="C6", form="paper", text=text6, statistic="difference of missed shares (pp)",
                                 effect=np.nan, ci_lo=np.nan, ci_hi=np.nan, p_value=np.nan, n=0,
                                 paper_value=PAPER_C6, verdict="not measurable",
                                 reason=("the paper's form needs GPU inference beside an app drawing on the same GPU; "
                                         "not measured here (" + ", ".join(sorted(set(v.inference_sut))) + " only)")))
    if not any(x["claim"] == "C6" and x.get("form") == "paper" for x in rows):
        fails = data[data["measurement"] == "corun_failed"] if "measurement" in data else data.iloc[:0]
        why = "; ".join(dict.fromkeys(fails.reason.astype(str)))[:300] if len(fails) else \
            f"no app run at {fps} fps with and without inference"
        rows.append(dict(claim="C6", text=text6, statistic="difference of missed shares (pp)", effect=np.nan,
                         ci_lo=np.nan, ci_hi=np.nan, p_value=np.nan, n=0, paper_value=PAPER_C6,
                         verdict="not measurable", reason=why))
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def _grouped_reasons(rows: pd.DataFrame) -> str:
    """'a, b: reason; c: other reason' from rows with sut/kind and reason."""
    by: dict[str, list[str]] = {}
    for r in rows.itertuples():
        item = (r.sut if isinstance(r.sut, str) and r.sut else f"{r.kind} competitors")
        by.setdefault(str(r.reason), [])
        if item not in by[str(r.reason)]:
            by[str(r.reason)].append(item)
    return "; ".join(f"{', '.join(items)}: {why}" for why, items in by.items())


def _one_sided(p_two: float, effect: float, null: float, n_boot: int | None = None) -> float:
    """One-sided p-value in the claimed direction (effect > null) from a two-sided one:
    every claim's p-value means the same thing when the paper stage applies Holm. With
    ``n_boot`` it is never below the bootstrap's floor 1/(B + 1)."""
    if p_two is None or np.isnan(p_two) or np.isnan(effect):
        return np.nan
    p = p_two / 2 if effect > null else 1 - p_two / 2
    return max(p, 1 / (n_boot + 1)) if n_boot else p


def _p_against(data, r, thr: float, n_boot: int, seed: int) -> float:
    fr = data[data["measurement"] == "frame"].copy()
    fr["inference_model"] = fr["inference_model"].fillna("")
    rng = np.random.default_rng(seed + 1)

    def boot(sel):
        runs = [g.sort_values("frame").missed.astype(float).to_numpy() for _, g in sel.groupby("run")]
        return block_bootstrap_share(runs, int(round(float(r.fps))), n_boot, rng)

    same = (fr.fps.astype(float) == float(r.fps)) & (fr.render == r.render)
    a = boot(fr[same & (fr.inference_sut == r.inference_sut) & (fr.inference_model == r.inference_model)])
    b = boot(fr[same & (fr.inference_sut == "idle")])
    return _boot_p((a - b) * 100, thr)


def claims_of(data: pd.DataFrame, contrast: pd.DataFrame, vs_idle: pd.DataFrame, slowdown: pd.DataFrame,
              p: dict[str, Any], n_boot: int, seed: int, on_phone: bool) -> pd.DataFrame:
    """C5 and C6 from the tidy dataset and its analysis tables; on a phone the app's frame
    rate is the display's and the rows say how the phone was measured."""
    if not on_phone:
        return claims_table(data, contrast, vs_idle, p, n_boot, seed)
    fr = data[data["measurement"] == "frame"] if "measurement" in data else data.iloc[:0]
    fps = fr["fps"].dropna() if "fps" in fr else pd.Series(dtype=float)
    claim_p = {**p, "claim_fps": float(fps.mode().iloc[0])} if len(fps) else p  # the display's rate
    notes = phone_notes(data, slowdown)
    claims = claims_table(data, contrast, vs_idle, claim_p, n_boot, seed, dsp_note=notes.get("dsp"))
    for c in ("C5", "C6"):
        if not notes[c]:
            continue
        sel = claims["claim"] == c
        claims.loc[sel, "reason"] = claims.loc[sel, "reason"].astype(str) + "; " + notes[c]
        claims.loc[sel, "text"] = claims.loc[sel, "text"].astype(str).str.replace(
            f", app drawing on the {PHONE_RENDER}", f", {PHONE_RENDER}", regex=False)
    return claims


def _measured_on_phone(data: pd.DataFrame) -> bool:
    """A phone's dataset: benchmark_model per-call means (``aggregate``) or the phone's app."""
    if "aggregate" in data and data["aggregate"].map(lambda v: v is True or v == 1 or str(v) == "True").any():
        return True
    return any(col in data and (data[col].astype(str) == PHONE_RENDER).any() for col in ("render", "processor"))


def _stored_flags(data: pd.DataFrame) -> pd.DataFrame:
    """The dataset as the stage had it: flags of rows that mix with NaN (``missed``,
    ``skipped``, ...) are stored as JSON text ("true"/"false") by ``datasets.write_table``."""
    data = data.copy()
    text = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    for c in ("missed", "skipped", "available", "aggregate"):
        if c in data and (data[c].dtype == object or pd.api.types.is_string_dtype(data[c])):
            data[c] = data[c].astype(object).map(
                lambda v: text.get(v.strip().lower(), v) if isinstance(v, str) else (None if pd.isna(v) else v))
    return data


CLAIMS_TABLES = [None]


def claims_from_tables(read, params: dict[str, Any], seed: int = 0) -> pd.DataFrame | None:
    """C5 and C6 recomputed with the current code from the tidy dataset (``read(None)``:
    latencies under competitors, the co-running app's frames), or None where it is not there."""
    data = read(None)
    if data is None or "measurement" not in data:
        return None
    data = _stored_flags(data)
    p = {**{k: f.default for k, f in PARAMS.items()}, **params}
    n_boot = int(p.get("n_boot") or 2000)
    lat = latency_rows(data)
    need_lat = {"model", "sut", "kind", "competitor_cores", "n_competitors", "latency_ms"}
    if len(lat) and not need_lat <= set(lat.columns):
        return None
    fr = data[data["measurement"] == "frame"]
    if len(fr) and not {"fps", "render", "inference_sut", "inference_model", "run", "frame", "missed", "skipped",
                        "frame_ms", "lateness_ms"} <= set(fr.columns):
        return None
    contrast = cpu_vs_gpu(data, stats.p_resamples(n_boot), seed)
    _, vs_idle = corun_table(data, n_boot, seed)
    on_phone = _measured_on_phone(data)
    slowdown = slowdown_table(data, n_boot, seed) if on_phone else pd.DataFrame()
    return claims_of(data, contrast, vs_idle, slowdown, p, n_boot, seed, on_phone)


# =========================================================================== analyse / plot / run
def analyse(ctx, data: pd.DataFrame) -> dict[str, pd.DataFrame]:
    p = ctx.params
    n_boot, seed = int(p.get("n_boot", 2000)), ctx.seed
    lat = latency_rows(data)
    tables: dict[str, pd.DataFrame] = {}
    if len(lat):
        tables["latency_summary"] = stats.summarize(
            lat, ["model", "sut", "kind", "competitor_cores", "placement", "n_competitors"])
    else:
        tables["latency_summary"] = pd.DataFrame()
    tables["slowdown"] = slowdown_table(data, n_boot, seed)
    coefs, tests = interaction_model(data)
    tables["ols_slopes"] = coefs
    tables["interaction_tests"] = tests
    tables["cpu_vs_gpu"] = cpu_vs_gpu(data, stats.p_resamples(n_boot), seed)   # C5's p: >= 10,000 resamples
    tables["corun"], tables["corun_vs_idle"] = corun_table(data, n_boot, seed)
    tables["claims"] = claims_of(data, tables["cpu_vs_gpu"], tables["corun_vs_idle"], tables["slowdown"], p, n_boot,
                                 seed, not devices.supports(ctx.device_spec, PYTHON))
    for name, df in tables.items():
        ctx.write(df, table=name)
    return tables


def _sut_color(sut: str) -> Any:
    """The processor's colour for LiteRT, a darker shade of it for other engines."""
    from matplotlib.colors import to_rgb

    from study import plotting

    proc, _, eng = sut.partition("/")
    base = to_rgb(plotting.PROCESSOR_COLORS.get(proc, "#777777"))
    return base if eng in ("litert", "") else tuple(0.6 * c for c in base)


def plot(ctx, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    from study import plotting

    figs = {}
    sd = tables["slowdown"]
    ok = sd[sd.available.astype(bool)] if len(sd) else sd
    models = sorted(ok.model.unique()) if len(ok) else []
    kinds = [k for k in KINDS if len(ok) and k in set(ok.kind)]
    nrows, ncols = max(1, len(models)), max(1, len(kinds))
    fig, axes = plotting.figure(3.3 * ncols, 2.8 * nrows + 0.6, nrows=nrows, ncols=ncols, squeeze=False,
                                sharey=True)
    for i, m in enumerate(models or [""]):
        for j, kind in enumerate(kinds or [""]):
            ax = axes[i][j]
            g = ok[(ok.model == m) & ((ok.kind == kind) | (ok.n_competitors == 0))] if len(ok) else ok
            for (sut, cc), h in (g[g.n_competitors > 0].groupby(["sut", "competitor_cores"]) if len(g) else []):
                base = g[(g.sut == sut) & (g.n_competitors == 0)]
                h = pd.concat([base.assign(competitor_cores=cc), h]).sort_values("n_competitors")
                proc = sut.split("/")[0]
                color = _sut_color(sut)
                ls = "-" if cc == "same" else "--"
                mk = "o" if sut.endswith("litert") else ("s" if sut.endswith("torch") else "^")
                yerr = np.vstack([h.slowdown - h.ci_lo, h.ci_hi - h.slowdown]).clip(min=0)
                ax.errorbar(h.n_competitors, h.slowdown, yerr=yerr, color=color, ls=ls, marker=mk, ms=4,
                            capsize=2, lw=1.2, label=f"{sut}, {cc} cores")
            for proc_key, label in (("cpu", "CPU"), ("gpu", "GPU"), ("dsp", "DSP")):
                plotting.mark_paper(ax, PAPER_SLOWDOWN[proc_key], f"paper {label} {PAPER_SLOWDOWN[proc_key]}x @3")
                if proc_key == "dsp" and ax.texts:  # below its line: the GPU mark sits just above
                    ax.texts[-1].set_va("top")
                    ax.texts[-1].xyann = (-4, -3)
            ax.set_yscale("log")
            ax.set_title(f"{m}: {kind} competitors" if m else "no contention data", fontsize=9)
            ax.set_xlabel("competitors")
            if j == 0:
                ax.set_ylabel("slowdown (x, median / none)")
            ax.set_xticks(sorted(ok.n_competitors.dropna().unique().astype(int)) if len(ok) else [0, 1, 2, 3])
    handles, labels = [], []
    for ax in np.ravel(axes):
        for hd, lb in zip(*ax.get_legend_handles_labels()):
            if lb not in labels:
                handles.append(hd)
                labels.append(lb)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7, frameon=False)
    absent = sd[~sd.available.astype(bool)] if len(sd) else sd
    by_reason: dict[str, list[str]] = {}
    for r in absent.itertuples():
        by_reason.setdefault(r.reason.replace("not measurable: ", ""), [])
        item = r.sut or f"{r.kind} competitors"
        if item not in by_reason[r.reason.replace("not measurable: ", "")]:
            by_reason[r.reason.replace("not measurable: ", "")].append(item)
    notes = [f"not measured: {', '.join(items)}: {why[:110]}" for why, items in by_reason.items()]
    if notes:
        fig.text(0.01, 1.0, "\n".join(notes[:4]), fontsize=6, va="bottom", color="#666666")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    ctx.save(fig, "slowdown")
    figs["slowdown"] = fig

    cr = tables["corun"]
    renders = sorted(cr.render.unique()) if len(cr) else ([PHONE_RENDER] if not devices.supports(ctx.device_spec, PYTHON) else ["cpu"])
    fig2, axes2 = plotting.figure(4.2 * len(renders), 3.4, ncols=len(renders), squeeze=False, sharey=True)
    for j, render in enumerate(renders):
        ax = axes2[0][j]
        g = cr[cr.render == render] if len(cr) else cr
        if len(g):
            g = g.assign(condition=np.where(g.inference_sut == "idle", "idle (no inference)",
                                            g.inference_model + " on " + g.inference_sut))
            conds = ["idle (no inference)"] + sorted(c for c in g.condition.unique() if c != "idle (no inference)")
            fpss = sorted(g.fps.astype(float).unique())
            width = 0.8 / len(conds)
            for k, c in enumerate(conds):
                h = g[g.condition == c].set_index(g[g.condition == c].fps.astype(float)).reindex(fpss)
                x = np.arange(len(fpss)) + (k - (len(conds) - 1) / 2) * width
                proc = c.split(" on ")[-1].split("/")[0] if " on " in c else "idle"
                color = _sut_color(c.split(" on ")[-1]) if proc != "idle" else "#999999"
                yerr = np.vstack([(h.missed_share - h.ci_lo) * 100, (h.ci_hi - h.missed_share) * 100]).clip(min=0)
                ax.bar(x, h.missed_share * 100, width, yerr=yerr, capsize=2, color=color,
                       alpha=1.0 if "litert" in c or proc == "idle" else 0.6,
                       hatch="" if proc == "idle" or "litert" in c else "//", label=c, edgecolor="white")
                for xi, v in zip(x, h.missed_share * 100):
                    if v == v:
                        ax.annotate(f"{v:.1f}%", (xi, v), xytext=(0, 2), textcoords="offset points", ha="center",
                                    va="bottom", fontsize=6)
            ax.set_xticks(np.arange(len(fpss)))
            ax.set_xticklabels([f"{f:g} fps" for f in fpss])
        plotting.mark_paper(ax, PAPER_DROP_PCT, "paper: >90% (VGG-16 on GPU)")
        ax.set_ylim(0, 100)
        ax.set_title("co-running app on the phone (dumpsys gfxinfo)" if render == PHONE_RENDER
                     else f"app drawing on the {render}", fontsize=9)
        if j == 0:
            ax.set_ylabel("missed deadlines (% of frames)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, 0.86))
    fig2.tight_layout()
    ctx.save(fig2, "frame_drops")
    figs["frame_drops"] = fig2
    return figs


def replicate_params(p: dict[str, Any]) -> dict[str, Any]:
    """What an independent run measures (``study.replicate``): C5's 0 vs the most competitors,
    CPU-bound on the CPU system's cores and GPU-bound for the GPU systems; C6's app at the
    claim's frame rate, idle and beside the largest co-running model."""
    ns = sorted(set(p["n_competitors"]))
    kinds = [k for k in p["kinds"] if k in ("cpu", "gpu")] or list(p["kinds"])
    fps = [f for f in p["fps"] if float(f) == float(p["claim_fps"])] or list(p["fps"])
    return {**p, "n_competitors": [0, ns[-1]] if ns[-1] else [0], "kinds": kinds,
            "core_placements": ["same"] if "same" in p["core_placements"] else list(p["core_placements"]),
            "fps": fps, "corun_models": list(p["corun_models"])[-1:]}


def run(ctx) -> dict[str, Any]:
    from study import replicate

    return replicate.run_finding(ctx, measure, analyse, plot, replicate_params)
