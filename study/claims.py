"""The paper's claims (C1..C10) and their evaluation on each device's data.

The registry (``CLAIMS``) holds, for every claim of PAPER.md: the finding (stage) that
tests it, the paper's text, the paper's reference value(s) and the device/setting they
were measured on, the statistic that tests it and its direction (which side of the null
the claim predicts). The paper's values are the comparison column only: they are never
an output of ours.

Every finding stage writes ``data/<device>/<finding>/claims.parquet`` (columns
``CLAIM_COLUMNS``: one or more rows per claim it tests; its own verdict from its 95%
CI). ``evaluate`` gathers those rows for one device and sets the final verdict:

* a finding whose stage produced no data on the device -> every claim of it is
  ``not measurable`` with the reason "stage X produced no data on this device";
  a claims table without a row for a claim -> ``not measurable``, "stage X wrote no row
  for C? on this device";
* several rows for one claim (e.g. one per graph representation): the row marked
  ``primary`` is the claim's row; without such a mark the measurable rows are
  used if they agree, and the claim is ``inconclusive`` (the reason says so) if they
  disagree;
* Holm-Bonferroni across the claims with a p-value on the device (``p_holm``): a
  ``reproduced`` verdict needs ``p_holm < alpha`` as well as its CI on the claimed side,
  otherwise it becomes ``inconclusive`` and the reason says why. ``contradicted`` stays
  (its CI is entirely on the other side; the p-value tests the claimed side);
* C9 (overall) has no stage of its own: it is the conjunction of its component
  claims (``C9_COMPONENTS``) on the same device, plus any rows a finding writes for C9.

A finding's rows may carry ``threshold`` (the null of its test) and ``direction``
(``greater``/``less``); they then replace the registry's ``null``/``direction`` for that row
(the claimed side shown in the report and the dotted line in the effects figure).

``evaluate_devices`` does this per device; ``by_device`` pivots the result to one column
per device; ``metrics`` gives the numbers for ``dvc metrics``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from study import stats

VERDICTS = ("reproduced", "contradicted", "inconclusive", "not measurable")
CLAIM_COLUMNS = ["claim", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "n", "paper_value", "verdict",
                 "reason"]
ALPHA = 0.05


@dataclass(frozen=True)
class Claim:
    id: str
    finding: str              # the stage whose claims table holds its rows ("paper": evaluated here)
    text: str                 # the paper's claim (PAPER.md)
    paper_value: str          # the paper's value as stated, for comparison only
    paper_setting: str        # the paper's device / setting of that value
    statistic: str            # the measurable form: what is estimated
    direction: str            # "greater" | "less" (the claim predicts effect above / below null) | "all hold"
    null: float | None = None  # the null / threshold the claimed side is measured from (None: finding's own)
    # the paper's values on the statistic's scale, label -> value: reference marks in figures only
    reference: dict[str, float] = field(default_factory=dict)

    @property
    def hypothesis(self) -> str:
        if self.direction == "all hold":
            return "every component claim reproduced"
        sign = ">" if self.direction == "greater" else "<"
        return f"effect {sign} {self.null:g}" if self.null is not None else f"effect {sign} the finding's threshold"


CLAIMS: dict[str, Claim] = {c.id: c for c in [
    Claim("C1", "operator_support",
          "A large share of a model's operators is unsupported in CPU+GPU parallel inference and falls back to one "
          "processor.",
          "about 48% of ResNet-50's operators", "Xiaomi 9, CPU+GPU parallel inference",
          "share of ResNet-50's runtime operators that a channel-wise CPU+GPU split cannot split",
          "greater", 0.25, {"paper 48%": 0.48}),
    Claim("C2", "operator_support",
          "Unsupported operators and processor fallbacks keep existing parallel strategies from their potential.",
          "qualitative", "several frameworks",
          "Amdahl bound on the speedup of a two-processor split, 2/(1+f), f = latency share of unsplittable operators",
          "less", 1.8),
    Claim("C3", "mulayer_overhead",
          "Channel-wise CPU+GPU co-execution (muLayer) can be slower than the GPU alone.",
          "1.9x to 3.1x slower", "Fast Style Transfer, muLayer-style channel-wise co-execution vs GPU alone",
          "latency ratio: channel-wise co-execution / the best single processor",
          "greater", 1.0, {"paper 1.9x": 1.9, "paper 3.1x": 3.1}),
    Claim("C4", "mulayer_overhead",
          "Granularity matters: coarse (subgraph) parallelism leaves processors idle; fine (intra-operator) "
          "parallelism adds suspensions and transfers.",
          "qualitative", "",
          "overhead of the split granularity as a share of latency (coarse: processor idle time; fine: "
          "synchronisation and transfer time)",
          "greater", 0.0),
    Claim("C5", "contention",
          "Competing processes inflate latency far more on the CPU than on the GPU or DSP.",
          "3 competitors: CPU 10.2x, GPU 2.1x, DSP 1.8x", "3 competing processes",
          "latency inflation under 3 competitors on the CPU divided by that on the GPU (or DSP)",
          "greater", 1.0, {"paper 10.2x/2.1x": 10.2 / 2.1}),
    Claim("C6", "contention",
          "Dedicating processors to inference degrades co-running apps.",
          "over 90% frame drops", "VGG-16 on GPU (MACE, buffer type) beside video playback",
          "increase (percentage points) of the co-running app's missed-frame share when inference occupies the "
          "processor, over a materiality threshold",
          "greater", 5.0, {"paper >90%": 90.0}),
    Claim("C7", "profiling_error",
          "Offline latency profiles diverge from runtime latency in dynamic conditions; runtime profiling is needed.",
          "qualitative", "",
          "paired difference of prediction error on the same trace: offline profile minus runtime profile",
          "greater", 0.0),
    Claim("C8", "frame_reuse",
          "Reusing data across frames (frame and layer level) lowers latency at an acceptable accuracy cost.",
          "qualitative", "",
          "latency reduction 1 - mean latency(reuse) / mean latency(full computation) on the same frames, with "
          "fidelity against full computation above its floor",
          "greater", 0.2),
    Claim("C9", "paper",
          "Parallel inference across processors is not always beneficial; no single strategy fits every context.",
          "qualitative", "",
          "conjunction: (a) parallel co-execution is slower than one processor alone (C3); (b) no single strategy "
          "is best in every context (the findings' C9 rows, e.g. profiling_error's per-context fastest candidate; "
          "C7 where no finding writes a C9 row)",
          "all hold"),
    Claim("C10", "cross_level",
          "Existing parallel strategies optimize only the backend (placement, fusion, parallelism) while models are "
          "over-parameterized; choosing frontend compression (quantization, pruning, low-rank) together with backend "
          "placement does better than either alone.",
          "qualitative", "stated as an opportunity; muLayer's processor-friendly quantization is one instance",
          "latency ratio: best joint frontend + backend configuration / best of either alone, at matched accuracy",
          "less", 1.0),
]}

# C9's components: (a) "not always beneficial" = C3; (b) "no single strategy fits every context" = the
# rows that findings write for C9 (profiling_error: always using the best single candidate is slower than
# each context's fastest), or C7 where no finding writes one
C9_COMPONENTS = {"C3": "parallel co-execution is slower than one processor alone: not always beneficial",
                 "C7": "offline profiles mislead at run time, so the best choice depends on conditions "
                       "(used only where no finding writes a C9 row)"}

OUT_COLUMNS = ["claim", "finding", "paper_claim", "text", "statistic", "hypothesis", "null", "effect", "ci_lo", "ci_hi",
               "p_value", "p_holm", "n", "paper_value", "paper_setting", "verdict", "finding_verdict", "reason",
               "rows"]


def findings() -> list[str]:
    """Stages that hold claims, in claim order (``paper`` excluded)."""
    out = []
    for c in CLAIMS.values():
        if c.finding != "paper" and c.finding not in out:
            out.append(c.finding)
    return out


def claims_of(finding: str) -> list[str]:
    return [c.id for c in CLAIMS.values() if c.finding == finding]


def registry_frame() -> pd.DataFrame:
    """The registry as a table (for the report and the notebook)."""
    return pd.DataFrame([dict(claim=c.id, finding=c.finding, paper_claim=c.text, paper_value=c.paper_value,
                              paper_setting=c.paper_setting, statistic=c.statistic, hypothesis=c.hypothesis,
                              direction=c.direction, null=c.null) for c in CLAIMS.values()])


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


def _base(c: Claim) -> dict[str, Any]:
    return dict(claim=c.id, finding=c.finding, paper_claim=c.text, text=c.statistic, statistic=c.statistic,
                hypothesis=c.hypothesis, null=np.nan if c.null is None else c.null, effect=np.nan, ci_lo=np.nan,
                ci_hi=np.nan, p_value=np.nan, p_holm=np.nan,
                n=0, paper_value=c.paper_value, paper_setting=c.paper_setting, finding_verdict="", rows=0)


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


def _from_row(c: Claim, r: pd.Series, note: str, nrows: int) -> dict[str, Any]:
    out = _base(c)
    v = _text(r.get("verdict")).strip()
    reason = _text(r.get("reason")).strip()
    if v not in VERDICTS:
        reason = f"the finding wrote no valid verdict ({v!r}); " + reason
        v = "inconclusive"
    out.update(text=_text(r.get("text")) or c.statistic, statistic=_text(r.get("statistic")) or c.statistic,
               effect=_num(r.get("effect")), ci_lo=_num(r.get("ci_lo")), ci_hi=_num(r.get("ci_hi")),
               p_value=_num(r.get("p_value")), n=int(_num(r.get("n"))) if not np.isnan(_num(r.get("n"))) else 0,
               verdict=v, finding_verdict=v, rows=nrows,
               reason=(reason or "(the finding gave no reason)") + (f" [{note}]" if note else ""))
    # the finding's own threshold and direction, where its table states them, replace the registry's
    direction = _text(r.get("direction")) if _text(r.get("direction")) in ("greater", "less") else c.direction
    for col in ("threshold", "null"):
        t = _num(r.get(col))
        if not np.isnan(t):
            out["null"] = t
            break
    if direction in ("greater", "less") and not np.isnan(out["null"]):
        out["hypothesis"] = f"effect {'>' if direction == 'greater' else '<'} {out['null']:g}"
    if v == "not measurable":
        out.update(effect=np.nan, ci_lo=np.nan, ci_hi=np.nan, p_value=np.nan)
    return out


# --------------------------------------------------------------------------- evaluation
def evaluate(tables: Mapping[str, pd.DataFrame | None], alpha: float = ALPHA,
             missing: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Final verdicts of C1..C10 on one device.

    ``tables``: finding -> its claims table on this device (``None`` or absent key: the
    stage produced no data here). ``missing``: finding -> why it has no table (default:
    "stage X produced no data on this device")."""
    missing = dict(missing or {})
    rows = []
    for c in CLAIMS.values():
        if c.finding == "paper":
            continue
        t = tables.get(c.finding)
        if t is None:
            why = missing.get(c.finding) or f"stage {c.finding} produced no data on this device"
            rows.append({**_base(c), "verdict": "not measurable", "reason": why})
            continue
        mine = t[t["claim"].astype(str) == c.id] if "claim" in t.columns else t.iloc[0:0]
        if mine.empty:
            rows.append({**_base(c), "verdict": "not measurable",
                         "reason": f"stage {c.finding} wrote no row for {c.id} on this device"})
            continue
        r, note = _select(c, mine)
        rows.append(_from_row(c, r, note, len(mine)))
    out = pd.DataFrame(rows)
    # Holm across the claims that carry a p-value on this device
    testable = out["p_value"].notna() & (out["verdict"] != "not measurable")
    k = int(testable.sum())
    if k:
        out.loc[testable, "p_holm"] = stats.holm(out.loc[testable, "p_value"].to_numpy())
    for i in out.index[testable]:
        p, ph = out.at[i, "p_value"], out.at[i, "p_holm"]
        note = f"p = {_fmt(p)}, Holm-adjusted over {k} claim(s): {_fmt(ph)}"
        if out.at[i, "verdict"] == "reproduced" and not ph < alpha:
            out.at[i, "verdict"] = "inconclusive"
            note = f"CI on the claimed side but Holm-adjusted p = {_fmt(ph)} >= {alpha:g} ({k} claims with p-values)"
        out.at[i, "reason"] = f"{out.at[i, 'reason']}; {note}"
    c9 = _evaluate_c9(out, tables)
    out = pd.concat([out, pd.DataFrame([c9])], ignore_index=True)
    order = {cid: i for i, cid in enumerate(CLAIMS)}
    out = out.sort_values("claim", key=lambda s: s.map(order)).reset_index(drop=True)
    return out[OUT_COLUMNS]


def _evaluate_c9(final: pd.DataFrame, tables: Mapping[str, pd.DataFrame | None]) -> dict[str, Any]:
    """C9 = every component holds: (a) C3's final verdict; (b) the C9 rows the findings wrote
    (a finding's ``primary`` row where it marks one; their own verdicts), or C7's final verdict
    where no finding wrote a C9 row."""
    c = CLAIMS["C9"]

    def final_part(cid: str) -> tuple[str, str, str]:
        r = final[final["claim"] == cid].iloc[0]
        return f"{cid} ({C9_COMPONENTS[cid].split(' (')[0]})", r["verdict"], r["reason"]

    parts = [final_part("C3")]
    own = []
    for finding, t in tables.items():
        if t is None or "claim" not in t.columns:
            continue
        rows = t[t["claim"].astype(str) == "C9"]
        if "primary" in rows.columns and rows["primary"].map(_is_true).any():
            rows = rows[rows["primary"].map(_is_true)]
        for _, r in rows.iterrows():
            v = _text(r.get("verdict"))
            own.append((f"{finding}'s C9 row ({_text(r.get('text')) or 'no text'})",
                        v if v in VERDICTS else "inconclusive", _text(r.get("reason"))))
    parts += own or [final_part("C7")]
    verdicts = [v for _, v, _ in parts]
    if "contradicted" in verdicts:
        v = "contradicted"
    elif "not measurable" in verdicts:
        v = "not measurable"
    elif all(x == "reproduced" for x in verdicts):
        v = "reproduced"
    else:
        v = "inconclusive"
    detail = "; ".join(f"{lab}: {pv}" + (f" ({why})" if pv in ("not measurable", "contradicted") and why else "")
                       for lab, pv, why in parts)
    lead = {"reproduced": "every component reproduced",
            "contradicted": "a component is contradicted",
            "not measurable": "a component is not measurable on this device",
            "inconclusive": "no component contradicted, but not all reproduced"}[v]
    return {**_base(c), "text": c.statistic, "verdict": v, "finding_verdict": "", "rows": len(parts),
            "n": sum(1 for x in verdicts if x != "not measurable"),
            "reason": f"{lead}. Components: {detail}"}


def evaluate_devices(per_device: Mapping[str, Mapping[str, pd.DataFrame | None]], alpha: float = ALPHA,
                     missing: Mapping[str, Mapping[str, str]] | None = None) -> pd.DataFrame:
    """``evaluate`` for each device label; one long table with a ``device_label`` column."""
    frames = []
    for label, tables in per_device.items():
        df = evaluate(tables, alpha, (missing or {}).get(label))
        df.insert(0, "device_label", label)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["device_label"] + OUT_COLUMNS)


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
    """One row per claim, the paper's claim and value, then one column per device
    (verdict and effect [95% CI])."""
    reg = registry_frame().set_index("claim")
    if devices is None:
        devices = list(dict.fromkeys(long["device_label"])) if len(long) else []
    out = pd.DataFrame({"claim": list(CLAIMS)})
    out["finding"] = out["claim"].map(reg["finding"])
    out["paper_claim"] = out["claim"].map(reg["paper_claim"])
    out["paper_value"] = out["claim"].map(reg["paper_value"])
    out["paper_setting"] = out["claim"].map(reg["paper_setting"])
    for d in devices:
        sub = long[long["device_label"] == d].set_index("claim")
        out[d] = out["claim"].map(lambda cid: cell(sub.loc[cid]) if cid in sub.index else "not evaluated")
    return out


def _clean(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def metrics(long: pd.DataFrame) -> dict[str, Any]:
    """Numbers for ``dvc metrics show``: per device, verdict counts and per-claim effect,
    CI and Holm-adjusted p (``null`` where not measured)."""
    out: dict[str, Any] = {}
    for d, g in long.groupby("device_label", sort=False):
        counts = {v.replace(" ", "_"): int((g["verdict"] == v).sum()) for v in VERDICTS}
        counts["claims"] = int(len(g))
        per = {}
        for _, r in g.iterrows():
            per[r["claim"]] = {"verdict": r["verdict"], "effect": _clean(r["effect"]), "ci_lo": _clean(r["ci_lo"]),
                               "ci_hi": _clean(r["ci_hi"]), "p_holm": _clean(r["p_holm"])}
        out[str(d)] = {"counts": counts, "claims": per}
    return out
