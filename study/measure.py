"""The measurement harness: the one place that owns the timing method.

For a set of configurations (a system under test each: model x engine x processor
x threads x core set, plus whatever a finding varies), it

* opens each configuration's session lazily (the engine's ``open``), runs warm-up
  inferences at the start of every visit, then a block of timed inferences;
* interleaves configurations: rounds visit the unfinished configurations in an
  order shuffled by a recorded seed, one block per visit, so slow drift (heat,
  background load) spreads over all of them instead of biasing one;
* pins the process to the configuration's CPU core set before each block;
* reads the device's sensors (clocks, governor, temperatures, GPU clocks and power)
  before and after each block, and sleeps a cool-down between blocks if asked;
* stops a configuration when the 95% order-statistic CI of its median is narrower
  than the target (relative half-width), after a minimum and before a maximum
  count, or when its time budget is spent, and records why it stopped;
* appends every sample and every block to a raw JSON-lines log as it is taken, so
  a killed run keeps everything it measured and a rerun resumes where it stopped.
  A block counts once its ``block`` record (written after its last sample, with the
  sensor readings) is in the log: the samples of a block cut by a kill are discarded
  on resume and the block is measured again, so a resumed run gives the same rows
  per configuration as an uninterrupted one, each with its block's readings.

``run()`` of a session is synchronous (GPU outputs read back before it returns).
The clock and the sleep are injectable: tests drive the harness with a fake clock.

A session whose device times the runs itself (LiteRT's ``benchmark_model`` on a phone prints
only the count, mean and standard deviation of a block: ``study.engines.tflite_benchmark``)
has ``run_block(runs, warmup) -> Aggregate`` instead: the harness asks it for one block per
visit (``block_size`` runs after ``warmup`` untimed ones; the session pins its own cores),
logs the block as one atomic ``aggregate`` record with the sensor readings around it, and
stops the configuration on the aggregates (``aggregate_stop_reason``: the normal CI of the
mean pooled from the blocks, since no per-run latencies exist); the dataset has one row per
block (``n`` runs, ``latency_ms`` = their mean). A ``DeviceError`` (a phone gone) is raised
after everything measured so far is in the log; a rerun resumes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
from scipy.stats import norm

from study import stats
from study.devices.base import DeviceError

SAMPLE_COLUMNS = ["config", "sample", "block", "latency_ms", "t_wall", "run_id", "settings_hash"]
_RUN_COUNT = itertools.count()  # harness runs of this process (part of each run_id)


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class HarnessSettings:
    warmup: int = 5                 # untimed inferences at the start of every block
    min_samples: int = 30           # per configuration, before the stopping rule may stop it
    max_samples: int = 300
    max_seconds: float = 60.0       # timed seconds per configuration (sum over blocks), once min_samples are in
    rel_ci_halfwidth: float = 0.02  # stop when the CI half-width of the median <= this x median
    confidence: float = 0.95
    block_size: int = 10            # timed samples per visit (interleaving granularity)
    cooldown_s: float = 0.0         # sleep after each block
    seed: int = 0                   # order of configurations
    max_open_sessions: int = 6      # sessions kept loaded between visits (least recently used closed)
    below_floors: bool = False      # True for the quick profile: fewer samples than the floors of docs/methods.md

    def __post_init__(self):
        problems = []
        if self.warmup < 0:
            problems.append("warmup must be >= 0")
        if self.min_samples < 1:
            problems.append("min_samples must be >= 1")
        if self.max_samples < self.min_samples:
            problems.append("max_samples must be >= min_samples")
        if self.block_size < 1:
            problems.append("block_size must be >= 1")
        if self.max_seconds <= 0:
            problems.append("max_seconds must be > 0")
        if not 0 < self.rel_ci_halfwidth < 1:
            problems.append("rel_ci_halfwidth must be in (0, 1)")
        if not 0.5 < self.confidence < 1:
            problems.append("confidence must be in (0.5, 1)")
        if self.cooldown_s < 0:
            problems.append("cooldown_s must be >= 0")
        if problems:
            raise ValueError("bad harness settings: " + "; ".join(problems))

    @classmethod
    def from_params(cls, d: dict[str, Any]) -> "HarnessSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown harness settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def hash(self, env: dict[str, Any] | None = None) -> str:
        """Identity of the method *and* the environment: samples are only ever resumed
        or merged under the same hash (pyperf refuses to merge differing metadata)."""
        blob = json.dumps({"settings": dataclasses.asdict(self), "env": env or {}}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- configurations
@dataclass
class Config:
    """One system under test. ``columns`` go into every sample row; ``opener``
    returns a session (the device supplies it: ``Device.open_session``) with a synchronous
    ``run()``, or ``run_block(runs, warmup) -> Aggregate`` where the device times the runs
    itself (and optionally ``close()``). ``cores``: the harness pins this process to them
    before a timed block; a ``run_block`` session pins its own runs there."""

    columns: dict[str, Any]
    opener: Callable[[], Any]
    cores: tuple[int, ...] | None = None

    @property
    def key(self) -> str:
        return config_key(self.columns)


def config_key(columns: dict[str, Any]) -> str:
    return json.dumps({k: columns[k] for k in sorted(columns)}, sort_keys=True, default=str)


@dataclass
class Aggregate:
    """One block a session timed itself (``run_block``): ``row`` are the dataset columns of the
    block, at least ``n`` (runs), ``latency_ms`` (their mean) and ``latency_std_ms``; ``log``
    goes into the raw log only."""

    row: dict[str, Any]
    log: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- raw log
class RawLog:
    """Append-only JSON-lines log. Each record is flushed as it is written; a line
    cut short by a kill is skipped on reading."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh = None

    def append(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", buffering=1)
        self._fh.write(json.dumps(record, default=_json_default) + "\n")
        self._fh.flush()

    def records(self, type_: str | None = None, current: bool = True) -> list[dict[str, Any]]:
        """Records of the current measuring session: those after the last ``complete``
        marker (a finished run is history; a killed one is resumed). ``current=False``
        returns the whole history."""
        if not self.path.exists():
            return []
        out = []
        with open(self.path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # truncated by a kill mid-write
                if current and rec.get("type") == "complete":
                    out = []
                    continue
                if type_ is None or rec.get("type") == type_:
                    out.append(rec)
        return out

    def mark_complete(self, **info: Any) -> None:
        """End the current session: a later run starts afresh instead of resuming."""
        self.append({"type": "complete", "t_wall": time.time(), **info})

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


# --------------------------------------------------------------------------- affinity
def set_affinity(cores: Iterable[int] | None) -> None:
    """Pin every thread of this process (engine thread pools included) to ``cores``."""
    if cores is None:
        return
    cores = set(int(c) for c in cores)
    tids = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cores)
        except (ProcessLookupError, PermissionError):
            continue
    os.sched_setaffinity(0, cores)


def current_affinity() -> list[int]:
    return sorted(os.sched_getaffinity(0))


# --------------------------------------------------------------------------- sensors summary
def sensor_summary(reading: dict[str, Any] | None) -> dict[str, Any]:
    """Flat numbers from a device's sensor reading; NaN where the device exposes nothing."""
    out = {"cpu_mhz_mean": np.nan, "cpu_governor": "unavailable", "temp_max_c": np.nan,
           "gpu_sm_mhz": np.nan, "gpu_temp_c": np.nan, "gpu_power_w": np.nan}
    if not reading:
        return out
    freq = reading.get("cpu_freq") or {}
    if isinstance(freq, dict) and "mhz" in freq and freq["mhz"]:
        out["cpu_mhz_mean"] = float(np.mean([float(v) for v in freq["mhz"].values()]))
    gov = reading.get("cpu_governor")
    if isinstance(gov, dict) and gov.get("status") != "unavailable":
        out["cpu_governor"] = ",".join(sorted(set(map(str, gov.values()))))
    th = reading.get("thermal")
    if isinstance(th, dict) and th.get("status") != "unavailable" and th:
        vals = [float(v) for v in th.values() if isinstance(v, (int, float))]
        if vals:
            out["temp_max_c"] = max(vals)
    gpu = reading.get("gpu")
    if isinstance(gpu, dict) and gpu.get("gpus"):
        g = gpu["gpus"][0]
        for k_out, k_in in (("gpu_sm_mhz", "clocks.sm"), ("gpu_temp_c", "temperature.gpu"), ("gpu_power_w", "power.draw")):
            try:
                out[k_out] = float(g.get(k_in))
            except (TypeError, ValueError):
                pass
    return out


# --------------------------------------------------------------------------- the harness
@dataclass
class _State:
    samples: list[float] = field(default_factory=list)
    timed_s: float = 0.0
    blocks: int = 0
    done: str | None = None
    aggregates: list[dict[str, Any]] = field(default_factory=list)  # rows of blocks a session timed itself

    @property
    def n(self) -> int:
        """Timed runs so far (samples plus the runs of aggregate blocks)."""
        return len(self.samples) + sum(int(a["n"]) for a in self.aggregates)


def pooled(blocks: list[dict[str, Any]]) -> tuple[int, float, float]:
    """(n, mean, sd) of all runs from per-block (``n``, ``latency_ms``, ``latency_std_ms``) aggregates."""
    n = sum(b["n"] for b in blocks)
    if n == 0:
        return 0, math.nan, math.nan
    mean = sum(b["n"] * b["latency_ms"] for b in blocks) / n
    ss = sum(b["n"] * ((b["latency_std_ms"] if b["latency_std_ms"] == b["latency_std_ms"] else 0.0) ** 2
                       + (b["latency_ms"] - mean) ** 2) for b in blocks)
    return n, mean, math.sqrt(ss / n)


def aggregate_stop_reason(blocks: list[dict[str, Any]], s: HarnessSettings) -> str | None:
    """The stopping rule on aggregates: ``max_samples`` runs, ``max_seconds`` of timed runs, or the
    normal-approximation CI of the mean (pooled from the blocks) narrower than ``rel_ci_halfwidth``."""
    n, mean, sd = pooled(blocks)
    if n >= s.max_samples:
        return "max_samples"
    if sum(b["n"] * b["latency_ms"] for b in blocks) / 1000.0 >= s.max_seconds:
        return "max_seconds"
    if n >= s.min_samples and n > 1 and mean > 0:
        z = float(norm.ppf(0.5 + s.confidence / 2))
        if z * sd / math.sqrt(n) / mean <= s.rel_ci_halfwidth:
            return "ci_width_mean(aggregates)"
    return None


def stop_reason(st: _State, s: HarnessSettings) -> str | None:
    if st.aggregates:
        return aggregate_stop_reason(st.aggregates, s)
    n = len(st.samples)
    if n >= s.max_samples:
        return "max_samples"
    # the time budget cannot cut a configuration below its minimum count: an interval of the
    # median needs at least ~6 samples, and fewer made reruns disagree (stage rigor's coverage check)
    if st.timed_s >= s.max_seconds and n >= s.min_samples:
        return "max_seconds"
    if n >= s.min_samples and stats.rel_halfwidth(st.samples, s.confidence) <= s.rel_ci_halfwidth:
        return "ci_width"
    return None


class Harness:
    def __init__(self, settings: HarnessSettings, log: RawLog, device=None, *,
                 clock: Callable[[], int] = time.perf_counter_ns, sleep: Callable[[float], None] = time.sleep,
                 wall: Callable[[], float] = time.time, progress: bool = True, run_id: str | None = None,
                 env: dict[str, Any] | None = None):
        self.s = settings
        self.env = env or {}
        self.log = log
        self.device = device
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        self.progress = progress
        self._own_only = False
        # unique within the process too: two runs in the same millisecond must not share their blocks
        self.run_id = run_id or f"{int(wall() * 1000):x}-{os.getpid()}-{next(_RUN_COUNT)}"
        self._open: OrderedDict[str, Any] = OrderedDict()

    # -- resume ---------------------------------------------------------------
    def _resume(self, configs: list[Config]) -> tuple[dict[str, _State], list[str]]:
        """The state of every configuration from the log's current session (samples of
        complete blocks only), and the keys whose stop was reached without a ``done``
        record (killed between the last block and that record)."""
        h = self.s.hash(self.env)
        state = {c.key: _State() for c in configs}
        recs = [r for r in self.log.records() if r.get("settings_hash") == h and r.get("config") in state]
        complete = _complete_blocks(recs, h)
        for rec in recs:
            st = state[rec["config"]]
            if rec["type"] == "sample":
                if (rec["config"], rec.get("block"), rec.get("run_id")) not in complete:
                    continue  # a block cut by a kill: measured again
                st.samples.append(float(rec["latency_ms"]))
                st.timed_s += float(rec["latency_ms"]) / 1000.0
            elif rec["type"] == "block":
                st.blocks = max(st.blocks, int(rec["block"]) + 1)
            elif rec["type"] == "aggregate":  # one atomic record per block
                st.aggregates.append(rec["row"])
                st.blocks = max(st.blocks, int(rec["block"]) + 1)
            elif rec["type"] == "done":
                # a configuration that failed is tried again on resume
                st.done = None if str(rec.get("reason", "")).startswith("failed") else rec["reason"]
        late = []
        for k, st in state.items():
            if st.done is None:
                st.done = stop_reason(st, self.s)
                if st.done is not None:
                    late.append(k)
        return state, late

    # -- sessions -------------------------------------------------------------
    def _session(self, cfg: Config):
        if cfg.key in self._open:
            self._open.move_to_end(cfg.key)
            return self._open[cfg.key]
        while len(self._open) >= self.s.max_open_sessions:
            _, old = self._open.popitem(last=False)
            getattr(old, "close", lambda: None)()
        sess = cfg.opener()
        self._open[cfg.key] = sess
        return sess

    def close(self) -> None:
        while self._open:
            _, old = self._open.popitem(last=False)
            getattr(old, "close", lambda: None)()

    def _sensors(self) -> dict[str, Any] | None:
        if self.device is None:
            return None
        try:
            return self.device.read_sensors()
        except Exception as e:  # a sensor failure must not lose the measurement
            if isinstance(e, DeviceError) and getattr(e, "disconnected", False):
                raise  # the device is gone: the caller says so, the log keeps what was measured
            return {"status": "unavailable", "why": f"sensor read failed: {e}"}

    # -- the loop -------------------------------------------------------------
    def run(self, configs: list[Config], on_error: str = "record", resume: bool = True) -> pd.DataFrame:
        """Measure every configuration to its stopping rule; return the samples of the
        current settings (resumed ones included). ``on_error='record'`` logs a
        configuration that fails to open or run as failed and goes on. ``resume=False``:
        an independent run that ignores what the log holds and returns only its own
        samples (its ``run_id``'s)."""
        keys = [c.key for c in configs]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate configurations")
        by_key = {c.key: c for c in configs}
        self._own_only = not resume
        state, late = self._resume(configs) if resume else ({c.key: _State() for c in configs}, [])
        h = self.s.hash(self.env)
        rng = random.Random(self.s.seed)
        self.log.append({"type": "meta", "run_id": self.run_id, "settings_hash": h,
                         "settings": dataclasses.asdict(self.s), "env": self.env, "n_configs": len(configs), "t_wall": self.wall()})
        for k in late:  # the stop a killed run reached but did not record
            self._done(k, state[k], h)
        bar = None
        if self.progress:
            from study import stagelog

            bar = stagelog.progress(sum(self.s.max_samples for _ in configs), "samples (upper bound)")
            bar.set(sum(st.n for st in state.values()))
        original_affinity = current_affinity()
        try:
            rnd = 0
            while True:
                pending = [k for k in keys if state[k].done is None]
                if not pending:
                    break
                rng.shuffle(pending)
                for k in pending:
                    self._block(by_key[k], state[k], h, rnd, on_error)
                    if bar is not None:
                        bar.set(sum(st.n for st in state.values()))
                rnd += 1
        finally:
            self.close()
            set_affinity(original_affinity)
            if bar is not None:
                bar.close()
        return self.samples(configs)

    def _block(self, cfg: Config, st: _State, h: str, rnd: int, on_error: str) -> None:
        try:
            sess = self._session(cfg)
            if hasattr(sess, "run_block"):
                self._aggregate_block(cfg, sess, st, h, rnd)
            else:
                self._timed_block(cfg, sess, st, h, rnd)
            st.blocks += 1
        except DeviceError:
            raise  # the device is gone (or refuses): everything so far is in the log; a rerun resumes
        except Exception as e:
            if on_error != "record":
                raise
            st.done = f"failed: {type(e).__name__}: {e}"[:500]
            self.log.append({"type": "done", "config": cfg.key, "reason": st.done, "run_id": self.run_id,
                             "settings_hash": h})
            stale = self._open.pop(cfg.key, None)
            if stale is not None:
                getattr(stale, "close", lambda: None)()
            return
        reason = stop_reason(st, self.s)
        if reason:
            st.done = reason
            self._done(cfg.key, st, h)
        if self.s.cooldown_s > 0:
            self.sleep(self.s.cooldown_s)

    def _done(self, key: str, st: _State, h: str) -> None:
        """The record of a configuration's stop, with its spread at that point."""
        if st.aggregates:
            n, mean, sd = pooled(st.aggregates)
            spread = {"n": n, "mean_ms": mean, "sd_ms": sd}
        else:
            spread = {"n": len(st.samples), "rel_halfwidth": stats.rel_halfwidth(st.samples, self.s.confidence)}
        self.log.append({"type": "done", "config": key, "reason": st.done, **spread, "run_id": self.run_id,
                         "settings_hash": h})

    def _timed_block(self, cfg: Config, sess, st: _State, h: str, rnd: int) -> None:
        """Warm-up, then up to ``block_size`` inferences, each timed by the harness's clock."""
        set_affinity(cfg.cores)
        before = self._sensors()
        t_block = self.wall()
        for _ in range(self.s.warmup):
            sess.run()
        need = min(self.s.block_size, self.s.max_samples - len(st.samples))
        taken = []
        for _ in range(need):
            t0 = self.clock()
            sess.run()
            dt_ms = (self.clock() - t0) / 1e6
            taken.append(dt_ms)
            st.samples.append(dt_ms)
            st.timed_s += dt_ms / 1000.0
            self.log.append({"type": "sample", "config": cfg.key, "sample": len(st.samples) - 1,
                             "block": st.blocks, "latency_ms": dt_ms, "t_wall": self.wall(),
                             "run_id": self.run_id, "settings_hash": h})
            if st.timed_s >= self.s.max_seconds and len(st.samples) >= self.s.min_samples:
                break
        after = self._sensors()
        self.log.append({"type": "block", "config": cfg.key, "block": st.blocks, "round": rnd, "n": len(taken),
                         "t_start": t_block, "t_end": self.wall(), "cores": list(cfg.cores or current_affinity()),
                         "sensors_before": before, "sensors_after": after, "run_id": self.run_id,
                         "settings_hash": h})

    def _aggregate_block(self, cfg: Config, sess, st: _State, h: str, rnd: int) -> None:
        """One block the session times itself (it pins its own cores): one atomic record."""
        need = max(1, min(self.s.block_size, self.s.max_samples - st.n))
        before = self._sensors()
        t0 = self.wall()
        agg = sess.run_block(need, self.s.warmup)
        t1 = self.wall()
        after = self._sensors()
        self.log.append({"type": "aggregate", "config": cfg.key, "block": st.blocks, "round": rnd,
                         "run_id": self.run_id, "settings_hash": h, "t_start": t0, "t_end": t1,
                         "cores": list(cfg.cores or []), "row": agg.row, **agg.log, "sensors_before": before,
                         "sensors_after": after})
        st.aggregates.append(agg.row)

    # -- tidy output ----------------------------------------------------------
    def samples(self, configs: list[Config]) -> pd.DataFrame:
        own = {self.run_id} if self._own_only else None
        return samples_frame(self.log, configs, self.s, self.env, run_ids=own)


def _complete_blocks(recs: list[dict[str, Any]], h: str) -> set[tuple[Any, Any, Any]]:
    """(config, block, run_id) of every block whose ``block`` record is in ``recs``."""
    return {(r.get("config"), r.get("block"), r.get("run_id")) for r in recs
            if r.get("type") == "block" and r.get("settings_hash") == h}


def samples_frame(log: RawLog, configs: list[Config], settings: HarnessSettings,
                  env: dict[str, Any] | None = None, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Tidy samples of ``configs`` under ``settings`` from the raw log: one row per timed
    call, with the configuration's columns, its stop reason and the sensor summary of
    the block it belongs to. Samples of a block without its ``block`` record (cut by a
    kill) are left out. ``run_ids``: only the samples of these harness runs."""
    h = settings.hash(env)
    by_key = {c.key: c for c in configs}
    wanted = None if run_ids is None else set(run_ids)
    recs = [r for r in log.records() if wanted is None or r.get("run_id") in wanted]
    blocks = {(r["config"], r["block"], r["run_id"]): r for r in recs
              if r.get("type") == "block" and r.get("settings_hash") == h}
    done = {r["config"]: r["reason"] for r in recs if r.get("type") == "done" and r.get("settings_hash") == h}
    rows = []
    runs_before: dict[str, int] = {}
    for r in recs:
        if r.get("type") not in ("sample", "aggregate") or r.get("settings_hash") != h or r["config"] not in by_key:
            continue
        row = dict(by_key[r["config"]].columns)
        if r["type"] == "aggregate":  # one row per block: its n runs, their mean as latency_ms
            row["sample"] = runs_before.get(r["config"], 0)  # index of the block's first run
            runs_before[r["config"]] = row["sample"] + int(r["row"].get("n") or 0)
            row.update({k: r.get(k) for k in ("config", "block", "run_id", "settings_hash")}, **r["row"])
            row["t_wall"] = r.get("t_end")
            b = r
        else:
            b = blocks.get((r["config"], r["block"], r["run_id"]))
            if b is None:
                continue  # a block cut by a kill
            row.update({k: r[k] for k in SAMPLE_COLUMNS})
        row["cores"] = ",".join(map(str, b.get("cores") or []))
        sb = sensor_summary(b.get("sensors_before"))
        sa = sensor_summary(b.get("sensors_after"))
        for k in sb:
            row[f"{k}_before"], row[f"{k}_after"] = sb[k], sa[k]
        row["stop_reason"] = done.get(r["config"], "incomplete")
        row["below_floors"] = settings.below_floors
        rows.append(row)
    df = pd.DataFrame(rows)
    failed = [(k, v) for k, v in done.items() if k in by_key and str(v).startswith("failed")]
    df.attrs["failed"] = {k: v for k, v in failed}
    return df


def failures_frame(log: RawLog, configs: list[Config], settings: HarnessSettings,
                   env: dict[str, Any] | None = None, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Configurations that could not be measured, with the reason (one row each): those
    whose last ``done`` record says failed (a failure retried on resume with success is
    not one). ``run_ids``: only the records of these harness runs."""
    h = settings.hash(env)
    by_key = {c.key: c for c in configs}
    wanted = None if run_ids is None else set(run_ids)
    last: dict[str, str] = {}
    for r in log.records("done"):
        if r.get("settings_hash") == h and r["config"] in by_key and (wanted is None or r.get("run_id") in wanted):
            last[r["config"]] = str(r["reason"])
    rows = [{**by_key[k].columns, "reason": v} for k, v in last.items() if v.startswith("failed")]
    return pd.DataFrame(rows)
