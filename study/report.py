"""The paper's HTML report: one self-contained file a person opens in a browser.

Rendered only from files the pipeline wrote (the paper stage's tables under
``data/<device>/paper/``, its metrics JSON, the PNG figures): every number in the text is
read from them, never typed in. Figures are embedded as base64 PNG, styles are inline,
there is no script and no external resource, so the file can be mailed or archived alone.

Sections: summary (verdict counts per device), the claims table with one column per
device, the claims per device (effect, 95% CI, p and Holm-adjusted p, n, the paper's
value, verdict, reason), figures (cross-device, then this machine's per finding), what
could not be measured and why, environment per device, methods per device, the claims
registry, provenance.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from study import claims as C

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1200px;
 padding:1.2em 2em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:.2em}
h3{margin-top:1.4em} .meta{color:#666;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.82em;width:100%}
th,td{border:1px solid #ddd;padding:.3em .45em;text-align:left;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:0} td.num{text-align:right;font-variant-numeric:tabular-nums}
.v-reproduced{background:#dff0d8} .v-contradicted{background:#f2dede} .v-inconclusive{background:#fcf8e3}
.v-not-measurable{background:#eeeeee;color:#555}
figure{margin:1em 0 2em} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555} nav ul{columns:2} code{background:#f6f6f6;padding:0 .2em}
details{margin:.4em 0} .small{font-size:.8em;color:#555} .reason{max-width:40em}
"""


def esc(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return html.escape(str(v))


def num(v: Any, digits: int = 3) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return esc(v)
    if np.isnan(f):
        return ""
    return f"{f:.{digits}g}"


def vclass(verdict: str) -> str:
    v = str(verdict).split(":")[0].strip()
    return "v-" + v.replace(" ", "-") if v in C.VERDICTS else ""


def slug(s: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in str(s)).strip("-").lower()


def table(df: pd.DataFrame, cols: list[str] | None = None, headers: Mapping[str, str] | None = None,
          numeric: Iterable[str] = (), verdict_cols: Iterable[str] = (), row_attrs=None,
          cell_class: Mapping[str, str] | None = None) -> str:
    """An HTML table of ``df`` (escaped); ``row_attrs(row) -> dict`` adds data attributes."""
    cols = [c for c in (cols or list(df.columns)) if c in df.columns]
    headers = headers or {}
    numeric, verdict_cols, cell_class = set(numeric), set(verdict_cols), dict(cell_class or {})
    out = ["<table><thead><tr>" + "".join(f"<th>{esc(headers.get(c, c))}</th>" for c in cols) + "</tr></thead><tbody>"]
    for _, r in df.iterrows():
        attrs = "".join(f' {k}="{esc(v)}"' for k, v in (row_attrs(r) if row_attrs else {}).items())
        cells = []
        for c in cols:
            cls = []
            if c in numeric:
                cls.append("num")
            if c in verdict_cols:
                cls.append(vclass(r[c]))
            if c in cell_class:
                cls.append(cell_class[c])
            val = num(r[c]) if c in numeric else esc(r[c])
            cells.append(f'<td class="{" ".join(x for x in cls if x)}">{val}</td>' if any(cls) else f"<td>{val}</td>")
        out.append(f"<tr{attrs}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def _read(d: Path, name: str) -> pd.DataFrame:
    f = d / f"{name}.parquet"
    return pd.read_parquet(f) if f.is_file() else pd.DataFrame()


PAPER_FIGURES = {
    "verdicts": "Verdict of every claim on every device (cell text: the effect where measured).",
    "effects": "Effect and 95% CI of every measured claim, one panel per claim, one row per device; dotted: the "
               "null or threshold of the test; red dashed: the paper's value where it is on the same scale.",
}


SECTIONS = [("summary", "Summary"), ("claims", "Claims across devices"),
            ("host", "Host forms (never deciding a claim)"), ("detail", "Claims per device"),
            ("figures", "Figures"), ("not-measured", "What could not be measured, and why"),
            ("environment", "Environment of each device"), ("methods", "Methods per device"),
            ("registry", "The paper's claims"), ("provenance", "Provenance")]


def _rows_of(df: pd.DataFrame, dev: str) -> pd.DataFrame:
    return df[df["device_label"] == dev] if len(df) else df


def _by_device(df: pd.DataFrame, labels: list[str], empty: str, body) -> list[str]:
    """For each device: its heading, then ``body(its rows of df)`` (HTML parts), or ``empty``
    where it has none."""
    parts = []
    for dev in labels:
        g = _rows_of(df, dev)
        parts.append(f"<h3>{esc(dev)}</h3>")
        parts += [empty] if g.empty else body(g)
    return parts


def _head(title: str, made_on: Mapping[str, Any]) -> list[str]:
    """The document's head, title, what it reproduces and how it was made, and the contents."""
    return [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
            f"<h1>{esc(title)}</h1>",
            "<p class=\"meta\">A reproduction of Liu et al., <i>Deep Learning Inference on Heterogeneous "
            "Mobile Processors: Potentials and Pitfalls</i> (arXiv 2405.01851, 2024). Generated by the "
            "<code>paper</code> "
            f"stage on {esc(made_on.get('device_slug', ''))} ({esc(made_on.get('device', ''))}), "
            f"{esc(_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}, study commit "
            f"<code>{esc(str(made_on.get('study_commit', ''))[:12])}</code>. The paper's values appear only as "
            "the comparison column and as red reference marks; every other number was measured by this study."
            "</p>",
            "<nav><ul>" + "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t in SECTIONS) + "</ul></nav>"]


def _device_counts(dev: str, m: Mapping[str, Any]) -> list[str]:
    """One device's provenance line (where the metrics have one) and verdict counts."""
    cnt = m.get("counts", {})
    prov = m.get("provenance", {})
    out = []
    if prov:
        out.append(f"<p class=\"small\"><b>{esc(dev)}</b>: {esc(prov.get('device_class', ''))}; profile "
                   f"{esc(prov.get('profile', ''))}; at least {prov.get('independent_runs', 1)} independent "
                   "run(s) (fresh processes) pooled into each measured claim's interval"
                   + (" (" + esc(", ".join(f"{c}: {n}" for c, n in prov["runs_per_claim"].items())) + ")"
                      if prov.get("runs_per_claim") else "")
                   + ". These verdicts are about this device class only.</p>")
    out.append(f"<p>On <b>{esc(dev)}</b>: {cnt.get('reproduced', 0)} of {cnt.get('claims', 0)} claims "
               f"reproduced, {cnt.get('contradicted', 0)} contradicted, {cnt.get('inconclusive', 0)} "
               f"inconclusive, {cnt.get('not_measurable', 0)} not measurable on this device.</p>")
    return out


def _summary(metrics: Mapping[str, Any], metrics_path: Path | None, devs: pd.DataFrame) -> list[str]:
    """Verdict counts per device, read from the metrics file, and the verdict rule."""
    parts = ['<h2 id="summary">Summary</h2>']
    if metrics:
        rows = []
        for dev, m in metrics.items():
            cnt = m.get("counts", {})
            rows.append(dict(device=dev, claims=cnt.get("claims"), reproduced=cnt.get("reproduced"),
                             contradicted=cnt.get("contradicted"), inconclusive=cnt.get("inconclusive"),
                             not_measurable=cnt.get("not_measurable")))
        sm = pd.DataFrame(rows)
        src = dict(zip(devs.get("device_label", []), devs.get("source", []))) if len(devs) else {}
        sm.insert(1, "source", sm["device"].map(lambda d: src.get(d, "")))
        parts.append("<p>Verdicts per device (from <code>" + esc(Path(metrics_path).name) + "</code>, the file "
                     "<code>dvc metrics show</code> reads):</p>")
        parts.append(table(sm, headers={"not_measurable": "not measurable"},
                           numeric=["claims", "reproduced", "contradicted", "inconclusive", "not_measurable"]))
        for dev, m in metrics.items():
            parts += _device_counts(dev, m)
    else:
        parts.append("<p>No metrics file was found.</p>")
    parts.append("<p class=\"small\">Verdict rule: <i>reproduced</i> when the 95% CI lies entirely on the claimed "
                 "side of the null (and, where the test has a p-value, the Holm-adjusted p across the claims of that "
                 "device is below the error rate); <i>contradicted</i> when the CI lies entirely on the other side; "
                 "<i>inconclusive</i> otherwise; <i>not measurable</i> with the reason when the device lacks the "
                 "processor, the stage did not run, or the finding wrote no row.</p>")
    return parts


def _claims_tables(wide: pd.DataFrame, host_wide: pd.DataFrame, labels: list[str]) -> list[str]:
    """The claims with one verdict column per device, then the host forms apart."""
    parts = ['<h2 id="claims">Claims across devices</h2>']
    if len(wide):
        cols = ["claim", "finding", "paper_claim", "paper_value"] + [d for d in labels if d in wide.columns]
        parts.append(table(wide, cols, headers={"paper_claim": "claim (paper)", "paper_value": "paper's value"},
                           verdict_cols=labels, row_attrs=lambda r: {"data-claim": r["claim"]}))
    else:
        parts.append("<p>No claims table.</p>")
    parts.append('<h2 id="host">Host forms (never deciding a claim)</h2><p class="small">What a device without '
                 "the processors a claim's paper form needs measured instead (two CPU core groups for CPU+GPU, CPU "
                 "inference beside the app for GPU inference, engines for processors), with its own Holm family. "
                 "These rows are not the paper's claims.</p>")
    if len(host_wide):
        hcols = ["claim", "finding"] + [d for d in labels if d in host_wide.columns]
        parts.append(table(host_wide, hcols, verdict_cols=labels))
    else:
        parts.append("<p>No host-form rows.</p>")
    return parts


def _detail(long: pd.DataFrame, labels: list[str]) -> list[str]:
    """Each device's claims: effect, CI, p and Holm p, n, the paper's value, verdict and reason."""
    parts = ['<h2 id="detail">Claims per device</h2>']
    for dev in labels:
        g = _rows_of(long, dev)
        source = g["source"].iloc[0] if len(g) and "source" in g else ""
        parts.append(f'<h3 id="detail-{slug(dev)}">{esc(dev)} <span class="meta">({esc(source)})</span></h3>')
        g = g.assign(ci=[f"[{num(a)}, {num(b)}]" if not (pd.isna(a) or pd.isna(b)) else ""
                         for a, b in zip(g["ci_lo"], g["ci_hi"])],
                     paper=[f"{v}" + (f" ({s})" if s else "") for v, s in zip(g["paper_value"], g["paper_setting"])],
                     statistic=[("" if s == t else s) for s, t in zip(g["statistic"], g["text"])])
        parts.append(table(
            g, ["claim", "text", "statistic", "hypothesis", "effect", "ci", "p_value", "p_holm", "n", "paper",
                "verdict", "reason"],
            headers={"text": "measurable form tested", "ci": "95% CI", "p_value": "p", "p_holm": "p (Holm)",
                     "paper": "paper's value (setting)", "hypothesis": "claimed side"},
            numeric=["effect", "p_value", "p_holm", "n"], verdict_cols=["verdict"], cell_class={"reason": "reason"},
            row_attrs=lambda r, dev=dev: {"class": "claim-row", "data-device": dev, "data-claim": r["claim"],
                                          "data-verdict": r["verdict"]}))
    return parts


def _figures(fig_dir: Path, finding_figures: Mapping[str, list[Path]] | None) -> list[str]:
    """The paper stage's cross-device figures, then this machine's per finding."""
    parts = ['<h2 id="figures">Figures</h2><h3>Across devices</h3>']
    pngs = sorted(p for p in fig_dir.glob("*.png") if p.name != "report.png")
    order = {n: i for i, n in enumerate(PAPER_FIGURES)}
    pngs.sort(key=lambda p: (order.get(p.stem, len(order)), p.stem))
    for p in pngs:
        cap = PAPER_FIGURES.get(p.stem) or (f"{p.stem.replace('_by_device', '')}: the finding's main result, one "
                                            f"panel per device." if p.stem.endswith("_by_device") else p.stem)
        parts.append(f"<figure>{img(p, p.stem)}<figcaption>{esc(p.name)}: {esc(cap)}</figcaption></figure>")
    if not pngs:
        parts.append("<p>No figures.</p>")
    for finding, files in (finding_figures or {}).items():
        parts.append(f"<h3>{esc(finding)} (this machine)</h3>")
        for p in files:
            parts.append(f"<figure>{img(p, f'{finding} {p.stem}')}<figcaption>{esc(finding)}/{esc(p.name)}"
                         "</figcaption></figure>")
    return parts


def _not_measured_of(g: pd.DataFrame) -> list[str]:
    """One device's stages without data, claims not measurable and configurations the findings
    could not run (folded), with the reasons."""
    parts = []
    for kind, head in (("stage", "Stages without data"), ("claim", "Claims not measurable"),
                       ("configuration", "Configurations the findings could not run")):
        h = g[g["kind"] == kind]
        if h.empty:
            continue
        body = table(h, ["finding", "item", "reason"], cell_class={"reason": "reason"})
        if kind == "configuration":
            parts.append(f"<details><summary>{esc(head)} ({len(h)})</summary>{body}</details>")
        else:
            parts.append(f"<p><b>{esc(head)}</b> ({len(h)})</p>{body}")
    return parts


def _not_measured(nm: pd.DataFrame, labels: list[str]) -> list[str]:
    return (['<h2 id="not-measured">What could not be measured, and why</h2>']
            + _by_device(nm, labels, "<p>Everything the parameters asked for was measured.</p>", _not_measured_of))


def _device_facts(latest: pd.Series) -> list[str]:
    """One device's latest fingerprint: its facts and library versions."""
    facts = [("device", latest["device"]), ("device id (slug)", latest["device_slug"]), ("kind", latest["kind"]),
             ("CPU", latest["cpu_model"]), ("logical CPUs", latest["logical_cpus"]), ("OS", latest["os"]),
             ("Python", latest["python"]), ("processors", latest["processors"]),
             ("core groups", latest["core_groups"]), ("GPU (nvidia-smi)", latest["gpu"])]
    parts = [table(pd.DataFrame(facts, columns=["what", "value"]))]
    try:
        libs = json.loads(latest["libraries"] or "{}")
    except ValueError:
        libs = {}
    if libs:
        parts.append("<details><summary>Library versions</summary>"
                     + table(pd.DataFrame(sorted(libs.items()), columns=["library", "version"])) + "</details>")
    return parts


def _environment_of(g: pd.DataFrame) -> list[str]:
    """One device's latest fingerprint, then the fingerprint of each finding run on it."""
    return _device_facts(g.sort_values("date").iloc[-1]) + [
        table(g, ["finding", "date", "profile", "seed", "study_commit", "harness"],
              headers={"harness": "harness settings"})]


def _environment(env: pd.DataFrame, labels: list[str]) -> list[str]:
    return (['<h2 id="environment">Environment of each device</h2>']
            + _by_device(env, labels, "<p>No fingerprint: no finding ran on this device.</p>", _environment_of))


def _methods(meth: pd.DataFrame, labels: list[str]) -> list[str]:
    return (['<h2 id="methods">Methods per device</h2><p class="small">Each measurement practice of '
             "docs/methods.md as the <code>rigor</code> stage applied it on the device: applied, not applicable "
             "(why) or unavailable.</p>"]
            + _by_device(meth, labels, "<p>No methods table.</p>", lambda g: [table(g, ["practice", "status", "how"])]))


def _registry(reg: pd.DataFrame) -> list[str]:
    return ['<h2 id="registry">The paper\'s claims</h2><p class="small">From docs/paper.md; the values are the '
            "paper's, shown for comparison only.</p>",
            table(reg, ["claim", "finding", "paper_claim", "paper_value", "paper_setting", "statistic",
                        "hypothesis"],
                  headers={"paper_claim": "claim", "paper_value": "paper's value", "paper_setting": "setting",
                           "statistic": "statistic that tests it", "hypothesis": "claimed side"})]


def _provenance(devs: pd.DataFrame, stage_params: Mapping[str, Any] | None) -> list[str]:
    parts = ['<h2 id="provenance">Provenance</h2>']
    if len(devs):
        parts.append(table(devs, ["device_label", "source", "folder", "path", "findings", "date"],
                           headers={"device_label": "device"}))
    if stage_params:
        parts.append("<p>Parameters of the paper stage:</p>"
                     + table(pd.DataFrame([(k, json.dumps(v, default=str)) for k, v in stage_params.items()],
                                          columns=["parameter", "value"])))
    return parts


def build(data_dir: Path, fig_dir: Path, out: Path, metrics_path: Path | None = None, title: str = "Report",
          finding_figures: Mapping[str, list[Path]] | None = None, stage_params: Mapping[str, Any] | None = None,
          made_on: Mapping[str, Any] | None = None) -> Path:
    """Render the report from the paper stage's files; returns its path."""
    data_dir, fig_dir, out = Path(data_dir), Path(fig_dir), Path(out)
    long = _read(data_dir, "claims_all")
    devs = _read(data_dir, "devices")
    reg = _read(data_dir, "registry")
    if reg.empty:
        reg = C.registry_frame()
    metrics = json.loads(Path(metrics_path).read_text()) if metrics_path and Path(metrics_path).is_file() else {}
    labels = list(devs["device_label"]) if len(devs) else list(dict.fromkeys(long.get("device_label", [])))
    parts = (_head(title, dict(made_on or {}))
             + _summary(metrics, metrics_path, devs)
             + _claims_tables(_read(data_dir, "claims_by_device"), _read(data_dir, "claims_host_by_device"), labels)
             + _detail(long, labels)
             + _figures(fig_dir, finding_figures)
             + _not_measured(_read(data_dir, "not_measured"), labels)
             + _environment(_read(data_dir, "environment"), labels)
             + _methods(_read(data_dir, "methods"), labels)
             + _registry(reg)
             + _provenance(devs, stage_params)
             + ["</body></html>"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
