"""The paper's claims (C1..C10), this study's own claim C11, and their evaluation on each device's data.

The registry (``CLAIMS``) is the one place where each claim's test is declared in advance:
the finding (stage) that tests it, the paper's text, value and setting (comparison only,
never an output of ours), the statistic and its claimed direction, the threshold
(``null``) with a one-line justification, the margin that a "contradicted" verdict must
clear (equivalence / non-inferiority) with its justification, the test that gives its
one-sided p-value, the primary model, the processors its paper form needs (``needs``),
what the host may measure instead (``host_form``) and the thresholds the sensitivity
figure sweeps. ``docs/claims.md`` is generated from it (``python -m study.claims docs``;
a test checks that the committed file is current).

Every finding stage writes ``data/<device>/<finding>/claims.parquet`` (columns
``CLAIM_COLUMNS`` plus ``form``: ``paper``, ``host`` or ``context``); the paper stage
recomputes those rows from the finding's tables with the current code where the finding
exposes ``claims_from_tables``. ``evaluate`` then decides one device:

* the paper form of a claim is decided only by ``form == "paper"`` rows (a table without a
  ``form`` column: every row is the paper form) and only where the device has the
  processors the registry names (``needs``); otherwise it is ``not measurable`` with the
  reason. Host-form rows are evaluated apart (``evaluate_host``: their own rows and Holm
  family) and never decide the paper form; ``context`` rows only add to the reason;
* a finding whose stage produced no data, or no row for a claim: ``not measurable``;
* several rows of one form: the ``primary`` row, else the measurable rows if they agree,
  else ``inconclusive``;
* Holm-Bonferroni over every claim with a decided (measured) paper-form verdict on the
  device, each with its one-sided p in the claimed direction (a missing p counts as 1):
  ``reproduced`` needs the finding's verdict, its CI on the claimed side and
  ``p_holm < alpha``; ``contradicted`` needs the CI beyond the registry's margin on the
  other side (below ``null - margin`` for a "greater" claim); anything else is
  ``inconclusive``, and the reason says why;
* C9 is the conjunction of the C9 rows the findings write (mulayer_overhead: some parallel
  configuration clearly slower than the best single processor; profiling_error: no single
  strategy best in every context), with C3 / C7 standing in where a finding wrote none; its
  p is the largest of its components' (intersection-union test); it is contradicted only
  when one strategy wins everywhere.

Each row carries ``runs``: the independent runs pooled into its interval (``study.replicate``;
1 where a folder holds one run). ``evaluate_devices`` does this per device; ``by_device``
pivots to one column per device; ``metrics`` gives the numbers for ``dvc metrics`` with each
device's provenance (profile, independent runs: the fewest pooled into a measured claim, and
per claim; device class); ``sensitivity`` gives each verdict across its thresholds.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from study import stats

VERDICTS = ("reproduced", "contradicted", "inconclusive", "not measurable")
FORMS = ("paper", "host", "context")
CLAIM_COLUMNS = ["claim", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "n", "paper_value", "verdict",
                 "reason"]
ALPHA = 0.05
PROVISIONAL = "provisional: below the methods floors"


@dataclass(frozen=True)
class Claim:
    id: str
    finding: str              # the stage whose claims table holds its rows ("paper": evaluated here)
    text: str                 # the paper's claim
    paper_value: str          # the paper's value as stated, for comparison only
    paper_setting: str        # the paper's device / setting of that value
    statistic: str            # the measurable form: what is estimated
    direction: str            # "greater" | "less" (the claim predicts effect above / below null) | "all hold"
    null: float | None = None  # the threshold the claimed side is measured from
    # the paper's values on the statistic's scale, label -> value: reference marks in figures only
    reference: dict[str, float] = field(default_factory=dict)
    null_why: str = ""        # why this threshold (one line)
    margin: float = 0.0       # "contradicted" needs the CI beyond null -/+ margin on the other side
    margin_why: str = ""
    test: str = ""            # the test of the one-sided p-value and how dependence is handled
    primary_model: str = ""   # the model whose row decides (where a finding measures several)
    # processors the paper form needs: each entry is one processor kind, "a|b" = either
    needs: tuple[str, ...] = ()
    needs_text: str = ""      # the paper form's requirement in words
    host_form: str = ""       # what a device without them measures instead (labelled, never deciding)
    sensitivity: tuple[float, ...] = ()   # thresholds of the sensitivity figure

    @property
    def hypothesis(self) -> str:
        if self.direction == "all hold":
            return "every component claim reproduced"
        sign = ">" if self.direction == "greater" else "<"
        return f"effect {sign} {self.null:g}" if self.null is not None else f"effect {sign} the finding's threshold"

    @property
    def contradiction(self) -> str:
        if self.direction == "all hold" or self.null is None:
            return "see the components"
        if self.direction == "greater":
            return f"95% CI below {self.null - self.margin:g}"
        return f"95% CI above {self.null + self.margin:g}"


CLAIMS: dict[str, Claim] = {c.id: c for c in [
    Claim("C1", "operator_support",
          "A large share of a model's operators is unsupported in CPU+GPU parallel inference and falls back to one "
          "processor.",
          "about 48% of ResNet-50's operators", "Xiaomi 9, CPU+GPU parallel inference",
          "share of ResNet-50's runtime operators that a channel-wise CPU+GPU split (muLayer's rule: conv / fully "
          "connected output channels) cannot split",
          "greater", 0.25, {"paper 48%": 0.48},
          null_why="'large' = at least one operator in four: with equal operator times an ideal two-processor split "
                   "of the rest then reaches at most 2/(1+0.25) = 1.6x, a fifth below its 2x",
          margin=0.05, margin_why="a share within 5 points of the bar is too close to call 'small'",
          test="exact one-sided binomial test of the unsplittable count against the threshold share, Clopper-Pearson "
               "95% CI (operators as draws from the model family's operator mix)",
          primary_model="resnet50", needs=(),
          needs_text="a co-execution framework's own split rule applied to the model's runtime graph (or an "
                     "accelerator with measured delegation); the rule does not depend on the processor",
          host_form="none needed: the split rule is the paper's form on any device", sensitivity=(0.1, 0.2, 0.25, 0.3,
                                                                                                   0.4, 0.5)),
    Claim("C2", "mulayer_overhead",
          "Unsupported operators and processor fallbacks keep existing parallel strategies from their potential.",
          "qualitative", "several frameworks",
          "measured latency of channel-wise co-execution at the split its profile predicts (r*) over the ideal bound "
          "1/(1/t_a + 1/t_b) of the two processors' measured single latencies (the Amdahl bound of the unsplittable "
          "operators, from operator_support, as context)",
          "greater", 1.10,
          null_why="'kept from its potential' = at least 10% slower than an overhead-free split; smaller gaps are "
                   "within the run-to-run drift measured by the rigor stage",
          margin=0.05, margin_why="within 5% of the ideal bound the strategy reaches its potential: contradicted",
          test="one-sided percentile-bootstrap p (10,000 resamples of each configuration's samples) of the ratio of "
               "medians against the threshold",
          primary_model="fast_style_transfer", needs=("cpu", "gpu"),
          needs_text="measured co-execution on two different processors (CPU + GPU)",
          host_form="two disjoint CPU core groups, against the ideal bound of the two groups",
          sensitivity=(1.0, 1.05, 1.1, 1.2, 1.3, 1.5)),
    Claim("C3", "mulayer_overhead",
          "Channel-wise CPU+GPU co-execution (muLayer) can be slower than the GPU alone.",
          "1.9x to 3.1x slower", "Fast Style Transfer, muLayer-style channel-wise co-execution vs GPU alone",
          "latency ratio: channel-wise co-execution at the split muLayer's profile predicts (r*) / the GPU alone",
          "greater", 1.0, {"paper 1.9x": 1.9, "paper 3.1x": 3.1},
          null_why="'slower than the GPU alone' is a ratio above 1, the claim's own wording",
          margin=0.10, margin_why="co-execution at least 10% faster than the GPU alone contradicts 'can be slower'",
          test="one-sided percentile-bootstrap p (10,000 resamples) of the ratio of medians against 1",
          primary_model="fast_style_transfer", needs=("cpu", "gpu"),
          needs_text="CPU + GPU, Fast Style Transfer, at the split muLayer would choose",
          host_form="two disjoint core groups at r* vs the model alone on all their cores (the same cores)",
          sensitivity=(0.8, 0.9, 1.0, 1.1, 1.2, 1.5)),
    Claim("C4", "mulayer_overhead",
          "Granularity matters: coarse (subgraph) parallelism leaves processors idle; fine (intra-operator) "
          "parallelism adds suspensions and transfers.",
          "qualitative", "",
          "(i) share of wall time with neither processor computing, operator level (r*) minus frame level; (ii) idle "
          "share of the helper processor at branch level above the idle threshold",
          "greater", 0.0,
          null_why="(i) any positive difference is the claimed extra overhead of fine granularity; (ii) 'idle' = "
                   "idle more than half of the inference",
          margin=0.02, margin_why="(i) a difference below -2 points of wall time shows fine granularity no costlier",
          test="intersection-union: the larger of the two parts' one-sided bootstrap p (10,000 resamples)",
          primary_model="all models (mean)", needs=("cpu", "gpu"),
          needs_text="the three granularities on two different processors",
          host_form="the same on two disjoint CPU core groups", sensitivity=(-0.05, 0.0, 0.02, 0.05, 0.1)),
    Claim("C5", "contention",
          "Competing processes inflate latency far more on the CPU than on the GPU or DSP.",
          "3 competitors: CPU 10.2x, GPU 2.1x, DSP 1.8x", "3 competing processes",
          "latency inflation under 3 competitors on the CPU divided by that on the GPU (or DSP)",
          "greater", 1.0, {"paper 10.2x/2.1x": 10.2 / 2.1},
          null_why="'more on the CPU' is a ratio of slowdowns above 1 ('far more' is read off the sensitivity figure)",
          margin=0.10, margin_why="a CPU slowdown at least 10% below the GPU's contradicts the claim",
          test="one-sided bootstrap p (samples resampled within each condition and visit)",
          primary_model="geometric mean over models", needs=("cpu", "gpu|npu"),
          needs_text="inference on the CPU and on a GPU (or DSP / NPU) under the same competitors",
          host_form="none: a CPU alone cannot show 'far more on the CPU than on the GPU'",
          sensitivity=(1.0, 1.5, 2.0, 3.0, 5.0)),
    Claim("C6", "contention",
          "Dedicating processors to inference degrades co-running apps.",
          "over 90% frame drops", "VGG-16 on GPU (MACE, buffer type) beside video playback",
          "increase (percentage points) of the co-running app's missed-frame share when inference occupies the "
          "processor, over a materiality threshold",
          "greater", 5.0, {"paper >90%": 90.0},
          null_why="5 points of extra missed frames (1 frame in 20) is the smallest degradation a viewer notices "
                   "as repeated stutter",
          margin=2.0, margin_why="an increase below 3 points (5 - 2) is not a degradation",
          test="one-sided moving-block bootstrap p (1-s blocks of frames within each run)",
          primary_model="the largest co-running model", needs=("gpu",),
          needs_text="GPU inference beside a frame-paced app that draws on the same GPU",
          host_form="CPU inference beside the app (labelled)", sensitivity=(1.0, 2.0, 5.0, 10.0, 20.0)),
    Claim("C7", "profiling_error",
          "Offline latency profiles diverge from runtime latency in dynamic conditions; runtime profiling is needed.",
          "qualitative", "",
          "paired difference of prediction error on the same trace: offline profile minus runtime profile "
          "(MAPE, percentage points)",
          "greater", 0.0,
          null_why="any error reduction by runtime profiling on the same trace is the claimed direction",
          margin=1.0, margin_why="runtime profiling worse by more than 1 point of MAPE contradicts 'needed'",
          test="one-sided block-bootstrap p (10,000 resamples of whole 3-s blocks of the trace: blocks, not the "
               "thousands of correlated predictions, are the units) of the mean difference; block-bootstrap CI",
          primary_model="mobilenet_v2", needs=(),
          needs_text="a dynamic scenario on any processors the device has (not processor-specific)",
          host_form="none needed", sensitivity=(-2.0, 0.0, 2.0, 5.0, 10.0)),
    Claim("C8", "frame_reuse",
          "Reusing data across frames (frame and layer level) lowers latency at an acceptable accuracy cost.",
          "qualitative", "",
          "latency reduction 1 - mean latency(reuse) / mean latency(full computation) on the same frames, with "
          "fidelity against full computation above its floor",
          "greater", 0.2,
          null_why="a reuse scheme worth its complexity must save at least a fifth of the per-frame time",
          margin=0.05, margin_why="reductions below 15% (or fidelity below the floor) everywhere contradict it",
          test="one-sided paired circular block bootstrap p over frames within each clip (10,000 resamples), "
               "Bonferroni over the reuse points",
          primary_model="face_detection_short_range, selfie_segmentation (trained)", needs=(),
          needs_text="frame and region reuse on real video with trained models, on any processor",
          host_form="none needed", sensitivity=(0.05, 0.1, 0.2, 0.3, 0.5)),
    Claim("C9", "paper",
          "Parallel inference across processors is not always beneficial; no single strategy fits every context.",
          "qualitative", "",
          "conjunction: (a) some measured parallel configuration is clearly slower than the best single processor; "
          "(b) no single strategy is best in every context (profiling_error: the best single candidate vs each "
          "context's fastest)",
          "all hold",
          test="intersection-union: the larger of the components' one-sided p-values",
          needs=("cpu", "gpu|npu"), needs_text="several contexts with at least two different processors",
          host_form="two CPU core groups (and engines) as the 'processors' (labelled)"),
    Claim("C10", "cross_level",
          "Existing parallel strategies optimize only the backend (placement, fusion, parallelism) while models are "
          "over-parameterized; choosing frontend compression (quantization, pruning, low-rank) together with backend "
          "placement does better than either alone.",
          "qualitative", "stated as an opportunity; muLayer's processor-friendly quantization is one instance",
          "latency ratio: best configuration that changes both the frontend (a compressed variant) and the placement "
          "(another processor or engine than the fixed frontend backend) / best single-level one (backend-only or "
          "frontend-only), at matched accuracy",
          "less", 0.95,
          null_why="'does better' = at least 5% faster than the best single-level choice, above run-to-run drift",
          margin=0.05, margin_why="a joint choice no faster than the best single-level one (ratio above 1) "
                                  "contradicts it",
          test="one-sided percentile-bootstrap p (10,000 resamples of every candidate, both selections repeated in "
               "each resample)",
          primary_model="mobilenet_v2", needs=("cpu", "gpu|npu"),
          needs_text="compressed variants placed on at least two different processors",
          host_form="engines on one processor as the 'placements' (labelled)", sensitivity=(0.8, 0.9, 0.95, 1.0)),
    Claim("C11", "adaptive_runtime",
          "Beyond the paper (this study's own claim): an adaptive runtime that estimates latency from its own "
          "observations, explores at a bounded cost and re-plans when contention changes is never more than 2% "
          "worse in p95 latency than the best static candidate in hindsight in any stationary condition, and is "
          "better than it under dynamic contention.",
          "not in the paper: this study's own claim", "",
          "largest excess, over the conditions, of p95(adaptive) / p95(best static candidate in hindsight) over its "
          "bar: 1.02 in each stationary condition, 1.00 under the dynamic scenario (end-to-end latency, the "
          "runtime's decision time included)",
          "less", 0.0,
          null_why="below 0 = every condition under its bar: within 2% of the hindsight best when nothing changes "
                   "(the price of exploring), strictly better under dynamic contention",
          margin=0.02, margin_why="an excess of more than 2 points beyond a bar somewhere contradicts it",
          test="one-sided stratified block-bootstrap p (10,000 resamples of 1-s blocks within each independent run, "
               "every policy with the same blocks, the hindsight best chosen again in each resample): "
               "intersection-union over the conditions through the maximum",
          primary_model="mobilenet_v2", needs=(),
          needs_text="several candidates (processors, core groups or engines) and competitor processes; any device "
                     "that runs Python",
          host_form="none needed: the claim is about the runtime's choice among whatever candidates the device has",
          sensitivity=(-0.02, -0.01, 0.0, 0.01, 0.02)),
]}

# C9's components, and what stands in where no finding writes a C9 row
C9_COMPONENTS = {"C3": "parallel co-execution is slower than one processor alone: not always beneficial "
                       "(used only where mulayer_overhead writes no C9 row)",
                 "C7": "offline profiles mislead at run time, so the best choice depends on conditions "
                       "(used only where no finding writes a 'no single strategy' C9 row)"}
# the finding whose C9 row is the "no single strategy" component (its contradiction contradicts C9)
C9_STRATEGY_FINDING = "profiling_error"

OUT_COLUMNS = ["claim", "finding", "form", "paper_claim", "text", "statistic", "hypothesis", "null", "effect", "ci_lo",
               "ci_hi", "p_value", "p_holm", "n", "paper_value", "paper_setting", "verdict", "finding_verdict",
               "reason", "rows", "device_class", "profile", "runs"]
NUMERIC_COLUMNS = ("null", "effect", "ci_lo", "ci_hi", "p_value", "p_holm", "n", "rows", "runs")


def findings() -> list[str]:
    """Stages that hold claims, in claim order (``paper`` excluded)."""
    out = []
    for c in CLAIMS.values():
        if c.finding != "paper" and c.finding not in out:
            out.append(c.finding)
    return out


def registry_frame() -> pd.DataFrame:
    """The registry as a table (for the report, the notebook and docs/claims.md)."""
    return pd.DataFrame([dict(claim=c.id, finding=c.finding, paper_claim=c.text, paper_value=c.paper_value,
                              paper_setting=c.paper_setting, statistic=c.statistic, hypothesis=c.hypothesis,
                              direction=c.direction, null=c.null, null_why=c.null_why, margin=c.margin,
                              margin_why=c.margin_why, contradiction=c.contradiction, test=c.test,
                              primary_model=c.primary_model, needs=" + ".join(c.needs) or "any",
                              needs_text=c.needs_text, host_form=c.host_form,
                              sensitivity=", ".join(f"{x:g}" for x in c.sensitivity))
                         for c in CLAIMS.values()])


# --------------------------------------------------------------------------- devices
def device_info(fp: Mapping[str, Any] | None, runs: int | None = None) -> dict[str, Any]:
    """What ``evaluate`` needs to know of a device, from one of its fingerprints: the
    processors usable there, its class in words, the profile and the independent runs."""
    fp = dict(fp or {})
    procs = {str(p.get("name")) for p in fp.get("processors", []) or []
             if isinstance(p, Mapping) and _is_true(p.get("available"))}
    absent = {str(p.get("name")): str(p.get("reason") or "") for p in fp.get("processors", []) or []
              if isinstance(p, Mapping) and not _is_true(p.get("available"))}
    profile = str(fp.get("profile") or "")
    return dict(processors=procs if fp.get("processors") else None, absent=absent, device_class=device_class(fp),
                profile=profile, runs=int(runs) if runs else 1,
                provisional=profile == "quick" or _is_true((fp.get("harness") or {}).get("below_floors")))


def device_class(fp: Mapping[str, Any] | None) -> str:
    """The device in words, so that no host result reads as a phone's."""
    fp = dict(fp or {})
    if not fp:
        return "unknown device"
    n = fp.get("logical_cpus")
    cores = f"{n}-core " if n else ""
    if str(fp.get("kind", "")) == "adb" or str(fp.get("device", "")).startswith("adb:"):
        return "phone"
    gpu = any(isinstance(p, Mapping) and p.get("name") == "gpu" and _is_true(p.get("available"))
              for p in fp.get("processors", []) or [])
    smi = fp.get("nvidia_smi") or {}
    nvidia = isinstance(smi, Mapping) and any(str(v) for k, v in smi.items() if k in ("name", "gpus", "driver"))
    if gpu:
        return (f"{cores}desktop/server CPU + discrete {'NVIDIA ' if nvidia else ''}GPU (host), not a phone SoC")
    return f"{cores}host, CPU only, not a phone SoC"


def _missing_processors(c: Claim, procs: set[str] | None) -> list[str]:
    if procs is None:
        return []
    return [need for need in c.needs if not any(alt in procs for alt in need.split("|"))]


# --------------------------------------------------------------------------- helpers
def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f


def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def _is_true(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    try:
        return bool(v) and not (isinstance(v, float) and math.isnan(v))
    except (TypeError, ValueError):
        return False


def _fmt(v: float) -> str:
    return "NaN" if v is None or np.isnan(v) else f"{v:.3g}"


def _base(c: Claim, form: str = "paper") -> dict[str, Any]:
    return dict(claim=c.id, finding=c.finding, form=form, paper_claim=c.text, text=c.statistic, statistic=c.statistic,
                hypothesis=c.hypothesis, null=np.nan if c.null is None else c.null, effect=np.nan, ci_lo=np.nan,
                ci_hi=np.nan, p_value=np.nan, p_holm=np.nan, n=0, paper_value=c.paper_value,
                paper_setting=c.paper_setting, finding_verdict="", rows=0, runs=1, _direction=c.direction,
                _margin=c.margin)


def _forms(rows: pd.DataFrame) -> pd.Series:
    """Each row's form; rows of a table without one (older code) are the paper form."""
    if "form" not in rows.columns:
        return pd.Series("paper", index=rows.index)
    return rows["form"].map(lambda v: v if isinstance(v, str) and v in FORMS else "paper")


def _select(c: Claim, rows: pd.DataFrame) -> tuple[pd.Series, str]:
    """The row that stands for claim ``c``, and a note on how it was chosen."""
    if "primary" in rows.columns:
        prim = rows[rows["primary"].map(_is_true)]
        if len(prim) >= 1:
            return prim.iloc[0], ("" if len(rows) == 1 else f"primary row of {len(rows)}")
    if len(rows) == 1:
        return rows.iloc[0], ""
    meas = rows[rows["verdict"].astype(str) != "not measurable"]
    if meas.empty:
        return rows.iloc[0], f"all {len(rows)} rows not measurable"
    kinds = meas["verdict"].astype(str).value_counts()
    if len(kinds) == 1:
        return meas.iloc[0], f"{len(meas)} measurable rows agree"
    r = meas.iloc[0].copy()
    r["verdict"] = "inconclusive"
    r["reason"] = (f"{len(meas)} measurable rows of the finding disagree ("
                   + ", ".join(f"{n} {v}" for v, n in kinds.items()) + "; none is marked primary); first row: "
                   + _text(meas.iloc[0].get("reason")))
    return r, "rows disagree"


def _from_row(c: Claim, r: pd.Series, note: str, nrows: int, form: str = "paper") -> dict[str, Any]:
    out = _base(c, form)
    v = _text(r.get("verdict")).strip()
    reason = _text(r.get("reason")).strip()
    if v not in VERDICTS:
        reason = f"the finding wrote no valid verdict ({v!r}); " + reason
        v = "inconclusive"
    out.update(text=_text(r.get("text")) or c.statistic, statistic=_text(r.get("statistic")) or c.statistic,
               effect=_num(r.get("effect")), ci_lo=_num(r.get("ci_lo")), ci_hi=_num(r.get("ci_hi")),
               p_value=_num(r.get("p_value")), n=int(_num(r.get("n"))) if not np.isnan(_num(r.get("n"))) else 0,
               verdict=v, finding_verdict=v, rows=nrows, runs=_runs_of(r.get("runs")),
               reason=(reason or "(the finding gave no reason)") + (f" [{note}]" if note else ""))
    # the finding's own threshold and direction, where its table states them, replace the registry's
    direction = _text(r.get("direction")) if _text(r.get("direction")) in ("greater", "less") else c.direction
    out["_direction"] = direction
    for col in ("threshold", "null"):
        t = _num(r.get(col))
        if not np.isnan(t):
            out["null"] = t
            break
    m = _num(r.get("margin"))
    if not np.isnan(m):
        out["_margin"] = m
    if direction in ("greater", "less") and not np.isnan(out["null"]):
        out["hypothesis"] = f"effect {'>' if direction == 'greater' else '<'} {out['null']:g}"
    if v == "not measurable":
        out.update(effect=np.nan, ci_lo=np.nan, ci_hi=np.nan, p_value=np.nan)
    return out


def ci_verdict(direction: str, lo: float, hi: float, null: float, margin: float = 0.0) -> str:
    """The interval's side alone: ``reproduced`` on the claimed side of ``null``,
    ``contradicted`` beyond ``null`` -/+ ``margin`` on the other side, else ``inconclusive``."""
    if any(np.isnan(x) for x in (lo, hi, null)):
        return "inconclusive"
    if direction == "greater":
        return "reproduced" if lo > null else ("contradicted" if hi < null - margin else "inconclusive")
    return "reproduced" if hi < null else ("contradicted" if lo > null + margin else "inconclusive")


def _decide(out: dict[str, Any], alpha: float, k: int) -> None:
    """The final verdict of a measured row from the finding's verdict, its CI against the
    threshold and margin, and its Holm-adjusted p (``k``: claims in the family)."""
    v, p, ph = out["finding_verdict"] or out["verdict"], out["p_value"], out["p_holm"]
    lo, hi, null, d, m = out["ci_lo"], out["ci_hi"], out["null"], out["_direction"], out["_margin"]
    has_ci = not (np.isnan(lo) or np.isnan(hi) or np.isnan(null)) and d in ("greater", "less")
    side = ci_verdict(d, lo, hi, null, m) if has_ci else ""
    note = f"one-sided p = {_fmt(p)}, Holm-adjusted over {k} claim(s): {_fmt(ph)}"
    final = v
    if v == "reproduced":
        if has_ci and side != "reproduced":
            final, note = "inconclusive", (f"the finding read it reproduced but its 95% CI [{_fmt(lo)}, {_fmt(hi)}] "
                                           f"is not on the claimed side of {null:g}; " + note)
        elif np.isnan(p):
            final, note = "inconclusive", f"no p-value for the claimed direction (counted as 1 in Holm over {k})"
        elif not ph < alpha:
            final = "inconclusive"
            note = f"CI on the claimed side but Holm-adjusted p = {_fmt(ph)} >= {alpha:g} ({k} claims decided)"
    elif v == "contradicted" and d in ("greater", "less"):
        if not has_ci:
            final, note = "inconclusive", "contradicted by the finding but without an interval to check; " + note
        elif side != "contradicted":
            bound = null - m if d == "greater" else null + m
            final = "inconclusive"
            note = (f"the 95% CI [{_fmt(lo)}, {_fmt(hi)}] is not beyond the margin declared in advance "
                    f"({'below' if d == 'greater' else 'above'} {bound:g}); " + note)
    out["verdict"] = final
    out["reason"] = f"{out['reason']}; {note}"


def _holm_and_decide(rows: list[dict[str, Any]], alpha: float) -> None:
    """Holm over every measured row (a missing p counts as 1), then each row's verdict."""
    idx = [i for i, r in enumerate(rows) if r["verdict"] != "not measurable"]
    if not idx:
        return
    ps = np.array([1.0 if np.isnan(rows[i]["p_value"]) else rows[i]["p_value"] for i in idx])
    adj = stats.holm(ps)
    for i, a in zip(idx, adj):
        rows[i]["p_holm"] = float(a)
        _decide(rows[i], alpha, len(idx))


def _context(cid: str, tables: Mapping[str, pd.DataFrame | None]) -> str:
    """'context: ...' from the ``context`` rows any finding wrote for the claim."""
    out = []
    for finding, t in tables.items():
        if t is None or "claim" not in t.columns:
            continue
        rows = t[(t["claim"].astype(str) == cid) & (_forms(t) == "context")]
        if "primary" in rows.columns and rows["primary"].map(_is_true).any():
            rows = rows[rows["primary"].map(_is_true)]
        for _, r in rows.iterrows():
            eff = _num(r.get("effect"))
            val = (f": {_fmt(eff)} [{_fmt(_num(r.get('ci_lo')))}, {_fmt(_num(r.get('ci_hi')))}]"
                   if not np.isnan(eff) else f": {_text(r.get('verdict'))}")
            out.append(f"{finding}: {_text(r.get('statistic')) or _text(r.get('text'))}{val}")
    return ("; context (does not decide): " + "; ".join(out)) if out else ""


def _needs_reason(c: Claim, info: Mapping[str, Any]) -> str:
    missing = _missing_processors(c, info.get("processors"))
    if not missing:
        return ""
    absent = info.get("absent", {})
    why = "; ".join(f"{alt}: {absent[alt]}" for need in missing for alt in need.split("|") if absent.get(alt))
    return (f"the paper's form needs {c.needs_text or ' + '.join(c.needs)}; this device "
            f"({info.get('device_class', '')}) lacks {' and '.join(m.replace('|', ' or ') for m in missing)}"
            + (f" ({why})" if why else "") + (f". Host form: {c.host_form}" if c.host_form else ""))


def _rows_of(t: pd.DataFrame | None, cid: str, form: str) -> pd.DataFrame | None:
    if t is None:
        return None
    if "claim" not in t.columns:
        return t.iloc[0:0]
    mine = t[t["claim"].astype(str) == cid]
    return mine[_forms(mine) == form]


# --------------------------------------------------------------------------- evaluation
def evaluate(tables: Mapping[str, pd.DataFrame | None], alpha: float = ALPHA,
             missing: Mapping[str, str] | None = None, device: Mapping[str, Any] | None = None,
             form: str = "paper") -> pd.DataFrame:
    """Final verdicts of C1..C10 in one form (``paper``: every claim; ``host``: the claims
    with host-form rows) on one device.

    ``tables``: finding -> its claims table on this device (``None`` or absent key: the
    stage produced no data here). ``missing``: finding -> why it has no table. ``device``:
    ``device_info`` of the device (None: processors unknown, nothing gated)."""
    missing = dict(missing or {})
    info = dict(device or {})
    rows: list[dict[str, Any]] = []
    for c in CLAIMS.values():
        if c.finding == "paper":
            continue
        t = tables.get(c.finding)
        mine = _rows_of(t, c.id, form)
        gate = _needs_reason(c, info) if form == "paper" else ""
        if form == "host" and (mine is None or mine.empty):
            continue
        if t is None:
            why = missing.get(c.finding) or f"stage {c.finding} produced no data on this device"
            rows.append({**_base(c, form), "verdict": "not measurable", "reason": why + (f"; {gate}" if gate else "")})
            continue
        if mine.empty:
            has_host = _rows_of(t, c.id, "host")
            why = (gate or f"stage {c.finding} wrote no paper-form row for {c.id} on this device"
                   if has_host is not None and len(has_host) else
                   f"stage {c.finding} wrote no row for {c.id} on this device" + (f"; {gate}" if gate else ""))
            rows.append({**_base(c, form), "verdict": "not measurable", "reason": why})
            continue
        r, note = _select(c, mine)
        out = _from_row(c, r, note, len(mine), form)
        if gate and out["verdict"] != "not measurable":
            out.update(verdict="not measurable", finding_verdict=out["verdict"],
                       reason=f"{gate}; the finding's row ({out['verdict']}) is not the paper's form here")
            out.update(effect=np.nan, ci_lo=np.nan, ci_hi=np.nan, p_value=np.nan)
        elif gate:
            out["reason"] += f"; {gate}"
        out["reason"] += _context(c.id, tables)
        rows.append(out)
    c9 = _evaluate_c9(rows, tables, form, info)
    if c9 is not None:
        rows.append(c9)
    _holm_and_decide(rows, alpha)
    out = pd.DataFrame(rows) if rows else pd.DataFrame(columns=OUT_COLUMNS)
    if len(out):
        order = {cid: i for i, cid in enumerate(CLAIMS)}
        out = out.sort_values("claim", key=lambda s: s.map(order)).reset_index(drop=True)
    out["device_class"] = info.get("device_class", "")
    prof = info.get("profile", "")
    out["profile"] = f"{prof} ({PROVISIONAL})" if prof and info.get("provisional") else prof
    # independent runs pooled into each claim's interval (study.replicate; 1: one run)
    out["runs"] = out["runs"].fillna(1).astype(int) if "runs" in out else 1
    return out[OUT_COLUMNS]


def _evaluate_c9(rows: list[dict[str, Any]], tables: Mapping[str, pd.DataFrame | None], form: str,
                 info: Mapping[str, Any]) -> dict[str, Any] | None:
    """C9 = (a) some parallel configuration clearly slower than the best single processor
    (mulayer_overhead's C9 row, else C3) and (b) no single strategy best in every context
    (profiling_error's C9 row, else C7). Contradicted only where (b)'s row is contradicted."""
    c = CLAIMS["C9"]
    by_id = {r["claim"]: r for r in rows}

    def stand_in(cid: str) -> tuple[str, str, str, float, bool]:
        r = by_id.get(cid)
        if r is None:
            return (f"{cid} (stand-in)", "not measurable", f"no {form}-form row", np.nan, False)
        return (f"{cid} ({C9_COMPONENTS[cid].split(' (')[0]})", r["finding_verdict"] or r["verdict"], r["reason"],
                r["p_value"], False)

    a_parts, b_parts, runs = [], [], []
    for finding, t in tables.items():
        mine = _rows_of(t, "C9", form)
        if mine is None or mine.empty:
            continue
        sel = mine[mine["primary"].map(_is_true)] if "primary" in mine.columns and \
            mine["primary"].map(_is_true).any() else mine
        for _, r in sel.iterrows():
            runs.append(_runs_of(r.get("runs")))
            v = _text(r.get("verdict"))
            part = (f"{finding}'s C9 row ({_text(r.get('text')) or 'no text'})", v if v in VERDICTS else "inconclusive",
                    _text(r.get("reason")), _num(r.get("p_value")), finding == C9_STRATEGY_FINDING)
            (b_parts if finding == C9_STRATEGY_FINDING else a_parts).append(part)
    if form == "host" and not (a_parts or b_parts):
        return None
    parts = (a_parts or [stand_in("C3")]) + (b_parts or [stand_in("C7")])
    runs += [_runs_of(by_id[cid].get("runs")) for cid in ("C3", "C7") if cid in by_id
             and ((cid == "C3" and not a_parts) or (cid == "C7" and not b_parts))]
    verdicts = [p[1] for p in parts]
    gate = _needs_reason(c, info) if form == "paper" else ""
    if gate:
        v = "not measurable"
    elif "not measurable" in verdicts:
        v = "not measurable"
    elif any(p[1] == "contradicted" and p[4] for p in parts):
        v = "contradicted"
    elif all(x == "reproduced" for x in verdicts):
        v = "reproduced"
    else:
        v = "inconclusive"
    ps = [p[3] for p in parts]
    p = float(max(1.0 if np.isnan(x) else x for x in ps)) if v != "not measurable" else np.nan
    detail = "; ".join(f"{lab}: {pv}" + (f" ({why})" if pv in ("not measurable", "contradicted") and why else "")
                       for lab, pv, why, _, _ in parts)
    lead = {"reproduced": "every component reproduced",
            "contradicted": "one strategy is best in every context",
            "not measurable": "a component is not measurable on this device",
            "inconclusive": "no single strategy shown to win everywhere, but not every component reproduced"}[v]
    reason = f"{lead}. Components: {detail}; p = the largest component p (intersection-union)"
    if gate:
        reason = f"{gate}. {reason}"
    return {**_base(c, form), "text": c.statistic, "verdict": v, "finding_verdict": v, "rows": len(parts),
            "runs": min(runs) if runs else 1, "p_value": p, "n": sum(1 for x in verdicts if x != "not measurable"),
            "reason": reason}


def evaluate_host(tables: Mapping[str, pd.DataFrame | None], alpha: float = ALPHA,
                  device: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The host-form rows of one device, decided on their own (their own Holm family)."""
    return evaluate(tables, alpha, None, device, form="host")


def evaluate_devices(per_device: Mapping[str, Mapping[str, pd.DataFrame | None]], alpha: float = ALPHA,
                     missing: Mapping[str, Mapping[str, str]] | None = None,
                     devices: Mapping[str, Mapping[str, Any]] | None = None, form: str = "paper") -> pd.DataFrame:
    """``evaluate`` for each device label; one long table with a ``device_label`` column."""
    frames = []
    for label, tables in per_device.items():
        df = evaluate(tables, alpha, (missing or {}).get(label), (devices or {}).get(label), form=form)
        df.insert(0, "device_label", label)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["device_label"] + OUT_COLUMNS)
    # a device with no rows of this form (a reference that measured other findings) gives an
    # empty frame of object columns: left in, it turns the numbers of the others into text
    out = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    for col in NUMERIC_COLUMNS:
        if col in out:
            out[col] = pd.to_numeric(out[col], errors="coerce")
    return out


def cell(r: Mapping[str, Any]) -> str:
    """One claim on one device as text: the verdict and, where measured, effect [CI]."""
    v = r["verdict"]
    eff = _num(r.get("effect"))
    if v == "not measurable" or np.isnan(eff):
        return v
    lo, hi = _num(r.get("ci_lo")), _num(r.get("ci_hi"))
    ci = f" [{_fmt(lo)}, {_fmt(hi)}]" if not (np.isnan(lo) or np.isnan(hi)) else ""
    return f"{v}: {_fmt(eff)}{ci}"


def by_device(long: pd.DataFrame, devices: list[str] | None = None) -> pd.DataFrame:
    """One row per claim (of the form in ``long``), the paper's claim and value, then one
    column per device (verdict and effect [95% CI])."""
    reg = registry_frame().set_index("claim")
    if devices is None:
        devices = list(dict.fromkeys(long["device_label"])) if len(long) else []
    ids = list(CLAIMS) if not len(long) or (long.get("form", pd.Series(["paper"])) == "paper").all() else \
        [c for c in CLAIMS if c in set(long["claim"])]
    out = pd.DataFrame({"claim": ids})
    out["finding"] = out["claim"].map(reg["finding"])
    out["paper_claim"] = out["claim"].map(reg["paper_claim"])
    out["paper_value"] = out["claim"].map(reg["paper_value"])
    out["paper_setting"] = out["claim"].map(reg["paper_setting"])
    for d in devices:
        sub = long[long["device_label"] == d].set_index("claim") if len(long) else long
        out[d] = out["claim"].map(lambda cid: cell(sub.loc[cid]) if cid in sub.index else "not evaluated")
    return out


def _clean(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


# claims decided by a count that does not vary between runs (C1: the operators of a model's
# graph that a split rule cannot split): independent runs do not apply
DETERMINISTIC = ("C1",)


def _runs_of(v: Any) -> int:
    x = _num(v)
    return 1 if np.isnan(x) or x < 1 else int(x)


def independent_runs(g: pd.DataFrame) -> int:
    """The fewest independent runs pooled into a measured claim of one device (claims that
    are counts, ``DETERMINISTIC``, left out; 1 where none is measured)."""
    m = g[(g["verdict"] != "not measurable") & ~g["claim"].isin(DETERMINISTIC)] if len(g) else g
    vals = [_runs_of(v) for v in m.get("runs", pd.Series(dtype=float))]
    return min(vals) if vals else 1


def _claim_numbers(r: pd.Series) -> dict[str, Any]:
    return {"verdict": r["verdict"], "effect": _clean(r["effect"]), "ci_lo": _clean(r["ci_lo"]),
            "ci_hi": _clean(r["ci_hi"]), "p_value": _clean(r["p_value"]), "p_holm": _clean(r["p_holm"]),
            "runs": _runs_of(r.get("runs"))}


def metrics(long: pd.DataFrame, host: pd.DataFrame | None = None) -> dict[str, Any]:
    """Numbers for ``dvc metrics show``: per device, its provenance (profile, independent
    runs, device class), the paper-form verdict counts and per-claim effect, CI, p and
    Holm-adjusted p (``null`` where not measured), and the host-form rows apart."""
    out: dict[str, Any] = {}
    for d, g in long.groupby("device_label", sort=False):
        counts = {v.replace(" ", "_"): int((g["verdict"] == v).sum()) for v in VERDICTS}
        counts["claims"] = int(len(g))
        first = g.iloc[0]
        prov = {"profile": _text(first.get("profile")), "independent_runs": independent_runs(g),
                "runs_per_claim": {r["claim"]: _runs_of(r.get("runs")) for _, r in g.iterrows()
                                   if r["verdict"] != "not measurable" and r["claim"] not in DETERMINISTIC},
                "device_class": _text(first.get("device_class")),
                "scope": "verdicts hold for this device class only; a host result is not a phone's"}
        entry = {"provenance": prov, "counts": counts,
                 "claims": {r["claim"]: _claim_numbers(r) for _, r in g.iterrows()}}
        if host is not None and len(host):
            h = host[host["device_label"] == d]
            if len(h):
                entry["host_form"] = {r["claim"]: _claim_numbers(r) for _, r in h.iterrows()}
        out[str(d)] = entry
    return out


def sensitivity(long: pd.DataFrame) -> pd.DataFrame:
    """Each measured claim's verdict by its interval alone (``ci_verdict``, with the
    registry's margin) at every threshold of its sensitivity range."""
    rows = []
    for _, r in long.iterrows():
        c = CLAIMS.get(r["claim"])
        if c is None or not c.sensitivity or r["verdict"] == "not measurable":
            continue
        for t in c.sensitivity:
            rows.append(dict(device_label=r.get("device_label", ""), claim=c.id, threshold=t,
                             declared=bool(np.isclose(t, _num(r["null"]))),
                             verdict=ci_verdict(c.direction, _num(r["ci_lo"]), _num(r["ci_hi"]), t, c.margin)))
    return pd.DataFrame(rows, columns=["device_label", "claim", "threshold", "declared", "verdict"])


# --------------------------------------------------------------------------- docs/claims.md
DOCS = Path(__file__).resolve().parent.parent / "docs" / "claims.md"


def registry_markdown() -> str:
    """docs/claims.md: every claim's declared test, generated from ``CLAIMS``."""
    lines = ["# The claims and their tests, declared in advance", "",
             "Generated from `study/claims.py` (`python -m study.claims docs`); do not edit by hand. The paper's "
             "values are for comparison only. A verdict is *reproduced* when the 95% CI lies on the claimed side of "
             "the threshold and the one-sided p, Holm-adjusted over every claim decided on the device, is below "
             f"{ALPHA:g}; *contradicted* when the CI lies beyond the margin on the other side; *inconclusive* "
             "otherwise; *not measurable* (with the reason) where the device lacks what the paper's form needs. "
             "Host forms are reported apart and never decide a claim. The interval and p of a measured claim pool "
             "its stage's independent runs (fresh processes; the stage's `runs` parameter: 3 in the quick and "
             "reference profiles, 5 in the full one; `study/replicate.py`): the mean of the per-run estimates with "
             "a Student t half-width over runs (log scale for ratios) combined in root-sum-square with the runs' "
             "mean within-run half-width, and a verdict needs every run's verdict to agree. C1 is a count of the "
             "model's operators: independent runs do not apply.", ""]
    for c in CLAIMS.values():
        lines += [f"## {c.id} ({c.finding})", "", f"*Paper:* {c.text} ({c.paper_value}"
                  + (f"; {c.paper_setting}" if c.paper_setting else "") + ")", "",
                  f"- **statistic:** {c.statistic}",
                  f"- **claimed side:** {c.hypothesis}" + (f" — {c.null_why}" if c.null_why else ""),
                  f"- **contradicted when:** {c.contradiction}" + (f" — {c.margin_why}" if c.margin_why else ""),
                  f"- **test:** {c.test or 'conjunction of the components'}",
                  f"- **primary model:** {c.primary_model or '-'}",
                  f"- **paper form needs:** {c.needs_text or 'any device'}"
                  + (f" (processors: {' + '.join(n.replace('|', ' or ') for n in c.needs)})" if c.needs else ""),
                  f"- **host form:** {c.host_form or '-'}",
                  f"- **sensitivity thresholds:** {', '.join(f'{x:g}' for x in c.sensitivity) or '-'}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["docs"]:
        print("usage: python -m study.claims docs [--check]", file=sys.stderr)
        return 2
    text = registry_markdown()
    if "--check" in argv:
        ok = DOCS.is_file() and DOCS.read_text() == text
        print("docs/claims.md is current" if ok else "docs/claims.md is stale: run python -m study.claims docs")
        return 0 if ok else 1
    DOCS.write_text(text)
    print(f"wrote {DOCS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
