"""Exact resume: a run killed at any point and run again gives the dataset an uninterrupted
run gives (the same rows per configuration, no rows of a unit cut by the kill, no NaN from a
record written late).

A kill is simulated at a chosen raw-log record: ``kill_before`` raises ``Killed`` (a
BaseException, as a signal would end the process: no ``except Exception`` catches it)
just before that record is written, so everything before it is on disk and nothing after.
Children the killed run started are ended by its ``finally`` blocks, as their parent-death
signal ends them after a real SIGKILL (``tests/test_stage_process.py``)."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest

from study.paths import ROOT
from study import contention as C
from study.measure import RawLog

needs_models = pytest.mark.needs_models


class Killed(BaseException):
    """The simulated SIGKILL."""


@contextlib.contextmanager
def kill_before(match: Callable[[Path, dict[str, Any]], bool], nth: int = 1):
    """Raise ``Killed`` instead of writing the ``nth`` raw-log record for which
    ``match(log_path, record)`` holds."""
    original = RawLog.append
    seen = [0]

    def append(self, record):
        if match(self.path, record):
            seen[0] += 1
            if seen[0] == nth:
                raise Killed(f"killed before {record.get('type')} record #{nth} of {self.path.name}")
        return original(self, record)

    RawLog.append = append
    try:
        yield seen
    finally:
        RawLog.append = original


def of_type(t: str, **fields) -> Callable[[Path, dict[str, Any]], bool]:
    return lambda _p, r: r.get("type") == t and all(r.get(k) == v for k, v in fields.items())


def counts(df: pd.DataFrame, keys: list[str]) -> dict:
    return {k: int(v) for k, v in df.groupby(keys, dropna=False).size().items()}


# =========================================================================== contention
LAT_KEYS = ["model", "sut", "visit", "round", "kind", "n_competitors", "competitor_cores"]
FRAME_KEYS = ["run", "fps", "render", "inference_sut"]


def _contention_ctx(root: Path):
    import yaml

    from study.common import context

    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = {"device": "local", "profile": "quick", "seed": 3, "harness": dict(p["harness"]["quick"], warmup=1),
              **{k: f.default for k, f in C.PARAMS.items()}}
    params.update(dict(models=["mobilenet_v2"], suts=["cpu/litert"], kinds=["cpu"], n_competitors=[0, 1],
                       core_placements=["same"], rounds=1, samples_per_visit=3, ramp_s=0.05,
                       corun_models=["mobilenet_v2"], corun_suts=["cpu/litert"], renders=["cpu"], fps=[30],
                       corun_rounds=1, corun_seconds=0.6, app_warmup_s=0.1, claim_fps=30, clip="bikes", n_boot=200))
    ctx = context("contention", params)
    ctx.data_root, ctx.figures_root = root / "data", root / "figures"
    return ctx


def _contention_measure(ctx, part: str):
    avail = pd.concat([C.availability_rows(ctx, ctx.params["models"], ctx.params["suts"], ctx.params["kinds"]),
                       C.availability_rows(ctx, ctx.params["corun_models"], ctx.params["corun_suts"], [])],
                      ignore_index=True)
    cache = C.SessionCache()
    try:
        if part == "visits":
            return C.measure_contention(ctx, avail, cache)
        frames, corun = C.measure_corun(ctx, avail, cache)
        return pd.concat([frames, corun], ignore_index=True)
    finally:
        cache.close()


@pytest.fixture(scope="module")
def contention_reference(tmp_path_factory):
    """An uninterrupted run of each part."""
    if not (ROOT / "data" / "models" / "manifest.json").exists():
        pytest.skip("needs the models stage's output")
    root = tmp_path_factory.mktemp("reference")
    ctx = _contention_ctx(root)
    return {part: _contention_measure(ctx, part) for part in ("visits", "corun")}


def _check_visits(data: pd.DataFrame, ref: pd.DataFrame) -> None:
    lat = data[data.measurement == "latency"]
    ref_lat = ref[ref.measurement == "latency"]
    assert counts(lat, LAT_KEYS) == counts(ref_lat, LAT_KEYS)
    assert (lat.groupby("visit").run_id.nunique() == 1).all()             # one measuring run per visit
    assert lat.stop_reason.ne("incomplete").all()
    loaded = lat[lat.n_competitors > 0]
    assert len(loaded) and loaded[["competitor_cpu_s", "competitor_util", "competitors_alive_at_end"]].notna().all().all()
    assert loaded.competitor_cpu_s.gt(0).all()


def _check_corun(data: pd.DataFrame, ref: pd.DataFrame) -> None:
    fr, ref_fr = data[data.measurement == "frame"], ref[ref.measurement == "frame"]
    assert counts(fr, FRAME_KEYS) == counts(ref_fr, FRAME_KEYS)
    assert counts(fr, ["fps", "render", "inference_sut"]) == counts(ref_fr, ["fps", "render", "inference_sut"])
    assert (fr.groupby("run").app_pid.nunique() == 1).all()               # one app process per run
    assert (fr.groupby("run").attempt.nunique() == 1).all()
    assert fr.groupby("run").frame.apply(lambda s: sorted(s) == list(range(len(s)))).all()
    inf = data[data.measurement == "corun_inference"]
    assert len(inf) and (inf.groupby("run").attempt.nunique() == 1).all()
    assert set(inf.run) == set(fr[fr.inference_sut != "idle"].run)
    same = inf.merge(fr[["run", "attempt"]].drop_duplicates(), on=["run", "attempt"])
    assert len(same) == len(inf)                                           # inferences of the attempt that counts


VISIT_KILLS = {
    "mid visit, between two samples": (of_type("sample"), 2),
    "between a visit's samples and its block record": (of_type("block"), 1),
    "between a visit's samples and its visit record (competitors running)": (of_type("visit", n=1), 1),
    "between the first visit's record and the next visit": (of_type("meta"), 2),
}


@needs_models
@pytest.mark.parametrize("point", list(VISIT_KILLS))
def test_contention_visits_resume_exactly(tmp_path, contention_reference, point):
    match, nth = VISIT_KILLS[point]
    ctx = _contention_ctx(tmp_path)
    with kill_before(lambda p, r: p.name == "contention.jsonl" and match(p, r), nth) as seen, \
            pytest.raises(Killed):
        _contention_measure(ctx, "visits")
    assert seen[0] == nth
    _check_visits(_contention_measure(ctx, "visits"), contention_reference["visits"])


def _kill_mid_app(monkeypatch, which: str, after_s: float = 0.4):
    """Kill the measuring process while the app of the first ``which`` run ('idle' or an
    inference) is drawing frames."""
    import time

    real_spawn, real_wait = C.spawn_child, C.wait_ready
    current = {}

    def spawn(module, args, **kw):
        current["tag"] = __import__("json").loads(args[args.index("--tag") + 1])
        return real_spawn(module, args, **kw)

    def wait(procs, timeout):
        problems = real_wait(procs, timeout)
        if (current["tag"]["inference_sut"] == "idle") == (which == "idle"):
            time.sleep(after_s)
            raise Killed("killed while the app runs")
        return problems

    monkeypatch.setattr(C, "spawn_child", spawn)
    monkeypatch.setattr(C, "wait_ready", wait)


CORUN_KILLS = ["mid idle app run", "mid app run beside inference", "between a run's records and its done record",
               "before the second run's done record"]


@needs_models
@pytest.mark.parametrize("point", CORUN_KILLS)
def test_contention_corunning_app_resumes_exactly(tmp_path, monkeypatch, contention_reference, point):
    ctx = _contention_ctx(tmp_path)
    with pytest.raises(Killed):
        if point.startswith("mid"):
            with monkeypatch.context() as m:
                _kill_mid_app(m, "idle" if "idle" in point else "inference")
                _contention_measure(ctx, "corun")
        else:
            nth = 2 if "second" in point else 1
            with kill_before(of_type("corun_done"), nth):
                _contention_measure(ctx, "corun")
    app_frames = RawLog(ctx.raw_log(C.APP_LOG).path).records("frame")
    assert app_frames                                                     # the cut run left frames behind
    _check_corun(_contention_measure(ctx, "corun"), contention_reference["corun"])


def test_corun_tables_keep_only_the_finished_attempt():
    """Unit level: frames and inferences of an attempt without a done record do not count."""
    done = {"k1": "a2"}
    df = pd.DataFrame([dict(run_key="k1", attempt="a1", frame=0), dict(run_key="k1", attempt="a2", frame=0),
                       dict(run_key="k2", attempt="b1", frame=0)])
    assert C._done_attempts(df, done).to_dict("records") == [dict(run_key="k1", attempt="a2", frame=0)]
    assert len(C._done_attempts(df.drop(columns="attempt"), done)) == 0   # records of the old format


# =========================================================================== the harness-based findings
QUICK = dict(warmup=1, min_samples=4, max_samples=4, max_seconds=1000.0, rel_ci_halfwidth=0.5, block_size=2,
             cooldown_s=0.0, below_floors=True)   # min = max: the row count per configuration is fixed


def _ctx(finding: str, root: Path, **own):
    import importlib

    from study.common import context

    mod = importlib.import_module(f"study.{finding}")
    params = {"device": "local", "profile": "quick", "seed": 3, "harness": dict(QUICK),
              **{k: f.default for k, f in mod.PARAMS.items()}, **own}
    ctx = context(finding, params)
    ctx.data_root, ctx.figures_root = root / "data", root / "figures"
    return mod, ctx


FINDINGS = {
    "operator_support": dict(models=["mobilenet_v2"], engines=["litert", "onnxruntime"], processors=["cpu"],
                             profile_repeats=2, profile_runs=1, whole_model=True),
    "mulayer_overhead": dict(models=["mobilenet_v2"], pairs=["cpu+cpu"], granularities=["operator", "frame"],
                             ratios=[0.5], input_size=64, profile_runs=1, frames_per_run=2, n_boot=200),
    "frame_reuse": dict(models=["mobilenet_v2"], clips=["carphone", "bikes"], frames=4, frame_thresholds=[4.0],
                        region_thresholds=[8.0], warmup_frames=1, memory_frames=2, n_boot=200),
    "profiling_error": dict(candidates=["litert/cpu/g0", "litert/cpu/all"], scenario_seconds=3.0,
                            phase_seconds=[1.0, 1.5], burst_seconds=[0.2, 0.4], phase_kinds=["idle", "cpu"],
                            cpu_competitors=[1, 1], op_runs=1, n_boot=100, block_seconds=1.0, sensor_interval_s=1.0),
    "cross_level": dict(models=["mobilenet_v2"], engines=["litert", "onnxruntime"], processors=["cpu"],
                        calib_frames=1, fidelity_frames=2, frame_stride=5, clips=["carphone"], n_boot=200,
                        coexec_models=[]),
}
# the rows whose count is fixed: profiling error's scenario trace runs for a time, not a count
COMPARED = {"profiling_error": lambda d: d[d["part"].isin(["offline", "op_time"])]}
_REFS: dict[str, pd.DataFrame] = {}


def _reference(finding: str, tmp_path_factory) -> pd.DataFrame:
    if finding not in _REFS:
        mod, ctx = _ctx(finding, tmp_path_factory.mktemp(f"ref-{finding}"), **FINDINGS[finding])
        _REFS[finding] = mod.measure(ctx)
    return _REFS[finding]


def _rows_per_configuration(df: pd.DataFrame) -> dict:
    """Rows per harness configuration, and per (record, model, engine, processor, repeat, clip,
    mechanism, threshold, granularity) for the rest: whatever of those the finding has."""
    keys = [c for c in ("record", "model", "engine", "processor", "repeat", "clip", "mechanism", "threshold",
                        "granularity", "pair", "label") if c in df.columns]
    out = {}
    if "config" in df.columns and "label" not in df.columns:  # mulayer: the config holds a measured ratio
        lat = df[df["config"].notna() & (df["config"].astype(str) != "")]
        out.update({("config", k): v for k, v in counts(lat, ["config"]).items()})
        df = df.drop(lat.index)
    out.update(counts(df.astype({k: str for k in keys}), keys))
    return out


KILLS = {
    "operator_support": {
        "between two operator profiles": (lambda p, r: r.get("type") == "op_profile", 2),
        "mid latency block": (of_type("sample"), 3),
        "between a block and its done record": (of_type("done"), 1),
    },
    "mulayer_overhead": {
        "between a sample and its breakdown": (of_type("breakdown"), 3),
        "mid block": (of_type("sample"), 5),
        "before the profile record": (of_type("profile"), 1),
    },
    "frame_reuse": {
        "mid second group (its frame records in, its group record not)": (of_type("group"), 2),
    },
    "cross_level": {
        "mid latency block (variants, fidelity and placements before it)": (of_type("sample"), 3),
    },
    "profiling_error": {
        "mid offline block": (lambda p, r: "offline" in p.name and r.get("type") == "sample", 3),
        "between the offline profiles and the operator times": (of_type("op_time"), 1),
        "mid scenario": (of_type("segment"), 2),
    },
}


@needs_models
@pytest.mark.parametrize("finding,point", [(f, k) for f, ks in KILLS.items() for k in ks])
def test_finding_resumes_exactly(tmp_path, tmp_path_factory, finding, point):
    ref = _reference(finding, tmp_path_factory)
    match, nth = KILLS[finding][point]
    mod, ctx = _ctx(finding, tmp_path, **FINDINGS[finding])
    with kill_before(match, nth) as seen, pytest.raises(Killed):
        mod.measure(ctx)
    assert seen[0] == nth
    mod, ctx = _ctx(finding, tmp_path, **FINDINGS[finding])   # a new process: a new context
    again = mod.measure(ctx)
    pick = COMPARED.get(finding, lambda d: d)
    assert _rows_per_configuration(pick(again)) == _rows_per_configuration(pick(ref))
    if "stop_reason" in again.columns:
        assert not again["stop_reason"].eq("incomplete").any()
    if "stop_reason" in again.columns:   # harness rows: each with its latency and its block's readings
        lat = again[again["stop_reason"].notna() & (again["stop_reason"].astype(str) != "")]
        assert lat["latency_ms"].notna().all() and lat["cores"].astype(str).ne("").all()


# =========================================================================== rigor: a real SIGKILL mid child run
RIGOR = dict(models=["mobilenet_v2"], engines=["litert"], processors=["cpu"], core_group="all",
             sustained_seconds=1.0, burst_seconds=0.2, sensor_interval_s=0.5, between_runs=2, samples_per_run=6,
             coverage_models=["mobilenet_v2"], coverage_engines=["litert"], coverage_core_groups=["all"])


@needs_models
def test_rigor_killed_mid_child_run_resumes_exactly(tmp_path):
    """The stage process is SIGKILLed while a between-run child measures: the child dies with it,
    and the rerun's independent runs have exactly ``samples_per_run`` samples each (the killed
    child's samples are not resumed into a new run) and the coverage runs their full counts."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    from study.datasets import read_table

    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from pathlib import Path
        from test_resume import RIGOR, _ctx
        mod, ctx = _ctx("rigor", Path({str(tmp_path)!r}), **RIGOR)
        mod.measure(ctx)
        """)
    between = tmp_path / "data" / "local" / "raw" / "rigor-between.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=str(ROOT), start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if between.exists() and between.read_text().count('"type": "sample"') >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before the kill point"
        children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        os.kill(proc.pid, signal.SIGKILL)        # the stage process only
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
        time.sleep(0.1)
    assert children and not any(Path(f"/proc/{c}").exists() and "Z" not in Path(f"/proc/{c}/stat").read_text()
                                .split(") ", 1)[1][:1] for c in children)          # the child died with it
    cut = [json.loads(x) for x in between.read_text().splitlines() if '"type": "sample"' in x]
    assert cut and not any('"type": "complete"' in x for x in between.read_text().splitlines()[-1:])

    mod, ctx = _ctx("rigor", tmp_path, **RIGOR)
    mod.measure(ctx)
    aux = tmp_path / "data" / "local" / "rigor"
    b = read_table(aux / "between_samples.parquet")
    per_run = b.groupby(["run_id", "model", "engine", "processor"]).size()
    assert len(per_run) == RIGOR["between_runs"] and (per_run == RIGOR["samples_per_run"]).all()
    assert not set(b.run_id) & {r["run_id"] for r in cut}                # nothing of the killed run
    cov = read_table(aux / "coverage_samples.parquet")
    assert sorted(cov.groupby("run").size()) == [QUICK["max_samples"]] * 2
