"""Findings on a phone (``device=adb:SERIAL``): one more system under test, behind the same harness.

A phone runs no Python. Everything measured there goes through LiteRT's ``benchmark_model``
(``study.engines.tflite_benchmark``, engine ``litert-benchmark``) and the phone's shell
(``study.devices.adb.AdbDevice``). The pieces:

* **the device supplies the sessions**: ``ctx.latency_config(model, "litert", processor,
  core_group)`` asks the device for the engine (``Device.engine``: on a phone LiteRT is
  benchmark_model, column ``engine`` = ``litert-benchmark``) and the session
  (``Device.open_session``: a ``BenchmarkSession``, one benchmark_model call per block, pinned
  with taskset). ``config`` below is that call.
* **one harness**: ``study.measure.Harness`` runs a phone's sessions like the host's; a session
  that times its own runs returns an ``Aggregate`` (n, mean, std, as benchmark_model prints
  them) and the harness's stopping rule works on the aggregates (``aggregate_stop_reason``).
  ``measure`` below is ``ctx.harness(...).run(...)``; rows carry the host's columns plus
  ``n``/``aggregate``/``method``.
* **no branch on the kind of device in a finding**: what a device can run is a capability it
  declares (``study.devices.supports(spec, PYTHON)``: the study's Python engines run there;
  ``BENCHMARK_MODEL``: benchmark_model), and what a stage cannot run on a phone is declared once,
  in the stage registry (``study.stages``: each stage's ``phone`` runner, ``None`` where it
  cannot). A finding asks ``not_measurable(ctx, finding)`` (the registry against the device's
  capabilities) or ``devices.supports(...)``; ``tests/test_no_device_branch.py`` fails on an
  ``is_phone``-style test inside a finding module.

What to call, per kind of measurement:

* **availability** -- ``availability(ctx, model, engine, processor)``: ``None`` or why
  not. Only engine ``litert`` maps to the phone (``benchmark_model``); ``onnxruntime`` and
  ``torch`` rows say "no Python on the phone" (``engine_reason``). Processors, delegates and
  their reasons come from the phone (``AdbDevice.processors()``).
* **latency** -- ``cfgs = [config(ctx, model, processor, core_group, **columns)]``,
  ``df = measure(ctx, cfgs, log, settings)``: interleaved, seeded, resumable, one row
  per ``benchmark_model`` call (``n`` runs, ``latency_ms`` = the call's mean, std, min,
  max, ``aggregate=True``); ``failures(df, cfgs)`` gives the failed configurations
  with their reasons. There are NO per-run latencies (the binary prints aggregates only):
  every statistic uses the per-call means as its samples (medians, bootstrap CIs over
  blocks); put ``BLOCK_METHOD`` (or a sentence like it) in method/reason columns.
  Each call loads the model anew (``init_ms``) and runs ``warmup`` untimed runs first.
* **one call at a chosen moment** (a sustained run, a scenario trace, an inference beside
  an app) -- ``block(ctx, cfg, runs, warmup)`` -> one aggregate row (dict), from the
  configuration's session; ``BlockSession`` wraps it for ``study.scenario.run_trace``
  (``measure_block``).
* **placement / per-operator time** -- ``ctx.device.engine("litert").placement(...)``;
  ``op_profile(ctx, model, processor, cores, threads, runs)`` (pinned; the primary
  graph's top-level nodes only, so a delegate partition is one row and a sum of rows does
  not count a partition twice).
* **competitors** -- ``competitor_pool(ctx, gpu_model)`` (``AdbCompetitorPool``:
  ``cpu`` busy loop, ``memory`` dd, ``gpu`` benchmark_model on the GPU; ``reasons()``;
  always ended on exit). No pause/resume: start competitors for a measurement and stop
  them after (``study.scenario.RestartLoadController`` does this per segment). Also
  reachable as ``study.competitors.competitors(kind, n, cores, device=phone)``.
* **frame drops of a co-running app** -- ``frame_trace(ctx, seconds, during)``:
  ``dumpsys gfxinfo <adb.gfxinfo_package>`` reset, then polled (framestats) while
  ``during()`` runs (e.g. a ``block`` with ``min_secs``); per-frame rows.
* **a finding a phone cannot run** (its ``study.stages`` entry's ``phone`` is None, so
  ``not_measurable(ctx, finding)`` gives the reason) -- still leaves every DVC output:
  ``unsupported_rows`` (the dataset: what was not measured and why),
  ``not_measurable_claims`` (claims table), ``notice_figure`` (PNG+PDF),
  ``close_raw_logs`` (the stage's raw logs exist, with the reason).

Where a finding measures differently on a phone (a sustained run of blocks instead of single
inferences, competitors started per segment), its benchmark_model path is chosen by the
device's capability (``not devices.supports(ctx.device_spec, PYTHON)``), never by its kind.
Everything a phone cannot do is a row with the reason (``unsupported_reason``), never a number.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from study import devices, stages

ENGINE = "litert-benchmark"
BLOCK_METHOD = ("phone: one benchmark_model call per row (n runs; latency_ms = the call's mean, the binary prints "
                "no per-run latencies), so statistics treat the per-call means as the samples")
CLAIM_COLUMNS = ["claim", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "n", "paper_value", "verdict",
                 "reason"]


# =========================================================================== what runs where
def not_measurable(ctx, finding: str) -> str | None:
    """None where ``ctx``'s device runs ``finding``, else why not: the stage registry
    (``study.stages``: each stage's ``phone`` runner) against the device's capabilities."""
    return stages.unsupported_reason(finding, devices.device_class(ctx.device_spec).capabilities, ctx.device_spec)


def unsupported_reason(finding: str, device_spec: str = "") -> str:
    """What the report says of ``finding`` on a phone: how it runs there, or why it cannot."""
    how, why = stages.phone_support(finding)
    where = f" ({device_spec})" if device_spec else ""
    return f"not measurable on a phone{where}: {why}" if how is None else why


def engine_reason(engine: str) -> str | None:
    """None if ``engine`` runs on a phone (LiteRT = benchmark_model), else why not."""
    if engine in ("litert", ENGINE):
        return None
    return (f"{engine} runs in Python on the host; a phone runs no Python, only LiteRT's benchmark_model "
            f"(engine {ENGINE})")


def availability(ctx, model: str, engine: str, processor: str) -> str | None:
    """None if ``model`` runs with ``engine`` on ``processor`` of the phone, else why not."""
    from study.engines.tflite_benchmark import TFLiteBenchmarkEngine

    why = engine_reason(engine)
    if why:
        return why
    return TFLiteBenchmarkEngine(ctx.device).availability(ctx.device, processor, ctx.model(model))


# =========================================================================== latency
def config(ctx, model: str, processor: str, core_group: str = "all", **columns: Any):
    """One configuration for ``measure`` / ``block``: ``ctx.latency_config`` with LiteRT, which the
    phone runs as ``benchmark_model`` (its session returns one aggregate per block)."""
    return ctx.latency_config(model, "litert", processor, core_group, **columns)


def measure(ctx, configs: list, log, settings=None, run_id: str | None = None, resume: bool = True) -> pd.DataFrame:
    """``study.measure``'s harness (interleaved, seeded, resumable) on the phone's sessions: one row
    per benchmark_model call. ``resume=False``: an independent run (its own rows only)."""
    if not configs:
        return pd.DataFrame()
    return ctx.harness(log, settings, run_id=run_id, progress=False).run(configs, resume=resume)


def failures(df: pd.DataFrame, configs: list) -> pd.DataFrame:
    """The configurations ``measure`` marked failed: their columns and the reason."""
    failed = dict(getattr(df, "attrs", {}).get("failed", {}) or {})
    rows = [{**c.columns, "config": c.key, "reason": failed[c.key]} for c in configs if c.key in failed]
    return pd.DataFrame(rows)


def block(ctx, cfg, runs: int, warmup: int | None = None, extra_flags: dict[str, Any] | None = None) -> dict[str, Any]:
    """ONE ``benchmark_model`` call of ``cfg``'s session (``runs`` timed runs after ``warmup``
    untimed ones, pinned to its cores): the aggregate row, with the call's wall-clock start/end
    on the host (``t_start``/``t_end``, epoch seconds) and the delegation columns."""
    from study.engines.tflite_benchmark import samples_frame

    warmup = ctx.settings.warmup if warmup is None else warmup
    sess = cfg.opener()
    t0 = time.time()
    res = sess.call(max(1, int(runs)), int(warmup), extra_flags)
    t1 = time.time()
    row = samples_frame(res).iloc[0].to_dict()
    d = res.delegation_for(sess.processor)
    row.update(t_start=t0, t_end=t1, call_s=t1 - t0, delegate=d.delegate if d else "none",
               delegated_nodes=d.delegated_nodes if d else 0, gpu_backend=res.gpu_backend)
    return row


class BlockSession:
    """A configuration for ``study.scenario.run_trace`` on a phone: each step is one
    ``benchmark_model`` call of ``runs`` runs; ``measure_block()`` returns its numbers (the
    trace records the call's mean as ``latency_ms``, not the host's wall time around it)."""

    KEEP = ("n", "latency_std_ms", "latency_min_ms", "latency_max_ms", "init_ms", "warmup_n", "aggregate", "method")

    def __init__(self, ctx, cfg, runs: int, warmup: int | None = None):
        self.ctx, self.cfg, self.runs, self.warmup = ctx, cfg, runs, warmup

    def measure_block(self) -> dict[str, Any]:
        row = block(self.ctx, self.cfg, self.runs, self.warmup)
        return {"latency_ms": row["latency_ms"], **{k: row.get(k) for k in self.KEEP}}

    def run(self) -> None:
        self.measure_block()

    def close(self) -> None:
        pass


def op_profile(ctx, model: str, processor: str, cores: Sequence[int] | None, threads: int, runs: int) -> pd.DataFrame:
    """Per-operator times of one profiled call (``--enable_op_profiling``), pinned to ``cores``:
    the primary graph's top-level nodes (CPU kernels by node, each delegate partition as one
    node); the delegate-internal breakdown is left out so the rows add up to the graph once."""
    from study.engines.base import EngineUnavailable
    from study.engines.tflite_benchmark import TFLiteBenchmarkEngine, op_profile_frame

    eng = TFLiteBenchmarkEngine(ctx.device)
    res = eng.run(ctx.model(model), processor, threads, list(cores) if cores else None, num_runs=runs, warmup=1,
                  op_profiling=True)
    if not res.ok:
        raise EngineUnavailable(f"{ENGINE} on {processor}: benchmark failed: {'; '.join(res.errors)[:300]}")
    df = op_profile_frame(res, model, processor)
    top = df[(df["subgraph"] == 0) & ~df["op_name"].astype(str).str.startswith("Delegate/")].copy()
    top["method"] = top["method"] + "; top-level nodes of the primary graph (phone)"
    return top.reset_index(drop=True)


# =========================================================================== competitors
def gpu_competitor_model(ctx, models: Sequence[str]):
    """The .tflite file the phone's GPU competitor loops on (the first model that has one)."""
    for m in models:
        try:
            spec = ctx.model(m)
        except Exception:  # noqa: BLE001 - an unknown model is reported elsewhere
            continue
        if spec.has("tflite"):
            return spec.path("tflite")
    return None


def competitor_pool(ctx, gpu_model=None):
    """Competitors on the phone (``AdbCompetitorPool``); use it as a context manager."""
    return ctx.device.competitor_pool(gpu_model=gpu_model)


# =========================================================================== a co-running app
FRAME_COLUMNS = ["frame", "intended_vsync_ns", "frame_ms", "frame_interval_ms", "missed", "skipped", "lateness_ms"]


def frame_trace(ctx, seconds: float, during: Callable[[], Any] | None = None, package: str | None = None,
                poll_s: float = 0.5) -> tuple[pd.DataFrame, dict[str, Any], Any]:
    """Frames the co-running app (``adb.gfxinfo_package`` or ``package``) rendered while
    ``during()`` ran in a thread (or for ``seconds`` when ``during`` is None).

    ``dumpsys gfxinfo <pkg> reset`` first; then ``... framestats`` every ``poll_s`` and once at
    the end. framestats lists at most the last 120 frames (HWUI clears them as it prints them),
    so polling keeps every frame; frames are deduplicated by their IntendedVsync, and rows
    with non-zero Flags (not a normal frame) are dropped as Android's own tools do. A frame
    is *missed* when FrameCompleted - IntendedVsync exceeds its frame interval (janky).
    Returns (frames, the last read's counters since the reset, ``during``'s result)."""
    dev = ctx.device
    dev.gfxinfo_reset(package)
    box: dict[str, Any] = {}
    th = None
    if during is not None:
        def target():
            try:
                box["value"] = during()
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                box["error"] = e
        th = threading.Thread(target=target, name="phone-frame-trace", daemon=True)
        th.start()
    t0 = time.monotonic()
    seen: dict[int, dict[str, Any]] = {}
    counters: dict[str, Any] = {}
    try:
        while True:
            finished = (not th.is_alive()) if th is not None else (time.monotonic() - t0 >= seconds)
            info = dev.gfxinfo(package)
            fr = info.pop("frames")
            for r in fr.to_dict("records"):
                seen.setdefault(int(r["intended_vsync_ns"]), r)
            counters = info
            if finished:
                break
            wait = poll_s if th is not None else min(poll_s, max(0.0, seconds - (time.monotonic() - t0)))
            if th is not None:
                th.join(wait)
            else:
                time.sleep(wait)
    finally:
        if th is not None:
            th.join()  # never leave a benchmark running into the next measurement
    if "error" in box:
        raise box["error"]
    rows = []
    for i, r in enumerate(r for _, r in sorted(seen.items()) if int(r["flags"]) == 0):
        rows.append(dict(frame=i, intended_vsync_ns=int(r["intended_vsync_ns"]), frame_ms=float(r["duration_ms"]),
                         frame_interval_ms=float(r["frame_interval_ms"]), missed=bool(r["janky"]), skipped=False,
                         lateness_ms=max(0.0, float(r["duration_ms"]) - float(r["frame_interval_ms"]))))
    counters["wall_s"] = time.monotonic() - t0
    return pd.DataFrame(rows, columns=FRAME_COLUMNS), counters, box.get("value")


# =========================================================================== findings a phone cannot run
def unsupported_rows(finding: str, device_spec: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The dataset of a finding a phone cannot run: one row per thing that was not measured,
    each with ``available=False`` and the reason."""
    why = unsupported_reason(finding, device_spec)
    return pd.DataFrame([{**r, "available": False, "reason": why} for r in rows])


def not_measurable_claims(claims: list[dict[str, Any]], reason: str,
                          columns: Sequence[str] = CLAIM_COLUMNS) -> pd.DataFrame:
    """``claims``: dicts with at least ``claim``, ``text``, ``paper_value`` (and ``statistic``)."""
    rows = [{**dict(statistic="", effect=np.nan, ci_lo=np.nan, ci_hi=np.nan, p_value=np.nan, n=0),
             **c, "verdict": "not measurable", "reason": reason} for c in claims]
    return pd.DataFrame(rows).reindex(columns=list(columns))


def notice_figure(ctx, name: str, title: str, lines: Sequence[str]):
    """A figure that says what was not measured and why (saved as PNG + PDF)."""
    import textwrap

    from study import plotting

    fig, ax = plotting.figure(plotting.WIDTH, 2.6)
    ax.axis("off")
    body = "\n".join(textwrap.fill(str(t), 110) for t in lines)
    ax.text(0.0, 1.0, title, fontsize=11, fontweight="bold", va="top", transform=ax.transAxes)
    ax.text(0.0, 0.80, body, fontsize=8, va="top", transform=ax.transAxes, color="#444444")
    ctx.save(fig, name)
    return fig


def close_raw_logs(ctx, names: Sequence[str], finding: str) -> None:
    """Leave each raw log the stage declares (DVC outputs) with a record saying why nothing
    was measured, closed with a ``complete`` marker."""
    why = unsupported_reason(finding, ctx.device_spec)
    for name in names:
        log = ctx.raw_log(name)
        log.append({"type": "not_measurable", "finding": finding, "device": ctx.device_spec, "reason": why,
                    "t_wall": time.time()})
        log.mark_complete(finding=finding)
        log.close()


__all__ = ["BLOCK_METHOD", "BlockSession", "CLAIM_COLUMNS", "ENGINE", "availability", "block", "close_raw_logs",
           "competitor_pool", "config", "engine_reason", "failures", "frame_trace",
           "gpu_competitor_model", "measure", "not_measurable", "not_measurable_claims", "notice_figure", "op_profile",
           "unsupported_reason", "unsupported_rows"]
