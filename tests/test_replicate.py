"""Independent runs (study.replicate): the pooled interval over runs, the verdict rules, the
count the claims table and the metrics report, and a real kill of a stage mid independent run
(the cut run is measured again in a new process, complete runs are kept)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from study import claims as C
from study import replicate as R

ROOT = Path(__file__).resolve().parent.parent
needs_models = pytest.mark.skipif(not (ROOT / "data" / "models" / "manifest.json").exists(),
                                  reason="data/models not built")


def rows(effect, lo, hi, verdict, claim="C8", p=1e-3, **extra):
    return pd.DataFrame([dict(claim=claim, form="paper", text="t", statistic="s", effect=effect, ci_lo=lo, ci_hi=hi,
                              p_value=p, n=10, paper_value="x", verdict=verdict, reason="r", **extra)])


def runs_of(first, *others):
    return R.run_table(first, [o.assign(run=k) for k, o in enumerate(others, start=2)])


def test_pooled_interval_is_t_over_runs_with_the_within_run_half_width():
    first = rows(0.50, 0.45, 0.55, "reproduced")
    others = [rows(0.56, 0.51, 0.61, "reproduced"), rows(0.53, 0.48, 0.58, "reproduced")]
    out = R.pool(first, runs_of(first, *others), 3).iloc[0]
    ests = np.array([0.50, 0.56, 0.53])
    between = st.t.ppf(0.975, 2) * ests.std(ddof=1) / np.sqrt(3)
    half = np.hypot(between, 0.05)
    assert out["effect"] == pytest.approx(ests.mean())
    assert (out["ci_lo"], out["ci_hi"]) == pytest.approx((ests.mean() - half, ests.mean() + half))
    assert out["runs"] == 3 and json.loads(out["run_effects"]) == pytest.approx(list(ests))
    assert out["within_ci_lo"] == 0.45 and out["verdict"] == "reproduced"
    t = (ests.mean() - 0.2) / (half / st.t.ppf(0.975, 2))
    assert out["p_value"] == pytest.approx(st.t.sf(t, 2))
    assert "pooled over 3 independent runs" in out["reason"]


def test_ratios_pool_on_the_log_scale():
    first = rows(2.0, 1.9, 2.1, "reproduced", claim="C3")
    out = R.pool(first, runs_of(first, rows(2.2, 2.1, 2.3, "reproduced", claim="C3"),
                                rows(1.8, 1.7, 1.9, "reproduced", claim="C3")), 3).iloc[0]
    assert out["effect"] == pytest.approx(np.exp(np.mean(np.log([2.0, 2.2, 1.8]))))
    assert "log scale" in out["reason"] and out["ci_lo"] > 1.0


def test_runs_that_disagree_or_an_interval_across_the_threshold_are_inconclusive():
    first = rows(0.50, 0.45, 0.55, "reproduced")
    out = R.pool(first, runs_of(first, rows(0.1, 0.05, 0.15, "contradicted"),
                                rows(0.5, 0.45, 0.55, "reproduced")), 3).iloc[0]
    assert out["verdict"] == "inconclusive" and "verdicts differ" in out["reason"]
    # every run reads it reproduced, but they scatter: the pooled interval crosses 0.2
    first = rows(0.25, 0.22, 0.28, "reproduced")
    out = R.pool(first, runs_of(first, rows(0.60, 0.55, 0.65, "reproduced"),
                                rows(0.24, 0.21, 0.27, "reproduced")), 3).iloc[0]
    assert out["ci_lo"] < 0.2 and out["verdict"] == "inconclusive"
    v = C.evaluate({"frame_reuse": pd.DataFrame([out])})
    assert v[v.claim == "C8"].iloc[0]["verdict"] == "inconclusive"


def test_one_run_keeps_its_interval_and_says_so():
    first = rows(0.5, 0.45, 0.55, "reproduced")
    out = R.pool(first, runs_of(first), 3, failed=["run 2: boom"]).iloc[0]
    assert out["runs"] == 1 and (out["ci_lo"], out["ci_hi"]) == (0.45, 0.55)
    assert "one independent run of 3 planned" in out["reason"] and "run 2: boom" in out["reason"]
    nm = rows(np.nan, np.nan, np.nan, "not measurable")
    assert R.pool(nm, runs_of(nm, nm), 3).iloc[0]["verdict"] == "not measurable"


def test_rows_are_matched_by_their_keys():
    first = pd.concat([rows(0.5, 0.45, 0.55, "reproduced", model="a"), rows(0.9, 0.85, 0.95, "reproduced",
                                                                            model="b")], ignore_index=True)
    other = rows(0.52, 0.47, 0.57, "reproduced", model="a")           # a narrowed run: model a only
    out = R.pool(first, runs_of(first, other), 2).set_index("model")
    assert out.loc["a", "runs"] == 2 and out.loc["b", "runs"] == 1
    # a mean over models (mulayer's C4) pools only runs that measured the same models
    c4 = rows(0.1, 0.05, 0.15, "reproduced", claim="C4", models="a,b,c")
    assert R.pool(c4, runs_of(c4, rows(0.1, 0.05, 0.15, "reproduced", claim="C4", models="a")), 2
                  ).iloc[0]["runs"] == 1


def test_claims_and_metrics_report_the_runs_of_each_claim():
    first = rows(0.5, 0.45, 0.55, "reproduced")
    pooled = R.pool(first, runs_of(first, rows(0.52, 0.47, 0.57, "reproduced"),
                                   rows(0.51, 0.46, 0.56, "reproduced")), 3)
    c1 = rows(0.6, 0.55, 0.65, "reproduced", claim="C1", p=1e-6)
    prof = rows(10.0, 8.0, 12.0, "reproduced", claim="C7", p=1e-4).assign(runs=5)
    long = C.evaluate({"frame_reuse": pooled, "operator_support": c1, "profiling_error": prof}).assign(
        device_label="here")
    assert long.set_index("claim").loc["C8", "runs"] == 3 and long.set_index("claim").loc["C1", "runs"] == 1
    m = C.metrics(long)["here"]
    assert m["provenance"]["independent_runs"] == 3          # C1, a count, does not vary between runs
    assert m["provenance"]["runs_per_claim"] == {"C7": 5, "C8": 3}
    assert m["claims"]["C8"]["runs"] == 3


def test_repool_in_the_paper_stage():
    first = rows(0.5, 0.45, 0.55, "reproduced")
    stored = runs_of(rows(0.4, 0.35, 0.45, "reproduced"), rows(0.52, 0.47, 0.57, "reproduced"),
                     rows(0.51, 0.46, 0.56, "reproduced"))
    out = R.repool(first, stored).iloc[0]
    assert out["runs"] == 3 and json.loads(out["run_effects"])[0] == 0.5    # the recomputed first run
    assert R.repool(first, None).equals(first)
    # runs stored by older code without a key column the current code writes still pool
    now = rows(0.5, 0.45, 0.55, "reproduced", models="m")
    old = stored.drop(columns=["models"])
    assert R.repool(now, old).iloc[0]["runs"] == 3


# --------------------------------------------------------------------------- a real kill mid independent run
KILL_DRIVER = r"""
import json, sys
from pathlib import Path
from study import frame_reuse as F, replicate
from study.common import context
root = Path(sys.argv[1])
p = {k: f.default for k, f in F.PARAMS.items()}
p.update(models=["mobilenet_v2"], claim_models=["mobilenet_v2"], clips=["carphone"], frames=4,
         frame_thresholds=[4.0], region_thresholds=[8.0], warmup_frames=1, memory_frames=2, n_boot=200,
         processors=["cpu"], runs=3)
ctx = context("frame_reuse", {"device": "local", "profile": "quick", "seed": 3,
              "harness": dict(warmup=1, min_samples=4, max_samples=4, max_seconds=1000.0, rel_ci_halfwidth=0.5,
                              block_size=2, cooldown_s=0.0, below_floors=True), **p})
ctx.data_root, ctx.figures_root = root / "data", root / "figures"
data = F.measure(ctx)
tables = replicate.independent_runs(ctx, F.analyse(ctx, data), F.replicate_params(ctx.params))
c = tables["claims"]
print(json.dumps({"runs": int(c.loc[c.claim == "C8", "runs"].iloc[0]),
                  "run_ids": sorted(set(tables["claim_runs"]["run"].astype(int)))}))
"""


@needs_models
def test_a_stage_killed_mid_independent_run_measures_that_run_again(tmp_path):
    runs = tmp_path / "data" / "local" / "raw" / "runs" / "frame_reuse"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_DRIVER, str(tmp_path)], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    try:   # kill the stage once run 2 is complete and run 3's process has started
        while not ((runs / "run-2" / "done.json").is_file() and (runs / "run-3" / "child.log").is_file()):
            assert proc.poll() is None, "the stage ended before run 3 started"
            assert time.time() - t0 < 600
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert not (runs / "run-3" / "done.json").exists()
    done2 = (runs / "run-2" / "done.json").read_text()
    deadline = time.time() + 30       # the child dies with its parent
    while time.time() < deadline and subprocess.run(["pgrep", "-f", f"study.replicate.*{tmp_path}"],
                                                    capture_output=True).returncode == 0:
        time.sleep(0.1)
    r = subprocess.run([sys.executable, "-c", KILL_DRIVER, str(tmp_path)], cwd=str(ROOT), env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res == {"runs": 3, "run_ids": [1, 2, 3]}
    assert (runs / "run-2" / "done.json").read_text() == done2          # the complete run was kept
    assert json.loads((runs / "run-3" / "done.json").read_text())["run"] == 3


def test_mulayer_independent_runs_measure_every_model_so_C4_pools_all_runs():
    # C4 is a mean over the stage's models: a run of the primary model alone would leave it one run
    from study import mulayer_overhead as M
    p = {"models": ["fast_style_transfer", "mobilenet_v2", "resnet50"], "runs": 3}
    assert M.replicate_params(p)["models"] == p["models"]
