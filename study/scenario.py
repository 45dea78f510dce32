"""A dynamic scenario reproducible from a seed, and the continuous trace taken under it
(finding 4, ``study.profiling_error``).

**Schedule** (``make_schedule``): a seeded RNG draws phases one after another until the
scenario's length is filled. Phase kinds come in cycles: each cycle is a random
permutation of the allowed kinds, so every kind appears once before any repeats.

* ``idle``: no competitor;
* ``cpu``: k CPU competitors (k drawn from ``cpu_n``) pinned to one core group (drawn
  from ``groups``: on a 2-core host ``g0`` = core 0, ``g1`` = core 1, ``all``);
* ``memory``: m memory-bandwidth competitors pinned to a drawn core group;
* ``gpu``: GPU competitors (only where ``study.competitors.available_kinds`` allows);
* ``burst``: one CPU load (k, group drawn once) switched on and off in short periods
  (each drawn from ``burst_s``), starting with *on*.

Each phase is split into segments (a burst phase into its on/off periods, any other
phase is one segment). A segment carries the load that is on during it as a tuple of
``(kind, group, n)``; its ``label`` (e.g. ``cpu2@g0``, ``none``) names the context.

**Load** (``LoadController``): every competitor the schedule ever needs is started once,
before the scenario, then paused (SIGSTOP). At each segment change the competitors of
the segment's load are resumed (SIGCONT) and the others paused: switching is instant,
with no process start-up (imports, buffer allocation) inside the scenario. Every
competitor is resumed before the pool ends them (``CompetitorPool``'s context manager,
also on error), so the SIGTERM reaches a running process.

**Trace** (``run_trace``): the scenario runs on a wall clock. Each *step* runs every
configuration (model x candidate processor) once, in an order drawn per step from a
seeded RNG (no configuration is always first after a phase change); before each run
the process is pinned to the configuration's cores. Every inference's latency is
appended to the raw log as it is taken, with its context (time, step, position in the
step, segment, phase, load). Sensors are read at each phase change and every
``sensor_interval_s`` (between steps, never inside a timed run). The configurations of
one step are measured at adjacent moments, not simultaneously.

On a phone (``study.profiling_error``'s phone path) a configuration's session times itself:
``measure_block()`` runs one ``benchmark_model`` block and returns its numbers, which the
trace records instead of the host's wall time around the call (kept as ``call_ms``); load
switching uses ``RestartLoadController`` (competitors started and ended per segment).
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

PHASE_KINDS = ("idle", "cpu", "memory", "burst", "gpu")
# the competitor kind each phase kind needs
PHASE_NEEDS = {"idle": None, "cpu": "cpu", "memory": "memory", "burst": "cpu", "gpu": "gpu"}


# --------------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class Segment:
    index: int
    phase: int
    kind: str                 # phase kind
    start_s: float
    end_s: float
    load: tuple[tuple[str, str, int], ...] = ()   # (competitor kind, core group, count) on in this segment
    burst_on: bool | None = None                   # burst phases: is the load on in this segment

    @property
    def label(self) -> str:
        return load_label(self.load)

    def counts(self) -> dict[str, int]:
        out = {"cpu": 0, "memory": 0, "gpu": 0}
        for k, _, n in self.load:
            out[k] += n
        return out

    def as_row(self) -> dict[str, Any]:
        c = self.counts()
        return dict(segment=self.index, phase=self.phase, phase_kind=self.kind, seg_start_s=self.start_s,
                    seg_end_s=self.end_s, load=self.label, burst_on=self.burst_on, n_cpu_comp=c["cpu"],
                    n_mem_comp=c["memory"], n_gpu_comp=c["gpu"])


def load_label(load: Sequence[tuple[str, str, int]]) -> str:
    if not load:
        return "none"
    short = {"cpu": "cpu", "memory": "mem", "gpu": "gpu"}
    return "+".join(f"{short[k]}{n}@{g}" for k, g, n in sorted(load))


def _draw_n(rng: np.random.Generator, lo_hi: Sequence[int]) -> int:
    lo, hi = int(lo_hi[0]), int(lo_hi[1])
    return int(rng.integers(lo, hi + 1))


def make_schedule(seconds: float, seed: Sequence[int] | int, kinds: Sequence[str], *,
                  phase_s: Sequence[float] = (4.0, 9.0), burst_s: Sequence[float] = (0.3, 1.2),
                  cpu_n: Sequence[int] = (1, 2), memory_n: Sequence[int] = (1, 1), gpu_n: Sequence[int] = (1, 1),
                  groups: Sequence[str] = ("g0", "g1", "all"), gpu_group: str = "all") -> list[Segment]:
    """The scenario's segments, a pure function of its arguments (same seed, same schedule)."""
    kinds = [k for k in kinds if k in PHASE_KINDS]
    if not kinds:
        raise ValueError("no phase kinds to build a scenario from")
    if not groups and any(PHASE_NEEDS[k] in ("cpu", "memory") for k in kinds):
        raise ValueError("CPU or memory phases need at least one core group")
    rng = np.random.default_rng(seed)
    segs: list[Segment] = []
    t, phase, cycle = 0.0, 0, []
    while t < seconds - 1e-9:
        if not cycle:
            cycle = [kinds[i] for i in rng.permutation(len(kinds))]
        kind = cycle.pop(0)
        dur = float(min(rng.uniform(phase_s[0], phase_s[1]), seconds - t))
        end = t + dur
        if kind == "idle":
            segs.append(Segment(len(segs), phase, kind, t, end))
        elif kind in ("cpu", "memory"):
            n = _draw_n(rng, cpu_n if kind == "cpu" else memory_n)
            g = str(groups[int(rng.integers(len(groups)))])
            segs.append(Segment(len(segs), phase, kind, t, end, ((kind, g, n),)))
        elif kind == "gpu":
            segs.append(Segment(len(segs), phase, kind, t, end, (("gpu", gpu_group, _draw_n(rng, gpu_n)),)))
        else:  # burst: one CPU load, on/off periods
            n = _draw_n(rng, cpu_n)
            g = str(groups[int(rng.integers(len(groups)))])
            s, on = t, True
            while s < end - 1e-9:
                e = float(min(s + rng.uniform(burst_s[0], burst_s[1]), end))
                segs.append(Segment(len(segs), phase, kind, s, e, (("cpu", g, n),) if on else (), on))
                s, on = e, not on
        t = end
        phase += 1
    return segs


def competitor_needs(schedule: Sequence[Segment]) -> dict[tuple[str, str], int]:
    """(kind, group) -> the most competitors of that kind and group on at once."""
    need: dict[tuple[str, str], int] = {}
    for seg in schedule:
        for k, g, n in seg.load:
            need[(k, g)] = max(need.get((k, g), 0), n)
    return need


# --------------------------------------------------------------------------- load switching
class LoadController:
    """Starts every competitor a schedule needs once (paused), then switches loads by
    pausing (SIGSTOP) and resuming (SIGCONT) them. ``pool`` is a
    ``study.competitors.CompetitorPool`` (or any object with ``start(kind, n, cores)``
    returning pids); ``cores_of`` maps a core group to its cores (``None``: unpinned)."""

    def __init__(self, pool, cores_of: Callable[[str], Sequence[int] | None],
                 send: Callable[[int, int], None] = os.kill):
        self.pool = pool
        self.cores_of = cores_of
        self.send = send
        self.pids: dict[tuple[str, str], list[int]] = {}
        self.running: set[int] = set()

    def prepare(self, needs: dict[tuple[str, str], int]) -> None:
        for (kind, group), n in sorted(needs.items()):
            if n <= 0:
                continue
            pids = self.pool.start(kind, n, self.cores_of(group) if kind != "gpu" else None)
            self.pids[(kind, group)] = list(pids)
            for pid in pids:
                self._signal(pid, signal.SIGSTOP)

    def _signal(self, pid: int, sig: int) -> None:
        try:
            self.send(pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGCONT:
            self.running.add(pid)
        elif sig == signal.SIGSTOP:
            self.running.discard(pid)

    def apply(self, load: Sequence[tuple[str, str, int]]) -> list[int]:
        """Run exactly the competitors of ``load``; returns their pids."""
        want: set[int] = set()
        for kind, group, n in load:
            have = self.pids.get((kind, group), [])
            if len(have) < n:
                raise RuntimeError(f"load {kind} x{n} @{group}: only {len(have)} competitors prepared")
            want.update(have[:n])
        every = {p for pids in self.pids.values() for p in pids}
        for pid in sorted(every - want):
            if pid in self.running:
                self._signal(pid, signal.SIGSTOP)
        for pid in sorted(want - self.running):
            self._signal(pid, signal.SIGCONT)
        return sorted(want)

    def resume_all(self) -> None:
        """SIGCONT every competitor (before the pool ends them)."""
        for pids in self.pids.values():
            for pid in pids:
                self._signal(pid, signal.SIGCONT)


class RestartLoadController:
    """``LoadController`` for competitor pools without pause/resume (a phone's
    ``AdbCompetitorPool``: stopping a process tree by signals over adb is not atomic): at each
    segment change the competitors of the new load are started and the others ended
    (``pool.start`` / ``pool.stop``). Competitors still running for a (kind, group) that the
    next segment also needs are kept. Same interface: ``prepare``, ``apply``, ``resume_all``."""

    def __init__(self, pool, cores_of: Callable[[str], Sequence[int] | None]):
        self.pool = pool
        self.cores_of = cores_of
        self.pids: dict[tuple[str, str], list[int]] = {}

    def prepare(self, needs: dict[tuple[str, str], int]) -> None:
        """Check that every kind the schedule needs can start (nothing is started yet)."""
        reasons = self.pool.reasons() if hasattr(self.pool, "reasons") else {}
        for (kind, _group), n in sorted(needs.items()):
            if n > 0 and reasons.get(kind):
                raise RuntimeError(f"{kind} competitors unavailable: {reasons[kind]}")

    def apply(self, load: Sequence[tuple[str, str, int]]) -> list[int]:
        want = {(kind, group): n for kind, group, n in load}
        for key in list(self.pids):
            have = self.pids[key]
            keep = want.get(key, 0)
            if len(have) > keep:
                self.pool.stop(have[keep:])
                self.pids[key] = have[:keep]
            if not self.pids[key]:
                del self.pids[key]
        for (kind, group), n in sorted(want.items()):
            have = self.pids.setdefault((kind, group), [])
            if len(have) < n:
                have += list(self.pool.start(kind, n - len(have), self.cores_of(group) if kind != "gpu" else None))
        return sorted(p for pids in self.pids.values() for p in pids)

    def resume_all(self) -> None:
        """End every competitor (the pool's exit would too)."""
        if self.pids:
            self.pool.stop([p for pids in self.pids.values() for p in pids])
        self.pids.clear()


# --------------------------------------------------------------------------- the trace
@dataclass
class TraceConfig:
    """One configuration of the trace: a loaded session and how to prepare a run."""

    name: str                      # e.g. "mobilenet_v2 | litert/cpu/g0"
    columns: dict[str, Any]        # go into every row
    session: Any                   # .run() synchronous
    cores: tuple[int, ...] | None = None
    prepare: Callable[[], None] | None = None   # pin, set thread counts (outside the timing)
    error: str | None = field(default=None)


def run_trace(configs: list[TraceConfig], schedule: Sequence[Segment], *, apply_load: Callable[[Segment], Any],
              log=None, order_seed: Sequence[int] | int = 0, read_sensors: Callable[[], dict] | None = None,
              sensor_interval_s: float = 2.0, clock: Callable[[], int] = time.perf_counter_ns,
              progress: Callable[[int, float], None] | None = None) -> tuple[list[dict], list[dict]]:
    """Run the scenario: returns (inference rows, sensor rows). ``apply_load(segment)`` switches
    the competitors; every row is also appended to ``log`` (a ``RawLog``) as it is taken."""
    rng = np.random.default_rng(order_seed)
    rows: list[dict[str, Any]] = []
    sensor_rows: list[dict[str, Any]] = []
    live = list(configs)
    t0 = clock()
    step = 0
    last_phase = None
    next_sensor = 0.0

    def now() -> float:
        return (clock() - t0) / 1e9

    def sensors(seg: Segment, why: str) -> None:
        if read_sensors is None:
            return
        t = now()
        try:
            reading = read_sensors()
        except Exception as e:  # a sensor failure must not lose the trace
            reading = {"status": "unavailable", "why": f"sensor read failed: {e}"}
        rec = {"type": "sensors", "t_s": t, "why": why, **seg.as_row(), "sensors": reading}
        if log is not None:
            log.append(rec)
        sensor_rows.append(rec)

    for seg in schedule:
        if not live:
            break
        if now() >= seg.end_s:
            continue  # the previous step ran past this whole segment
        pids = apply_load(seg)
        t_applied = now()
        if log is not None:
            log.append({"type": "segment", **seg.as_row(), "t_applied_s": t_applied,
                        "pids": list(pids) if isinstance(pids, (list, tuple)) else None})
        if seg.phase != last_phase:
            sensors(seg, "phase change")
            next_sensor = now() + sensor_interval_s
            last_phase = seg.phase
        ctx = seg.as_row()
        while live and now() < seg.end_s:
            order = rng.permutation(len(live))
            failed = []
            for pos, i in enumerate(order):
                cfg = live[i]
                if cfg.prepare is not None:
                    cfg.prepare()
                a = clock()
                measured = None
                try:
                    if hasattr(cfg.session, "measure_block"):
                        measured = cfg.session.measure_block()
                    else:
                        cfg.session.run()
                except Exception as e:  # the configuration leaves the trace, the others go on
                    if getattr(e, "disconnected", False):
                        raise  # a phone that went away: the stage stops, what was taken is in the log
                    cfg.error = f"{type(e).__name__}: {e}"[:500]
                    failed.append(cfg)
                    rec = {"type": "error", "config": cfg.name, "step": step, "t_s": (a - t0) / 1e9,
                           "reason": cfg.error}
                    if log is not None:
                        log.append(rec)
                    continue
                b = clock()
                rec = {"type": "inference", "config": cfg.name, "step": step, "pos": pos, "t_s": (a - t0) / 1e9,
                       "latency_ms": (b - a) / 1e6, **ctx}
                if measured is not None:  # timed on the device (a phone's benchmark block): its own number
                    rec.update({k: v for k, v in measured.items() if k not in ctx}, call_ms=(b - a) / 1e6)
                if log is not None:
                    log.append(rec)
                rows.append({**cfg.columns, **rec})
            for cfg in failed:
                live.remove(cfg)
            step += 1
            if progress is not None:
                progress(step, now())
            if now() >= next_sensor:
                sensors(seg, "interval")
                next_sensor = now() + sensor_interval_s
    return rows, sensor_rows
