"""Independent runs as the unit of replication (Kalibera & Jones, ISMM'13; docs/methods.md).

A claim's deciding measurement is repeated in ``runs`` independent processes (the stage's
``runs`` parameter: 3 in the quick and reference profiles, 5 in the full one). Run 1 is the
stage's own measurement; runs 2..R are fresh Python processes (``python -m study.replicate
SPEC``, ending with their parent: ``study.lifetime``), each measuring only what decides the
finding's claims (``replicate_params`` of the finding narrows its section: the primary model,
the deciding configurations), its configurations interleaved in blocks by the harness as in
the stage, with its own seed for the order. Each run's claims rows come from the finding's own
claims function on that run's tables; ``pool`` then builds each claim's interval from the
per-run estimates: their mean with a Student t half-width over runs (R - 1 degrees of
freedom; on the log scale for ratios), combined in root-sum-square with the runs' mean
within-run half-width (what every run shares, e.g. the same frames or trace, is not averaged
away by more runs), and the one-sided p of that t statistic against the threshold in the
claimed direction. A verdict needs the pooled interval on its side and every run's
finding verdict to agree; otherwise it is inconclusive (the reason says which runs differ).

Where the runs live: ``data/<device>/raw/runs/<finding>/run-<k>/`` (a persistent DVC output,
like the raw logs). A run counts once its ``done.json`` is written after its tables, with the
hash of what it measured (parameters, harness, environment); a run without it (cut by a kill)
or of other parameters is removed and measured again in a new process, so a resumed stage
pools the same runs as an uninterrupted one. The per-run rows are stored as the finding's
``claim_runs`` table, which the paper stage pools again with its recomputed first run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from study import paths

KEY_COLUMNS = ("claim", "form", "comparison", "model", "models", "representation", "processor")
RUN_COLUMNS = ["run", "claim", "form", "comparison", "model", "models", "representation", "processor", "effect",
               "ci_lo", "ci_hi", "p_value", "verdict", "n"]
LOG_SCALE = ("C2", "C3", "C5", "C10")   # ratios: pooled on the log scale


def runs_dir(ctx) -> Path:
    return paths.device_data(ctx.device_spec, Path(ctx.data_root)) / "raw" / "runs" / ctx.finding


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def spec(ctx, k: int, params: dict[str, Any]) -> dict[str, Any]:
    """What run ``k`` (1-based; run 1 is the stage's own) measures, and where."""
    return {"finding": ctx.finding, "device": ctx.device_spec, "profile": ctx.profile, "seed": int(ctx.seed) + k - 1,
            "harness": dataclasses.asdict(ctx.settings), "params": params, "run": k,
            "root": str(runs_dir(ctx) / f"run-{k}")}


def run_child(s: dict[str, Any], timeout: float = 3600) -> None:
    from study import lifetime

    root = Path(s["root"])
    with open(root / "child.log", "w") as log:
        r = subprocess.run([sys.executable, "-m", "study.replicate", json.dumps({**s, "parent": os.getpid()})],
                           stdout=log, stderr=subprocess.STDOUT, timeout=timeout, cwd=str(paths.ROOT),
                           **lifetime.popen_kwargs())
    if r.returncode != 0:
        tail = (root / "child.log").read_text(errors="replace")[-600:]
        raise RuntimeError(f"independent run {s['run']} of {s['finding']} failed (exit {r.returncode}): {tail}")


def _child_main(s: dict[str, Any]) -> None:
    """One independent run: the finding's measure and analyse on the narrowed parameters,
    into the run's folder (nothing resumed: the parent removed any earlier attempt)."""
    from study import lifetime

    lifetime.die_with_parent(s.get("parent"))
    from study import stages
    from study.common import context

    mod = importlib.import_module(stages.module_of(s["finding"]))
    ctx = context(s["finding"], {"device": s["device"], "profile": s["profile"], "seed": s["seed"],
                                 "harness": s["harness"], **s["params"]})
    ctx.data_root = Path(s["root"]) / "data"
    ctx.figures_root = Path(s["root"]) / "figures"
    ctx.write_fingerprint()
    data = mod.measure(ctx)
    mod.analyse(ctx, data)


def reader(folder: Path, device: str, finding: str) -> Callable[[str | None], pd.DataFrame | None]:
    """``read(table)`` over one run's tables (``None``: the main dataset)."""
    from study import datasets

    def read(table: str | None) -> pd.DataFrame | None:
        f = paths.dataset(device, finding, folder) if table is None else \
            paths.aux_dir(device, finding, folder) / f"{table}.parquet"
        return datasets.read_table(f) if f.is_file() else None
    return read


def rows_of_run(mod, read, params: dict[str, Any], seed: int) -> pd.DataFrame | None:
    """A run's claims rows, with the finding's current code where it recomputes them."""
    fn = getattr(mod, "claims_from_tables", None)
    if fn is not None:
        try:
            out = fn(read, params, seed)
        except Exception:  # noqa: BLE001 - tables the recompute cannot read: the run's own rows
            out = None
        if out is not None and len(out):
            return out
    return read("claims")


def measure_runs(ctx, params: dict[str, Any], n: int) -> tuple[list[pd.DataFrame], list[str]]:
    """Runs 2..n of the finding's deciding measurement, each a fresh process (complete runs of
    the same parameters kept); returns each run's claims rows (``run`` = its number) and the
    failures."""
    from study import stagelog

    mod = importlib.import_module(_module_of(ctx.finding))
    out, failed = [], []
    for k in range(2, n + 1):
        s = spec(ctx, k, params)
        root = Path(s["root"])
        h = _hash({kk: v for kk, v in s.items() if kk != "root"} | {"env": ctx.env})
        done = root / "done.json"
        if not (done.is_file() and json.loads(done.read_text()).get("hash") == h):
            shutil.rmtree(root, ignore_errors=True)         # a cut or stale run is measured again, never merged
            root.mkdir(parents=True)
            stagelog.write(f"{ctx.finding}: independent run {k} of {n} (fresh process)")
            t0 = time.time()
            try:
                run_child(s)
            except Exception as e:  # noqa: BLE001 - a failed run is left out of the pool, with the reason
                failed.append(f"run {k}: {str(e)[:300]}")
                continue
            done.write_text(json.dumps({"hash": h, "run": k, "seconds": round(time.time() - t0, 1)}))
        rows = rows_of_run(mod, reader(root / "data", ctx.device_spec, ctx.finding), s["params"], s["seed"])
        if rows is None or not len(rows):
            failed.append(f"run {k}: no claims rows")
            continue
        out.append(rows.assign(run=k))
    return out, failed


def _module_of(finding: str):
    from study import stages

    return stages.module_of(finding)


# --------------------------------------------------------------------------- pooling
def _keys(df: pd.DataFrame) -> list[str]:
    return [c for c in KEY_COLUMNS if c in df.columns]


def _key(r: pd.Series, cols: list[str]) -> tuple:
    def norm(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return str(v)
    return tuple(norm(r.get(c)) for c in cols)


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def run_table(first: pd.DataFrame, others: list[pd.DataFrame]) -> pd.DataFrame:
    """Every run's rows (run 1: the stage's own) in one table (``RUN_COLUMNS``)."""
    frames = [first.assign(run=1)] + list(others)
    rows = []
    for f in frames:
        for _, r in f.iterrows():
            rows.append({c: r.get(c, np.nan if c in ("effect", "ci_lo", "ci_hi", "p_value", "n") else "")
                         for c in RUN_COLUMNS})
    out = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for c in ("comparison", "model", "models", "representation", "processor", "form", "verdict"):
        out[c] = out[c].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return out


def pool(first: pd.DataFrame, runs: pd.DataFrame, n_planned: int, failed: list[str] | None = None,
         alpha: float = 0.05) -> pd.DataFrame:
    """The stage's claims rows (``first``, run 1) with each measured row's effect, interval
    and one-sided p built from the per-run estimates in ``runs`` (``run_table``; run 1's rows
    there are replaced by ``first``'s). Adds ``runs`` (estimates pooled) and
    ``run_effects``; keeps run 1's own interval as ``within_ci_lo`` / ``within_ci_hi``."""
    from scipy import stats as st

    from study import claims as C

    out = first.copy().reset_index(drop=True)
    for c in ("runs", "run_effects", "within_ci_lo", "within_ci_hi"):
        if c not in out:
            out[c] = np.nan if c != "run_effects" else ""
    out["runs"] = 1
    out["run_effects"] = out["run_effects"].astype(object)
    others = runs[runs["run"] != 1] if len(runs) else runs
    # a key column the stored runs never filled (rows of older code) does not split them
    cols = [c for c in _keys(out) if c == "claim" or not len(others) or (
        c in others.columns and others[c].map(lambda v: isinstance(v, str) and v != "").any())]
    by_key: dict[tuple, list[pd.Series]] = {}
    for _, r in others.iterrows():
        by_key.setdefault(_key(r, cols), []).append(r)
    note_failed = f"; {len(failed)} run(s) failed ({'; '.join(failed)[:300]})" if failed else ""
    for i, r in out.iterrows():
        e1 = _num(r.get("effect"))
        if np.isnan(e1) or str(r.get("verdict")) == "not measurable":
            continue
        mates = [m for m in by_key.get(_key(r, cols), []) if not np.isnan(_num(m.get("effect")))]
        ests = [e1] + [_num(m["effect"]) for m in mates]
        verdicts = [str(r.get("verdict"))] + [str(m.get("verdict")) for m in mates]
        out.at[i, "within_ci_lo"], out.at[i, "within_ci_hi"] = _num(r.get("ci_lo")), _num(r.get("ci_hi"))
        out.at[i, "run_effects"] = json.dumps([round(x, 6) for x in ests])
        out.at[i, "runs"] = len(ests)
        if len(ests) < 2:
            if n_planned > 1:
                out.at[i, "reason"] = (f"{r.get('reason', '')}; one independent run of {n_planned} planned measured "
                                       f"this row: its interval is within-run only{note_failed}")
            continue
        cid = str(r.get("claim"))
        c = C.CLAIMS.get(cid)
        direction = str(r.get("direction")) if str(r.get("direction")) in ("greater", "less") else \
            (c.direction if c is not None else "greater")
        null = _num(r.get("threshold")) if not np.isnan(_num(r.get("threshold"))) else \
            (c.null if c is not None and c.null is not None else np.nan)
        margin = c.margin if c is not None else 0.0
        log = cid in LOG_SCALE and all(x > 0 for x in ests) and (np.isnan(null) or null > 0)
        f = np.log if log else (lambda x: x)
        g = np.exp if log else (lambda x: x)
        y = np.array([f(x) for x in ests], dtype=float)
        R = len(y)
        m, s = float(y.mean()), float(y.std(ddof=1))
        tcrit = float(st.t.ppf(1 - alpha / 2, R - 1))
        between = tcrit * s / math.sqrt(R)
        # what every run shares (the same frames, clips, trace, operator mix: the data's sampling
        # error) is not averaged away by repeating runs: the runs' mean within-run half-width is
        # added in root-sum-square to the t half-width over runs
        halves = []
        for x in [r] + mates:
            lo_x, hi_x = _num(x.get("ci_lo")), _num(x.get("ci_hi"))
            if not (np.isnan(lo_x) or np.isnan(hi_x)) and (not log or (lo_x > 0 and hi_x > 0)):
                halves.append((f(hi_x) - f(lo_x)) / 2)
        within = float(np.mean(halves)) if halves else 0.0
        half = math.sqrt(between ** 2 + within ** 2)
        lo, hi = float(g(m - half)), float(g(m + half))
        if np.isnan(null) or direction not in ("greater", "less") or half == 0:
            p = np.nan if half else _num(r.get("p_value"))
        else:
            t = (m - f(null)) / (half / tcrit)
            p = float(st.t.sf(t, R - 1) if direction == "greater" else st.t.cdf(t, R - 1))
        side = C.ci_verdict(direction, lo, hi, null, margin) if not np.isnan(null) else "inconclusive"
        agree = len(set(verdicts)) == 1
        v = verdicts[0] if agree and side == verdicts[0] else ("inconclusive" if verdicts[0] in (
            "reproduced", "contradicted", "inconclusive") else verdicts[0])
        why = (f"pooled over {R} independent runs (fresh processes; run 1 the stage's own): per-run estimates "
               f"{', '.join(f'{x:.4g}' for x in ests)}; {int((1 - alpha) * 100)}% interval [{lo:.4g}, {hi:.4g}]: "
               f"Student t over runs ({R - 1} df{', log scale' if log else ''}) combined in root-sum-square with "
               f"the runs' mean within-run half-width; one-sided t-test p {p:.3g}; run 1's within-run interval "
               f"[{_num(r.get('ci_lo')):.4g}, {_num(r.get('ci_hi')):.4g}]")
        if not agree:
            why += f"; the runs' own verdicts differ ({', '.join(verdicts)}): inconclusive"
        elif side != verdicts[0] and verdicts[0] in ("reproduced", "contradicted"):
            why += f"; every run read it {verdicts[0]} but the pooled interval is not on that side: inconclusive"
        out.at[i, "effect"] = float(g(m))
        out.at[i, "ci_lo"], out.at[i, "ci_hi"], out.at[i, "p_value"] = lo, hi, p
        if "p_holm" in out:     # a finding's own adjustment of run 1's p no longer applies
            out.at[i, "p_holm"] = np.nan
        out.at[i, "verdict"] = v
        out.at[i, "reason"] = f"{r.get('reason', '')}; {why}{note_failed}"
    out["runs"] = out["runs"].astype(int)
    return out


def independent_runs(ctx, tables: dict[str, pd.DataFrame], params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Runs 2..``runs`` of the finding's deciding measurement (``params``: the section narrowed
    to it), then the claims pooled over every run; writes ``claims`` and ``claim_runs``."""
    n = int(ctx.params.get("runs", 1) or 1)
    first = tables["claims"]
    measured = first[(first["verdict"].astype(str) != "not measurable")
                     & pd.to_numeric(first["effect"], errors="coerce").notna()] if len(first) else first
    if measured.empty:
        n = 1       # nothing measured here (an absent processor, a phone where the finding is skipped)
    others, failed = measure_runs(ctx, params, n) if n > 1 else ([], [])
    runs = run_table(first, others)
    tables = dict(tables)
    tables["claims"] = pool(first, runs, n, failed)
    tables["claim_runs"] = runs
    ctx.write(tables["claims"], table="claims")
    ctx.write(runs, table="claim_runs")
    return tables


def run_finding(ctx, measure, analyse, plot, replicate_params) -> dict[str, Any]:
    """A finding's run with independent runs: measure, analyse, repeat what decides its claims
    (``replicate_params`` narrows its section) in fresh processes, plot, fingerprint; with the
    PNG file each figure was saved to (what the notebook shows)."""
    data = measure(ctx)
    tables = independent_runs(ctx, analyse(ctx, data), replicate_params(ctx.params))
    figs = plot(ctx, tables)
    ctx.write_fingerprint()
    folder = paths.figures_dir(ctx.device_spec, ctx.finding, ctx.figures_root)
    return {"data": data, "tables": tables, "figures": figs,
            "figure_files": {name: folder / f"{name}.png" for name in figs}}


def repool(rows: pd.DataFrame, stored_runs: pd.DataFrame | None) -> pd.DataFrame:
    """The paper stage: claims rows recomputed from run 1's tables, pooled again with the other
    runs' stored rows (``claim_runs``); unchanged where the folder has no runs table."""
    if stored_runs is None or "run" not in stored_runs or not len(stored_runs):
        return rows
    n = int(stored_runs["run"].max())
    return pool(rows, stored_runs, n)


if __name__ == "__main__":
    _child_main(json.loads(sys.argv[1]))
