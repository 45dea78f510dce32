"""The paper: every finding's claims on every device, final verdicts, figures and the report.

Stage ``paper`` (notebook ``99_paper.ipynb``), the last one. It measures nothing: it
gathers what the findings wrote, for every device folder found (``study.explore``): this
machine's ``data/<device>/``, the committed references ``data/reference/<slug>/`` and
peers' ``peers/<name>/<device>/`` (plus ``peer_dirs``).

* ``measure`` (gathering): every finding's ``claims`` rows on every device, plus one row
  per finding whose stage produced no data on a device -> ``data/<device>/paper.parquet``;
* ``analyse``: ``study.claims.evaluate`` per device (Holm across claims, final verdicts,
  C9 from its components) -> tables ``claims`` (this device, the finding contract's
  columns), ``claims_all`` (every device, long), ``claims_by_device`` (one column per
  device), ``not_measured`` (claims and configurations that could not be measured, with
  the reason), ``environment`` (fingerprints), ``methods`` (the rigor stage's methods
  table per device), ``devices`` (the folders used);
* ``plot``: cross-device figures: the verdict grid (claims x devices), the effects with
  their 95% CIs faceted by claim, and each finding's main result faceted by device;
* ``write_metrics``: ``metrics/<device>/paper.json`` (verdict counts per device, effect and
  CI per claim) for ``dvc metrics``, and ``metrics/<device>/paper_claims.csv`` for ``dvc plots``;
* ``report``: ``figures/<device>/paper/report.html``, self-contained (``study.report``).

Missing findings are expected (a stage not built, not run, or a device where it cannot
run): their claims are ``not measurable`` with the reason; the stage gets richer as
findings land.
"""
from __future__ import annotations

import importlib
import json
import math
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study import claims as C
from study import explore, paths, stages
from study.schema import STAGES

FINDING = "paper"
METRICS = paths.METRICS             # metrics/<device>/paper.json (+ paper_claims.csv): dvc metrics / plots
TITLE = "Heterogeneous mobile processors: potentials and pitfalls, reproduced"

PARAMS = STAGES["paper"]   # the schema of this stage's section (study.schema)


def check_params(resolved: dict[str, Any], params: dict[str, Any]) -> None:
    from study.config import ParamError

    for d in resolved["peer_dirs"]:
        p = Path(d) if Path(d).is_absolute() else paths.ROOT / d
        if not p.is_dir():
            raise ParamError(f"paper.peer_dirs: {d!r} is not a folder")


EVIDENCE_ID = ["device_label", "device_slug", "source", "folder", "finding", "status"]
STATUS_ROWS, STATUS_NONE = "rows", "no data"
VERDICT_COLORS = {"reproduced": "#55A868", "contradicted": "#C44E52", "inconclusive": "#CCB974",
                  "not measurable": "#BBBBBB"}
ITEM_COLUMNS = ["what", "record", "model", "candidate", "config", "sut", "engine", "processor", "pair", "pair_kind",
                "view", "method", "part", "core_group", "kind", "clip"]


def metrics_file(device: str, root: Path = METRICS) -> Path:
    return root / paths.device_dirname(device) / "paper.json"


def plots_file(device: str, root: Path = METRICS) -> Path:
    return root / paths.device_dirname(device) / "paper_claims.csv"


# =========================================================================== gathering
def folders(ctx) -> list[explore.DeviceFolder]:
    """The device folders the parameters select. This device's folder comes first; if no
    finding ran here it still appears (every claim then not measurable, with the reason)."""
    p = ctx.params
    found = explore.device_folders(include_reference=p.get("include_reference", True),
                                   peers=p.get("include_peers", True), extra=p.get("peer_dirs", []),
                                   devices=p.get("devices") or None, data_root=Path(ctx.data_root),
                                   reference_root=Path(getattr(ctx, "reference_root", paths.REFERENCE)),
                                   peers_root=Path(getattr(ctx, "peers_root", explore.PEERS)))
    own = paths.device_data(ctx.device_spec, Path(ctx.data_root))
    mine = [d for d in found if d.path == own]
    if not mine and (not p.get("devices") or ctx.device_spec in p["devices"]):
        slug = str(_fingerprint(ctx).get("device_slug") or ctx.device_spec)
        mine = [explore.DeviceFolder(source="this machine", path=own, slug=slug, findings=[])]
        found = explore._label(mine + found)
    return mine + [d for d in found if d.path != own]


def this_label(ctx, fs: list[explore.DeviceFolder]) -> str | None:
    own = paths.device_data(ctx.device_spec, Path(ctx.data_root))
    return next((d.label for d in fs if d.path == own), None)


def _fingerprint(ctx) -> dict[str, Any]:
    """The stage's fingerprint; where the device cannot be reached (a phone unplugged: the
    paper only reads files) the latest fingerprint its findings recorded stands in."""
    if "fingerprint" in ctx.__dict__:
        return ctx.fingerprint
    try:
        fp = ctx.fingerprint
    except Exception as e:  # noqa: BLE001 - any failure to reach the device
        own = explore._device_folder(paths.device_data(ctx.device_spec, Path(ctx.data_root)), "this machine")
        fp = dict(own.fingerprint()) if own else {"device": ctx.device_spec, "device_slug": ctx.device_spec}
        fp.update(finding=FINDING, profile=ctx.profile, seed=ctx.seed,
                  fingerprint_note=f"device not reachable ({type(e).__name__}: {e}); copied from its findings")
        ctx.__dict__["fingerprint"] = fp
    return fp


def _finding_params(finding: str, profile: str) -> dict[str, Any]:
    """The finding's section of params.yaml with the device's profile overrides (for a recompute)."""
    import yaml

    try:
        sec = dict((yaml.safe_load(paths.PARAMS.read_text()) or {}).get(finding) or {})
    except Exception:  # noqa: BLE001 - no params file: the finding's defaults
        return {}
    over = sec.get(profile) if isinstance(sec.get(profile), dict) else {}
    base = {k: v for k, v in sec.items() if k not in ("quick", "full", "reference")}
    return {**base, **over}


def _run_overrides(d: explore.DeviceFolder, finding: str) -> dict[str, Any]:
    """The parameter overrides a reference run recorded (``reference_run.json``: "stage.key"
    -> value) for this finding: its claims are recomputed with the values it was measured with."""
    f = Path(d.path) / "reference_run.json"
    try:
        over = json.loads(f.read_text()).get("overrides", {}) if f.exists() else {}
    except (OSError, ValueError):
        return {}
    return {k.split(".", 1)[1]: v for k, v in over.items() if k.startswith(finding + ".") and k.count(".") == 1}


def recompute_claims(d: explore.DeviceFolder, finding: str) -> tuple[pd.DataFrame | None, str]:
    """A finding's claims rows recomputed from the device folder's tables with the current
    code (``claims_from_tables`` of the finding's module), so data measured with older code
    gets current verdicts; (None, why) where the tables are not there or do not fit."""
    try:
        mod = importlib.import_module(stages.module_of(finding))
    except Exception as e:  # noqa: BLE001 - a finding that cannot be imported here keeps its stored rows
        return None, f"module not importable ({type(e).__name__})"
    fn = getattr(mod, "claims_from_tables", None)
    if fn is None:
        return None, "the finding has no recompute"
    fp = d.fingerprints.get(finding, {})
    cache: dict[Any, pd.DataFrame | None] = {}

    def read(table):
        if table not in cache:
            cache[table] = d.read(finding, table)
        return None if cache[table] is None else cache[table].copy()

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(read, {**_finding_params(finding, str(fp.get("profile") or "quick")), **_run_overrides(d, finding)},
                     int(fp.get("seed") or 0))
    except Exception as e:  # noqa: BLE001 - tables of older code without a column: keep the stored rows
        return None, f"recompute failed ({type(e).__name__}: {str(e)[:120]})"
    if out is None or not len(out) or "claim" not in out:
        return None, "the tables it needs are not in the folder"
    from study import replicate

    try:    # the other independent runs' stored rows, pooled again with the recomputed first run
        out = replicate.repool(out, read("claim_runs"))
    except Exception as e:  # noqa: BLE001 - a runs table of older code: the first run alone
        out = out.assign(reason=out["reason"].astype(str) + f"; independent runs not pooled ({type(e).__name__})")
    return out, ""


def measure(ctx) -> pd.DataFrame:
    """Gather: every finding's claims rows on every device (one row per row written),
    recomputed from the finding's tables with the current code where it can be
    (``recomputed``), and a ``no data`` row per finding whose stage produced none on a device."""
    fs = folders(ctx)
    frames = []
    for d in fs:
        for finding in C.findings():
            t = d.read(finding, "claims")
            if t is not None or d.has(finding):
                new, why = recompute_claims(d, finding)
                if new is not None:
                    t = new.assign(recomputed=True, recompute_note="recomputed from the finding's tables")
                elif t is not None:
                    t = t.assign(recomputed=False, recompute_note=f"stored rows ({why})")
            ident = dict(device_label=d.label, device_slug=d.slug, source=d.source, folder=d.folder, finding=finding)
            if t is None:
                why = (f"stage {finding} produced no data on this device" if not d.has(finding)
                       and not (d.path / finding).is_dir() else f"stage {finding} wrote no claims table on this device")
                frames.append(pd.DataFrame([{**ident, "status": STATUS_NONE, "reason": why}]))
                continue
            t = t.drop(columns=[c for c in ("device_label", "source", "folder", "finding", "status") if c in t.columns])
            t = t.assign(**{k: v for k, v in ident.items() if k != "device_slug"}, status=STATUS_ROWS)
            if "device_slug" not in t.columns:
                t["device_slug"] = d.slug
            frames.append(t)
    ev = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=EVIDENCE_ID)
    ev = ev[EVIDENCE_ID + [c for c in ev.columns if c not in EVIDENCE_ID]]
    _fingerprint(ctx)
    ctx.write(ev)
    return ev


def per_device_tables(evidence: pd.DataFrame
                      ) -> tuple[dict[str, dict[str, pd.DataFrame | None]], dict[str, dict[str, str]]]:
    """The evidence split back into device -> finding -> claims rows (None: no data), and
    the reason each missing finding has."""
    tables: dict[str, dict[str, pd.DataFrame | None]] = {}
    missing: dict[str, dict[str, str]] = {}
    for label in dict.fromkeys(evidence["device_label"]):
        g = evidence[evidence["device_label"] == label]
        tables[label], missing[label] = {}, {}
        for finding, h in g.groupby("finding", sort=False):
            if (h["status"] == STATUS_NONE).all():
                tables[label][finding] = None
                missing[label][finding] = str(h["reason"].iloc[0])
            else:
                tables[label][finding] = h[h["status"] == STATUS_ROWS].reset_index(drop=True)
    return tables, missing


# =========================================================================== analyse
def _item(row: pd.Series) -> str:
    parts = [f"{row[c]}" for c in ITEM_COLUMNS if c in row.index and isinstance(row[c], str) and row[c]]
    return " / ".join(parts) or "(whole stage)"


def unavailable(d: explore.DeviceFolder) -> pd.DataFrame:
    """Configurations a finding could not measure on the device, with the finding's reason:
    rows of its ``absent*`` / ``availability*`` tables and rows with ``available == False``."""
    import pyarrow.parquet as pq

    rows = []
    for finding in d.findings:
        for f in sorted((d.path / finding).glob("*.parquet")):
            name = f.stem
            try:
                cols = set(pq.read_schema(f).names)
            except Exception:  # noqa: BLE001 - an unreadable table is reported, not fatal
                rows.append(dict(finding=finding, table=name, item="(table)", reason="table could not be read"))
                continue
            named = name.startswith(("absent", "availability"))
            if "reason" not in cols or not (named or "available" in cols):
                continue
            t = pd.read_parquet(f, columns=[c for c in cols if c in ITEM_COLUMNS + ["available", "reason"]])
            if "available" in t.columns:
                t = t[~t["available"].map(C._is_true)]
            for _, r in t.iterrows():
                reason = r.get("reason")
                if not isinstance(reason, str) or not reason:
                    continue
                rows.append(dict(finding=finding, table=name, item=_item(r), reason=reason))
    df = pd.DataFrame(rows, columns=["finding", "table", "item", "reason"])
    return df.drop_duplicates(["finding", "item", "reason"]).reset_index(drop=True)


def not_measured(long: pd.DataFrame, fs: list[explore.DeviceFolder],
                 missing: dict[str, dict[str, str]]) -> pd.DataFrame:
    """What could not be measured and why, per device: stages without data, claims not
    measurable, configurations absent."""
    rows = []
    for d in fs:
        for finding, why in missing.get(d.label, {}).items():
            rows.append(dict(device_label=d.label, kind="stage", finding=finding, item=f"stage {finding}", reason=why))
        g = long[(long["device_label"] == d.label) & (long["verdict"] == "not measurable")]
        for _, r in g.iterrows():
            rows.append(dict(device_label=d.label, kind="claim", finding=r["finding"], item=r["claim"],
                             reason=r["reason"]))
        u = unavailable(d)
        for _, r in u.iterrows():
            rows.append(dict(device_label=d.label, kind="configuration", finding=r["finding"],
                             item=f"{r['item']} ({r['table']})", reason=r["reason"]))
    return pd.DataFrame(rows, columns=["device_label", "kind", "finding", "item", "reason"])


def _processors(fp: dict[str, Any]) -> str:
    out = []
    for p in fp.get("processors", []) or []:
        if isinstance(p, dict):
            out.append(f"{p.get('name')}: " + ("available" if p.get("available") else f"absent ({p.get('reason')})"))
    return "; ".join(out)


def environment(fs: list[explore.DeviceFolder]) -> pd.DataFrame:
    """One row per device x finding: the environment the finding's data was measured in."""
    rows = []
    for d in fs:
        for finding in d.findings:
            fp = d.fingerprints.get(finding, {})
            rows.append(dict(device_label=d.label, source=d.source, folder=d.folder, finding=finding,
                             device=fp.get("device", ""), device_slug=fp.get("device_slug", d.slug),
                             kind=fp.get("kind", ""), hostname=fp.get("hostname", ""),
                             cpu_model=fp.get("cpu_model", ""), logical_cpus=fp.get("logical_cpus"),
                             os=fp.get("os", ""), python=fp.get("python", ""), date=fp.get("date", ""),
                             profile=fp.get("profile", ""), seed=fp.get("seed"),
                             study_commit=fp.get("study_commit", ""), processors=_processors(fp),
                             core_groups=json.dumps(fp.get("core_groups", {}), default=str),
                             harness=json.dumps(fp.get("harness", {}), default=str),
                             libraries=json.dumps(fp.get("libraries", {}), default=str),
                             gpu=json.dumps(fp.get("nvidia_smi", {}), default=str)[:500]))
    return pd.DataFrame(rows)


def methods(fs: list[explore.DeviceFolder]) -> pd.DataFrame:
    frames = []
    for d in fs:
        t = d.read("rigor", "methods")
        if t is None:
            frames.append(pd.DataFrame([dict(device_label=d.label, practice="(all)", status="not measured",
                                             how="stage rigor produced no data on this device")]))
            continue
        frames.append(t[["practice", "status", "how"]].assign(device_label=d.label))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return df[["device_label", "practice", "status", "how"]] if len(df) else df


def analyse(ctx, evidence: pd.DataFrame) -> dict[str, pd.DataFrame]:
    fs = folders(ctx)
    tables_by_dev, missing = per_device_tables(evidence)
    alpha = ctx.params.get("alpha", C.ALPHA)
    info = {d.label: C.device_info(d.fingerprint()) for d in fs}
    long = C.evaluate_devices(tables_by_dev, alpha, missing, info)
    host = C.evaluate_devices(tables_by_dev, alpha, missing, info, form="host")
    src = {d.label: d for d in fs}
    long.insert(1, "device_slug", long["device_label"].map(lambda x: src[x].slug if x in src else x))
    long.insert(2, "source", long["device_label"].map(lambda x: src[x].source if x in src else ""))
    mine = this_label(ctx, fs)
    for df in (host,):
        df.insert(1, "device_slug", df["device_label"].map(lambda x: src[x].slug if x in src else x))
        df.insert(2, "source", df["device_label"].map(lambda x: src[x].source if x in src else ""))
    own = long[long["device_label"] == mine].drop(columns=["device_label", "device_slug", "source"])
    tables = {
        "claims": own.reset_index(drop=True),
        "claims_all": long,
        "claims_by_device": C.by_device(long, [d.label for d in fs]),
        "claims_host": host,
        "claims_host_by_device": C.by_device(host, [d.label for d in fs]) if len(host) else
        pd.DataFrame(columns=["claim", "finding", "paper_claim", "paper_value", "paper_setting"]),
        "sensitivity": C.sensitivity(long),
        "not_measured": not_measured(long, fs, missing),
        "environment": environment(fs),
        "methods": methods(fs),
        "devices": pd.DataFrame([{**d.row(), "this_device": d.label == mine} for d in fs]),
        "registry": C.registry_frame(),
    }
    for name, df in tables.items():
        ctx.write(df, table=name)
    return tables


# =========================================================================== plot
def _short(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"


def verdict_figure(long: pd.DataFrame, devices: list[str]):
    """Claims x devices, each cell coloured by its verdict, with the effect where measured."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from study import plotting

    ids = list(C.CLAIMS)
    codes = {v: i for i, v in enumerate(C.VERDICTS)}
    grid = np.full((len(ids), max(len(devices), 1)), codes["not measurable"], dtype=float)
    text = [["" for _ in range(max(len(devices), 1))] for _ in ids]
    for j, dev in enumerate(devices):
        sub = long[long["device_label"] == dev].set_index("claim")
        for i, cid in enumerate(ids):
            if cid in sub.index:
                r = sub.loc[cid]
                grid[i, j] = codes[r["verdict"]]
                text[i][j] = _short(r["effect"]) if r["verdict"] != "not measurable" else "n/m"
    fig, ax = plotting.figure(max(4.5, 1.6 + 1.5 * len(devices)), 0.42 * len(ids) + 1.6)
    ax.imshow(grid, cmap=ListedColormap([VERDICT_COLORS[v] for v in C.VERDICTS]), vmin=-0.5,
              vmax=len(C.VERDICTS) - 0.5, aspect="auto")
    for i in range(len(ids)):
        for j in range(len(devices)):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=8)
    ax.set_yticks(range(len(ids)), [f"{cid} ({C.CLAIMS[cid].finding})" for cid in ids], fontsize=8)
    ax.set_xticks(range(len(devices)), devices or ["(no device)"], rotation=20, ha="right", fontsize=8)
    ax.grid(False)
    ax.set_title("Verdict of each claim on each device (cell: effect; n/m: not measurable)", fontsize=9)
    ax.legend(handles=[Patch(color=VERDICT_COLORS[v], label=v) for v in C.VERDICTS], fontsize=7, ncol=4,
              loc="upper center", bbox_to_anchor=(0.5, -0.12 if len(devices) < 3 else -0.25), frameon=False)
    fig.tight_layout()
    return fig


def effects_figure(long: pd.DataFrame, devices: list[str]):
    """One panel per measured claim: every device's effect and 95% CI, the null (dotted)
    and the paper's value where it is on the same scale (dashed, red)."""
    from study import plotting

    m = long[long["effect"].notna() & (long["verdict"] != "not measurable")]
    ids = [cid for cid in C.CLAIMS if cid in set(m["claim"])]
    if not ids:
        fig, ax = plotting.figure(6.0, 1.6)
        ax.axis("off")
        ax.text(0.5, 0.5, "No claim has a measured effect on any device yet\n(see the claims table for the reasons)",
                ha="center", va="center", fontsize=10)
        return fig
    ncol = min(3, len(ids))
    nrow = math.ceil(len(ids) / ncol)
    fig, axes = plotting.figure(3.2 * ncol + 1.0, (0.4 * len(devices) + 1.6) * nrow + 0.4, nrows=nrow, ncols=ncol,
                                squeeze=False)
    ypos = {d: i for i, d in enumerate(devices)}
    for k, cid in enumerate(ids):
        ax = axes[k // ncol, k % ncol]
        c = C.CLAIMS[cid]
        for _, r in m[m["claim"] == cid].iterrows():
            y = ypos.get(r["device_label"], 0)
            lo, hi = r["ci_lo"], r["ci_hi"]
            xerr = None
            if not (np.isnan(lo) or np.isnan(hi)):
                xerr = [[max(r["effect"] - lo, 0)], [max(hi - r["effect"], 0)]]
            ax.errorbar(r["effect"], y, xerr=xerr, fmt="o", color=VERDICT_COLORS[r["verdict"]], ecolor="black",
                        elinewidth=0.8, capsize=2, ms=6)
        nulls = m.loc[m["claim"] == cid, "null"].dropna()
        if len(nulls):
            ax.axvline(float(nulls.iloc[0]), color="#777777", ls=":", lw=1)
        for lab, v in c.reference.items():
            plotting.mark_paper(ax, v, lab, axis="x")
        ax.set_yticks(range(len(devices)), devices if k % ncol == 0 else [""] * len(devices), fontsize=7)
        ax.set_ylim(-0.6, len(devices) - 0.4)
        hyp = m.loc[m["claim"] == cid, "hypothesis"]
        ax.set_title(f"{cid}: {hyp.iloc[0] if len(hyp) else c.hypothesis}", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    for k in range(len(ids), nrow * ncol):
        axes[k // ncol, k % ncol].axis("off")
    fig.suptitle(textwrap.fill("Effects with 95% CIs per device (colour: verdict; dotted: null or threshold of the "
                               "test; red dashed: the paper's value)", int((3.2 * ncol + 1.0) * 13)), fontsize=9)
    fig.tight_layout()
    return fig


def sensitivity_figure(sens: pd.DataFrame, devices: list[str]):
    """Each measured claim's verdict (by its interval and the declared margin) across the
    range of thresholds the registry declares; the declared threshold is outlined."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from study import plotting

    ids = [c for c in C.CLAIMS if C.CLAIMS[c].sensitivity]
    rows = [(d, cid) for d in devices for cid in ids if len(sens) and
            ((sens["device_label"] == d) & (sens["claim"] == cid)).any()]
    ncol = max((len(C.CLAIMS[c].sensitivity) for c in ids), default=1)
    fig, ax = plotting.figure(max(5.0, 1.2 * ncol + 3.0), 0.38 * max(len(rows), 1) + 1.6)
    codes = {v: i for i, v in enumerate(C.VERDICTS)}
    grid = np.full((max(len(rows), 1), ncol), codes["not measurable"], dtype=float)
    for i, (d, cid) in enumerate(rows):
        g = sens[(sens["device_label"] == d) & (sens["claim"] == cid)].reset_index(drop=True)
        for j, r in g.iterrows():
            grid[i, j] = codes[r["verdict"]]
            ax.text(j, i, f"{r['threshold']:g}", ha="center", va="center", fontsize=7,
                    fontweight="bold" if r["declared"] else "normal")
            if r["declared"]:
                ax.add_patch(_rect(j, i))
    ax.imshow(grid, cmap=ListedColormap([VERDICT_COLORS[v] for v in C.VERDICTS]), vmin=-0.5,
              vmax=len(C.VERDICTS) - 0.5, aspect="auto")
    ax.set_yticks(range(max(len(rows), 1)), [f"{cid} on {d}" for d, cid in rows] or ["(no measured claim)"],
                  fontsize=7)
    ax.set_xticks([])
    ax.grid(False)
    ax.set_title(textwrap.fill("Verdict of each measured claim (paper form) at each threshold of its declared range "
                               "(cell text: threshold; outlined bold: the declared one; CI rule with the declared "
                               "margin, Holm not re-run)", 110), fontsize=8)
    ax.legend(handles=[Patch(color=VERDICT_COLORS[v], label=v) for v in C.VERDICTS[:3]], fontsize=7, ncol=3,
              loc="upper center", bbox_to_anchor=(0.5, -0.02), frameon=False)
    fig.tight_layout()
    return fig


def _rect(j, i):
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.5, ec="black")


# --- each finding's main result, faceted by device ---------------------------------------
def _yerr(df: pd.DataFrame, value: str, lo: str, hi: str) -> list[pd.Series]:
    """Asymmetric error bars of column ``value`` from its interval columns (never negative)."""
    return [(df[value] - df[lo]).clip(lower=0), (df[hi] - df[value]).clip(lower=0)]


def _bars_with_ci(ax, df: pd.DataFrame, value: str, lo: str, hi: str, colors: list[str]) -> np.ndarray:
    """One bar per row of ``df`` with its 95% interval; returns the bars' positions."""
    x = np.arange(len(df))
    ax.bar(x, df[value], color=colors)
    ax.errorbar(x, df[value], yerr=_yerr(df, value, lo, hi), fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    return x


def _panel_rigor(ax, tables: dict[str, pd.DataFrame]) -> bool:
    cs = tables["coverage_summary"]
    lab = ["harness CI" if "order" in str(i) else "rerun interval" for i in cs["interval"]]
    ax.bar(range(len(cs)), cs["share"], color=["#4C72B0", "#DD8452"][: len(cs)])
    for i, r in enumerate(cs.itertuples()):
        ax.text(i, r.share + 0.02, f"{int(r.inside)}/{int(r.configs)}", ha="center", fontsize=7)
    ax.axhline(float(cs["target"].iloc[0]), color="#777777", ls=":", lw=1)
    ax.set_xticks(range(len(cs)), lab, fontsize=7)
    ax.set_ylim(0, 1.1)
    return True


def _panel_operator_support(ax, tables: dict[str, pd.DataFrame]) -> bool:
    from study.plotting import mark_paper

    co = tables["coexec"]
    rep = "tflite graph" if (co["representation"] == "tflite graph").any() else co["representation"].iloc[0]
    s = co[co["representation"] == rep].drop_duplicates("model")
    ax.bar(range(len(s)), s["unsplittable_count_share"], color="#4C72B0")
    ax.set_xticks(range(len(s)), s["model"], rotation=60, ha="right", fontsize=6)
    ax.set_ylim(0, 1.02)
    ax.axhline(C.CLAIMS["C1"].null, color="#777777", ls=":", lw=1)
    for lab, v in C.CLAIMS["C1"].reference.items():
        mark_paper(ax, v, lab)
    return True


def _panel_mulayer_overhead(ax, tables: dict[str, pd.DataFrame]) -> bool:
    from study.plotting import mark_paper

    sd = tables["slowdown"]
    sd = sd[sd["reference"] == "best single"]
    if "variant" in sd and (sd["variant"] == "best r").any():
        sd = sd[sd["variant"] == "best r"]
    sd = sd.sort_values("ratio").drop_duplicates("model").sort_values("model")
    if sd.empty:
        return False
    x = np.arange(len(sd))
    ax.errorbar(x, sd["ratio"], yerr=_yerr(sd, "ratio", "ci_lo", "ci_hi"), fmt="o", color="#8172B3", ecolor="black",
                elinewidth=0.8, capsize=2)
    ax.axhline(1.0, color="#777777", ls=":", lw=1)
    for lab, v in C.CLAIMS["C3"].reference.items():
        mark_paper(ax, v, lab)
    ax.set_xticks(x, sd["model"], rotation=60, ha="right", fontsize=6)
    return True


def _panel_contention(ax, tables: dict[str, pd.DataFrame]) -> bool:
    sd = tables["slowdown"]
    sd = sd[sd["available"].map(C._is_true) & sd["slowdown"].notna()]
    # the C5 form: competitors of the processor's own kind on the same cores (and the no-competitor baseline)
    own = sd[(sd["kind"] == sd["processor"]) & (sd["placement"].isin(["same"]))]
    base = sd[sd["kind"] == "none"]
    drew = False
    for sut, g in pd.concat([base, own]).groupby("sut", sort=True):
        g = g.sort_values("n_competitors")
        ax.errorbar(g["n_competitors"], g["slowdown"], yerr=_yerr(g, "slowdown", "ci_lo", "ci_hi"), fmt="o-", ms=4,
                    capsize=2, lw=1, label=sut)
        drew = True
    if drew:
        ax.axhline(1.0, color="#777777", ls=":", lw=1)
        ax.set_xlabel("competing processes", fontsize=7)
        ax.legend(fontsize=6)
    return drew


def _panel_profiling_error(ax, tables: dict[str, pd.DataFrame]) -> bool:
    er = tables["errors"]
    colors = {"offline": "#4C72B0", "runtime": "#DD8452"}
    x = _bars_with_ci(ax, er, "mape_pct", "mape_lo", "mape_hi", [colors.get(f, "#937860") for f in er["family"]])
    ax.set_xticks(x, er["estimator"], rotation=60, ha="right", fontsize=6)
    return True


def _panel_frame_reuse(ax, tables: dict[str, pd.DataFrame]) -> bool:
    cm = tables["c8_by_mechanism"]
    if (cm["models"] == "all models").any():
        cm = cm[cm["models"] == "all models"]
    x = _bars_with_ci(ax, cm, "reduction", "red_ci_lo", "red_ci_hi",
                      [VERDICT_COLORS.get(v, "#937860") for v in cm["verdict"]])
    ax.axhline(C.CLAIMS["C8"].null, color="#777777", ls=":", lw=1)
    ax.set_xticks(x, cm["mechanism"] + " / " + cm["processor"], rotation=30, ha="right", fontsize=7)
    return True


def panel_spec(finding: str):
    """A finding's panel: its ``study.stages`` entry's ``Panel`` (tables, title, y label) drawn
    by ``_panel_<finding>`` here or by the finding module's own ``paper_panel(ax, tables) ->
    bool`` (called only where each of the tables has rows); None where it has neither."""
    spec = stages.BY_NAME[finding].panel if finding in stages.BY_NAME else None
    if spec is None:
        return None
    fn = globals().get(f"_panel_{finding}")
    if fn is None:
        try:
            mod = importlib.import_module(stages.module_of(finding))
        except Exception:  # noqa: BLE001 - a finding not built (or not importable here) has no panel
            return None
        fn = getattr(mod, "paper_panel", None)
        if fn is None:
            return None
    return list(spec.tables), spec.title, spec.ylabel, fn


def faceted_figure(finding: str, fs: list[explore.DeviceFolder]):
    """The finding's main panel, one facet per device that has its tables (None if none)."""
    from study import plotting

    spec = panel_spec(finding)
    if spec is None:
        return None
    names, title, ylabel, draw = spec
    have = []
    for d in fs:
        t = {n: d.read(finding, n) for n in names}
        if all(v is not None for v in t.values()):
            have.append((d, t))
    if not have:
        return None
    ncol = min(3, len(have))
    nrow = math.ceil(len(have) / ncol)
    fig, axes = plotting.figure(2.6 * ncol + 1.0, 2.9 * nrow + 0.4, nrows=nrow, ncols=ncol, squeeze=False,
                                sharey=True)
    drew = False
    for k, (d, t) in enumerate(have):
        ax = axes[k // ncol, k % ncol]
        try:
            ok, why = not any(v.empty for v in t.values()) and bool(draw(ax, t)), "no rows"
        except Exception as e:  # noqa: BLE001 - a finding's table changed shape: say so, keep the report
            ok, why = False, f"could not draw: {type(e).__name__}: {e}"[:120]
            warnings.warn(f"paper: {finding} panel for {d.label}: {why}", stacklevel=2)
        drew |= ok
        ax.set_title(f"{d.label}\n({d.source})", fontsize=8)
        if not ok:
            ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, fontsize=7, wrap=True)
        if k % ncol == 0:
            ax.set_ylabel(ylabel, fontsize=8)
    for k in range(len(have), nrow * ncol):
        axes[k // ncol, k % ncol].axis("off")
    width = 2.6 * ncol + 1.0
    fig.suptitle(textwrap.fill(f"{finding}: {title}", int(width * 13)), fontsize=9)
    fig.tight_layout()
    return fig if drew else None


def plot(ctx, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    fs = folders(ctx)
    devs = [d.label for d in fs]
    long = tables["claims_all"]
    figs = {"verdicts": verdict_figure(long, devs), "effects": effects_figure(long, devs),
            "sensitivity": sensitivity_figure(tables.get("sensitivity", C.sensitivity(long)), devs)}
    for finding in ("rigor",) + tuple(C.findings()):
        f = faceted_figure(finding, fs)
        if f is not None:
            figs[f"{finding}_by_device"] = f
    for name, f in figs.items():
        ctx.save(f, name)
        plt.close(f)
    return figs


def figure_files(ctx) -> dict[str, Path]:
    """The PNG files of this stage's figures (for the notebook and the report)."""
    d = paths.figures_dir(ctx.device_spec, FINDING, Path(ctx.figures_root))
    return {p.stem: p for p in sorted(d.glob("*.png")) if p.stem != "report"}


# =========================================================================== metrics, report, run
def write_metrics(ctx, tables: dict[str, pd.DataFrame], root: Path | None = None) -> dict[str, Path]:
    """``metrics/<device>/paper.json`` (dvc metrics) and ``paper_claims.csv`` (dvc plots)."""
    root = Path(root or getattr(ctx, "metrics_root", METRICS))
    long = tables["claims_all"]
    mj = metrics_file(ctx.device_spec, root)
    mj.parent.mkdir(parents=True, exist_ok=True)
    mj.write_text(json.dumps(C.metrics(long, tables.get("claims_host")), indent=2, sort_keys=False) + "\n")
    pc = plots_file(ctx.device_spec, root)
    cols = ["claim", "device_label", "source", "verdict", "effect", "ci_lo", "ci_hi", "p_holm", "n"]
    long[cols].rename(columns={"device_label": "device"}).to_csv(pc, index=False, float_format="%.6g")
    return {"metrics": mj, "plots": pc}


def report(ctx, files: dict[str, Path]) -> Path:
    """The self-contained HTML report, rendered from the files this stage wrote."""
    from study import report as R

    data_dir = paths.aux_dir(ctx.device_spec, FINDING, Path(ctx.data_root))
    fig_dir = paths.figures_dir(ctx.device_spec, FINDING, Path(ctx.figures_root))
    finding_figs = {}
    if ctx.params.get("finding_figures", True):
        for finding in ("rigor",) + tuple(C.findings()):
            d = paths.figures_dir(ctx.device_spec, finding, Path(ctx.figures_root))
            pngs = sorted(d.glob("*.png")) if d.is_dir() else []
            if pngs:
                finding_figs[finding] = pngs
    return R.build(data_dir, fig_dir, fig_dir / "report.html", files["metrics"],
                   title=ctx.params.get("report_title", TITLE), finding_figures=finding_figs,
                   stage_params={k: v for k, v in ctx.params.items()}, made_on=_fingerprint(ctx))


def run(ctx) -> dict[str, Any]:
    _fingerprint(ctx)
    ctx.write_fingerprint()
    evidence = measure(ctx)
    tables = analyse(ctx, evidence)
    figs = plot(ctx, tables)
    files = write_metrics(ctx, tables)
    files["report"] = report(ctx, files)
    return {"data": evidence, "tables": tables, "figures": figs, "figure_files": figure_files(ctx), "files": files}
