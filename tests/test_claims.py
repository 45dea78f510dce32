"""The claims registry and the final verdicts, on synthetic claims tables."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from study import claims as C
from study import stages, stats


def row(claim, verdict, effect=np.nan, lo=np.nan, hi=np.nan, p=np.nan, reason="r", **extra):
    return {**dict(claim=claim, text=f"form of {claim}", statistic="s", effect=effect, ci_lo=lo, ci_hi=hi, p_value=p,
                   n=5, paper_value="x", verdict=verdict, reason=reason), **extra}


def table(*rows):
    return pd.DataFrame(list(rows))


def get(df, cid):
    return df[df["claim"] == cid].iloc[0]


CPU_ONLY = C.device_info({"device": "local", "kind": "local", "logical_cpus": 2, "profile": "quick",
                          "harness": {"below_floors": True},
                          "processors": [{"name": "cpu", "available": True, "reason": ""},
                                         {"name": "gpu", "available": False, "reason": "no GPU usable (test)"},
                                         {"name": "npu", "available": False, "reason": "no NPU (test)"}]})
GPU_HOST = C.device_info({"device": "local", "kind": "local", "logical_cpus": 16, "profile": "reference",
                          "nvidia_smi": {"name": "NVIDIA H100"},
                          "processors": [{"name": "cpu", "available": True, "reason": ""},
                                         {"name": "gpu", "available": True, "reason": ""},
                                         {"name": "npu", "available": False, "reason": "no NPU (test)"}]})


def test_registry_covers_the_paper():
    assert list(C.CLAIMS) == [f"C{i}" for i in range(1, 12)]   # C11: this study's own
    for c in C.CLAIMS.values():
        assert c.text and c.statistic and c.paper_value
        assert c.finding in stages.with_notebook(), c
        assert c.direction in ("greater", "less", "all hold")
        assert (c.null is None) == (c.direction == "all hold")
    assert C.CLAIMS["C1"].reference == {"paper 48%": 0.48}
    assert C.CLAIMS["C9"].finding == "paper"
    assert set(C.C9_COMPONENTS) <= set(C.CLAIMS)
    assert C.findings() == ["operator_support", "mulayer_overhead", "contention", "profiling_error", "frame_reuse",
                            "cross_level", "adaptive_runtime"]
    # every threshold, margin and test declared in advance, each with its justification
    for c in C.CLAIMS.values():
        assert c.test, c.id
        if c.direction != "all hold":
            assert c.null_why and c.margin_why and c.margin >= 0 and c.sensitivity, c.id
    for cid in ("C2", "C3", "C4", "C5", "C6", "C9", "C10"):
        assert C.CLAIMS[cid].needs, cid
    reg = C.registry_frame()
    assert len(reg) == 11 and reg["hypothesis"].str.len().min() > 3


def test_missing_stage_and_missing_row_are_not_measurable_with_the_reason():
    out = C.evaluate({"operator_support": table(row("C1", "reproduced", 0.6, 0.55, 0.65, p=1e-4)),
                      "mulayer_overhead": table(row("C3", "reproduced", 2.0, 1.5, 2.5, p=1e-4))})
    assert list(out["claim"]) == list(C.CLAIMS)
    c2 = get(out, "C2")
    assert c2["verdict"] == "not measurable"
    assert c2["reason"] == "stage mulayer_overhead wrote no row for C2 on this device"
    c5 = get(out, "C5")
    assert c5["verdict"] == "not measurable" and c5["reason"] == "stage contention produced no data on this device"
    # the paper's value is never an effect
    assert np.isnan(c5["effect"]) and c5["paper_value"] == C.CLAIMS["C5"].paper_value
    out = C.evaluate({}, missing={"contention": "stage contention: no display here"})
    assert get(out, "C6")["reason"] == "stage contention: no display here"
    assert (out["verdict"] == "not measurable").all() and (out["reason"].str.len() > 0).all()


def test_holm_over_every_decided_claim_and_margins():
    tables = {
        "mulayer_overhead": table(row("C3", "reproduced", 2.0, 1.5, 2.5, p=0.001),
                                  row("C4", "reproduced", 0.2, 0.1, 0.3, p=0.03)),
        "contention": table(row("C5", "reproduced", 3.0, 2.0, 4.0, p=0.005),
                            row("C6", "contradicted", -0.1, -0.2, -0.05, p=0.9)),
        # a decided claim without a p-value still counts in the family (as p = 1)
        "profiling_error": table(row("C7", "inconclusive", 0.1, -0.5, 0.7)),
        "frame_reuse": table(row("C8", "not measurable", reason="no camera")),
    }
    out = C.evaluate(tables)
    # C9 (C3 reproduced, C7 inconclusive: inconclusive) is decided too, its p the larger component's (1)
    ps = [0.001, 0.03, 0.005, 0.9, 1.0, 1.0]
    adj = stats.holm(ps)
    got = [get(out, c)["p_holm"] for c in ("C3", "C4", "C5", "C6", "C7", "C9")]
    np.testing.assert_allclose(got, adj)
    assert get(out, "C3")["verdict"] == "reproduced" and get(out, "C5")["verdict"] == "reproduced"
    c4 = get(out, "C4")
    assert c4["verdict"] == "inconclusive" and c4["finding_verdict"] == "reproduced"
    assert "Holm-adjusted p" in c4["reason"] and "6 claims decided" in c4["reason"]   # C9 counts too
    assert get(out, "C6")["verdict"] == "contradicted" and not np.isnan(get(out, "C6")["p_holm"])
    c8 = get(out, "C8")
    assert c8["verdict"] == "not measurable" and c8["reason"].startswith("no camera") and np.isnan(c8["p_holm"])
    # every reproduced or contradicted verdict has a Holm-adjusted p
    dec = out[out["verdict"].isin(["reproduced", "contradicted"])]
    assert len(dec) and dec["p_holm"].notna().all()


def test_contradicted_needs_the_declared_margin():
    # C3: contradicted needs the CI below 1 - 0.10; [0.92, 0.98] is below 1 but within the margin
    out = C.evaluate({"mulayer_overhead": table(row("C3", "contradicted", 0.95, 0.92, 0.98, p=0.99))})
    c3 = get(out, "C3")
    assert c3["verdict"] == "inconclusive" and "margin declared in advance" in c3["reason"]
    out = C.evaluate({"mulayer_overhead": table(row("C3", "contradicted", 0.7, 0.6, 0.8, p=0.99))})
    assert get(out, "C3")["verdict"] == "contradicted"


def test_reproduced_needs_a_p_value_and_its_ci_on_the_claimed_side():
    out = C.evaluate({"operator_support": table(row("C1", "reproduced", 0.6, 0.6, 0.6))})
    assert get(out, "C1")["verdict"] == "inconclusive" and "no p-value" in get(out, "C1")["reason"]
    out = C.evaluate({"operator_support": table(row("C1", "reproduced", 0.3, 0.2, 0.4, p=1e-4))})
    assert get(out, "C1")["verdict"] == "inconclusive" and "not on the claimed side" in get(out, "C1")["reason"]


def test_primary_row_and_disagreeing_rows():
    t = table(row("C1", "contradicted", 0.1, 0.1, 0.1, p=1.0, primary=False, representation="onnx"),
              row("C1", "reproduced", 0.6, 0.55, 0.65, p=1e-4, primary=True, representation="tflite"))
    out = C.evaluate({"operator_support": t})
    c1 = get(out, "C1")
    assert c1["verdict"] == "reproduced" and c1["effect"] == 0.6 and c1["rows"] == 2
    assert "primary row of 2" in c1["reason"]
    t = table(row("C2", "reproduced", 1.5, 1.4, 1.6, p=1e-4), row("C2", "contradicted", 1.0, 0.95, 1.02, p=1.0))
    c2 = get(C.evaluate({"mulayer_overhead": t}), "C2")
    assert c2["verdict"] == "inconclusive" and "disagree" in c2["reason"]
    # rows that agree: the first stands for the claim
    t2 = table(row("C2", "not measurable", reason="gpu absent"), row("C2", "reproduced", 1.5, 1.4, 1.6, p=1e-4),
               row("C2", "reproduced", 1.6, 1.5, 1.7, p=1e-4))
    c2 = get(C.evaluate({"mulayer_overhead": t2}), "C2")
    assert c2["verdict"] == "reproduced" and c2["effect"] == 1.5 and "2 measurable rows agree" in c2["reason"]


def test_invalid_verdict_and_missing_reason():
    out = C.evaluate({"cross_level": table(row("C10", "maybe", 0.9, 0.8, 1.0, reason=""))})
    c = get(out, "C10")
    assert c["verdict"] == "inconclusive" and "no valid verdict" in c["reason"]


def test_finding_threshold_and_direction_replace_the_registry():
    out = C.evaluate({"frame_reuse": table(row("C8", "reproduced", 0.8, 0.6, 0.9, p=1e-4, threshold=0.3,
                                               direction="greater"))})
    c = get(out, "C8")
    assert c["null"] == 0.3 and c["hypothesis"] == "effect > 0.3" and c["verdict"] == "reproduced"
    out = C.evaluate({"frame_reuse": table(row("C8", "reproduced", 0.8, 0.6, 0.9, p=1e-4))})
    assert get(out, "C8")["null"] == C.CLAIMS["C8"].null


# --------------------------------------------------------------------------- paper form vs host form
def host_and_paper_tables(gpu: bool):
    """Finding tables as a CPU-only host (paper rows not measurable, host rows measured) or a
    GPU host (paper rows measured) writes them."""
    nm = "not measurable"
    if gpu:
        mul = table(row("C2", "reproduced", 1.4, 1.3, 1.5, p=1e-4, form="paper"),
                    row("C3", "reproduced", 2.0, 1.8, 2.2, p=1e-4, form="paper"),
                    row("C4", "reproduced", 0.2, 0.1, 0.3, p=1e-4, form="paper"),
                    row("C9", "reproduced", 2.0, 1.8, 2.2, p=1e-4, form="paper", threshold=1.1))
        con = table(row("C5", "reproduced", 3.0, 2.0, 4.0, p=1e-4, form="paper"),
                    row("C6", "reproduced", 40.0, 30.0, 50.0, p=1e-4, form="paper"),
                    row("C6", "reproduced", 60.0, 50.0, 70.0, p=1e-4, form="host"))
        cross = table(row("C10", "reproduced", 0.5, 0.45, 0.55, p=1e-4, form="paper"))
    else:
        mul = table(row("C2", nm, reason="CPU+GPU absent: test", form="paper"),
                    row("C2", "reproduced", 1.4, 1.3, 1.5, p=1e-4, form="host"),
                    row("C3", nm, reason="CPU+GPU absent: test", form="paper"),
                    row("C3", "contradicted", 0.7, 0.6, 0.8, p=0.99, form="host"),
                    row("C4", nm, reason="CPU+GPU absent: test", form="paper"),
                    row("C4", "reproduced", 0.2, 0.1, 0.3, p=1e-4, form="host"),
                    row("C9", nm, reason="CPU+GPU absent: test", form="paper"),
                    row("C9", "reproduced", 2.0, 1.8, 2.2, p=1e-4, form="host", threshold=1.1))
        con = table(row("C5", nm, reason="no GPU (test)"),
                    row("C6", nm, reason="needs GPU inference", form="paper"),
                    row("C6", "contradicted", 0.0, 0.0, 0.0, p=1.0, form="host"))
        # a finding of older code that wrote its host measurement as the claim's row: gated by the device
        cross = table(row("C10", "contradicted", 1.0, 1.0, 1.1, p=1.0))
    prof = table(row("C7", "reproduced", 10.0, 8.0, 12.0, p=1e-4),
                 row("C9", "reproduced", 0.3, 0.2, 0.4, p=1e-4, form="paper" if gpu else "host", threshold=0.05))
    return {"operator_support": table(row("C1", "reproduced", 0.6, 0.55, 0.65, p=1e-4),
                                      row("C2", "reproduced", 1.6, 1.5, 1.7, form="context",
                                          statistic="Amdahl bound")),
            "mulayer_overhead": mul, "contention": con, "profiling_error": prof,
            "frame_reuse": table(row("C8", "reproduced", 0.5, 0.4, 0.6, p=1e-4)), "cross_level": cross}


def test_cpu_only_host_paper_form_not_measurable_with_host_rows_apart():
    tables = host_and_paper_tables(gpu=False)
    out = C.evaluate(tables, device=CPU_ONLY).set_index("claim")
    for cid in ("C2", "C3", "C4", "C5", "C6", "C9", "C10"):
        assert out.loc[cid, "verdict"] == "not measurable", cid
        assert out.loc[cid, "form"] == "paper"
    assert "lacks gpu" in out.loc["C10", "reason"] and "not the paper's form here" in out.loc["C10", "reason"]
    assert "lacks gpu" in out.loc["C3", "reason"]
    for cid in ("C1", "C7", "C8"):
        assert out.loc[cid, "verdict"] == "reproduced", cid
    assert "operator_support: Amdahl bound: 1.6 [1.5, 1.7]" in out.loc["C2", "reason"]
    assert set(out["device_class"]) == {"2-core host, CPU only, not a phone SoC"}
    assert set(out["profile"]) == {f"quick ({C.PROVISIONAL})"}
    host = C.evaluate_host(tables, device=CPU_ONLY).set_index("claim")
    assert set(host["form"]) == {"host"}
    assert {"C2", "C3", "C4", "C6", "C9"} <= set(host.index)
    assert host.loc["C3", "verdict"] == "contradicted" and host.loc["C6", "verdict"] == "contradicted"
    assert host.loc["C9", "verdict"] == "reproduced" and not np.isnan(host.loc["C9", "p_holm"])
    # the host rows never change the paper form's verdicts
    out2 = C.evaluate({k: (v[C._forms(v) != "host"] if v is not None else v) for k, v in tables.items()},
                      device=CPU_ONLY)
    assert list(out2["verdict"]) == list(out.reset_index()["verdict"])


def test_gpu_host_paper_form_decides():
    tables = host_and_paper_tables(gpu=True)
    out = C.evaluate(tables, device=GPU_HOST).set_index("claim")
    for cid in ("C3", "C5", "C6", "C2", "C4", "C9", "C10"):
        assert out.loc[cid, "verdict"] == "reproduced", (cid, out.loc[cid, "reason"])
    assert out.loc["C6", "effect"] == 40.0                 # the paper-form row, not the host row
    assert "discrete NVIDIA GPU" in out.loc["C3", "device_class"] and "not a phone" in out.loc["C3", "device_class"]


# --------------------------------------------------------------------------- each claim: true, false, borderline
def synthetic_claim_rows(cid: str, case: str) -> dict[str, pd.DataFrame]:
    """A finding's rows for claim ``cid`` on which it is true, false or borderline, on the
    registry's own scale (threshold and margin)."""
    c = C.CLAIMS[cid]
    if cid == "C9":
        a = {"true": ("reproduced", 2.0, 1.8, 2.2, 1e-4), "false": ("contradicted", 1.0, 0.95, 1.05, 0.9),
             "borderline": ("inconclusive", 1.12, 1.05, 1.2, 0.2)}[case]
        b = {"true": ("reproduced", 0.3, 0.2, 0.4, 1e-4), "false": ("contradicted", 0.0, 0.0, 0.01, 1.0),
             "borderline": ("inconclusive", 0.06, 0.02, 0.1, 0.3)}[case]
        return {"mulayer_overhead": table(row("C9", a[0], *a[1:4], p=a[4], threshold=1.1, form="paper")),
                "profiling_error": table(row("C9", b[0], *b[1:4], p=b[4], threshold=0.05, form="paper"))}
    t, m = c.null, c.margin
    sign = 1 if c.direction == "greater" else -1
    unit = max(abs(t), 1.0) * 0.2 + m
    if case == "true":
        eff, half, v, p = t + sign * 2 * unit, 0.5 * unit, "reproduced", 1e-4
    elif case == "false":
        eff, half, v, p = t - sign * (m + 2 * unit), 0.5 * unit, "contradicted", 0.999
    else:
        eff, half, v, p = t, 0.5 * unit, "inconclusive", 0.5
    return {c.finding: table(row(cid, v, eff, eff - half, eff + half, p=p))}


@pytest.mark.parametrize("cid", list(C.CLAIMS))
@pytest.mark.parametrize("case, expected", [("true", "reproduced"), ("false", "contradicted"),
                                            ("borderline", "inconclusive")])
def test_each_claim_true_false_borderline(cid, case, expected):
    out = C.evaluate(synthetic_claim_rows(cid, case), device=GPU_HOST)
    r = get(out, cid)
    assert r["verdict"] == expected, r["reason"]
    if expected in ("reproduced", "contradicted"):
        assert not np.isnan(r["p_holm"])


@pytest.mark.parametrize("a, b, expected", [
    ("reproduced", "reproduced", "reproduced"),
    ("contradicted", "reproduced", "inconclusive"),   # no configuration clearly slower: not a contradiction
    ("reproduced", "contradicted", "contradicted"),   # one strategy best everywhere
    ("reproduced", "inconclusive", "inconclusive"),
    ("reproduced", None, "reproduced"),               # C7 stands in for (b)
    ("not measurable", "reproduced", "not measurable"),
])
def test_c9_from_its_components(a, b, expected):
    tables = {"mulayer_overhead": table(row("C9", a, 2.0, 1.8, 2.2, p=1e-4 if a == "reproduced" else 0.9,
                                            threshold=1.1, reason="slowest: operator:r=0.75"))}
    if b:
        tables["profiling_error"] = table(row("C9", b, 0.3, 0.2, 0.4, p=1e-4 if b == "reproduced" else 0.6,
                                              reason="best changes in 3 of 5 contexts", primary=True),
                                          row("C9", "contradicted", reason="a secondary view", primary=False))
    else:
        tables["profiling_error"] = table(row("C7", "reproduced", 10.0, 8.0, 12.0, p=1e-4))
    c9 = get(C.evaluate(tables, device=GPU_HOST), "C9")
    assert c9["verdict"] == expected, c9["reason"]
    assert "mulayer_overhead's C9 row" in c9["reason"]
    if b:
        assert "profiling_error's C9 row" in c9["reason"] and "secondary" not in c9["reason"]
    else:
        assert "C7 (" in c9["reason"]
    if expected in ("reproduced", "contradicted", "inconclusive"):
        assert not np.isnan(c9["p_value"]) and not np.isnan(c9["p_holm"])


def test_c9_paper_form_needs_two_processors():
    tables = {"mulayer_overhead": table(row("C3", "reproduced", 2.0, 1.5, 2.5, p=1e-4)),
              "profiling_error": table(row("C7", "reproduced", 0.1, 0.05, 0.2, p=1e-4))}
    assert get(C.evaluate(tables, device=CPU_ONLY), "C9")["verdict"] == "not measurable"
    c9 = get(C.evaluate(tables, device=GPU_HOST), "C9")
    assert c9["verdict"] == "reproduced" and c9["p_value"] == pytest.approx(1e-4)


def test_by_device_metrics_and_sensitivity():
    long = C.evaluate_devices({
        "dev-a": {"operator_support": table(row("C1", "reproduced", 0.6, 0.55, 0.65, p=1e-4))},
        "dev-b": {},
    }, devices={"dev-a": CPU_ONLY})
    assert len(long) == 22 and set(long["device_label"]) == {"dev-a", "dev-b"}
    wide = C.by_device(long)
    assert list(wide.columns[-2:]) == ["dev-a", "dev-b"] and len(wide) == 11
    assert wide.set_index("claim").loc["C1", "dev-a"] == "reproduced: 0.6 [0.55, 0.65]"
    assert wide.set_index("claim").loc["C1", "dev-b"] == "not measurable"
    assert wide.set_index("claim").loc["C1", "paper_value"] == C.CLAIMS["C1"].paper_value
    m = C.metrics(long)
    json.dumps(m, allow_nan=False)   # dvc metrics: no NaN
    assert m["dev-a"]["counts"] == {"reproduced": 1, "contradicted": 0, "inconclusive": 0, "not_measurable": 10,
                                    "claims": 11}
    assert m["dev-a"]["claims"]["C1"]["effect"] == 0.6 and m["dev-b"]["claims"]["C1"]["effect"] is None
    prov = m["dev-a"]["provenance"]
    assert prov["profile"] == f"quick ({C.PROVISIONAL})" and prov["independent_runs"] == 1
    assert prov["device_class"] == "2-core host, CPU only, not a phone SoC"
    sens = C.sensitivity(long)
    c1 = sens[sens["claim"] == "C1"].set_index("threshold")["verdict"]
    assert c1[0.25] == "reproduced" and c1[0.5] == "reproduced" or c1[0.5] == "inconclusive"
    assert sens[sens["claim"] == "C1"]["declared"].sum() == 1


def test_device_class():
    assert C.device_class({"kind": "adb", "device": "adb:X", "logical_cpus": 8}) == "phone"
    assert C.device_class({}) == "unknown device"


def test_docs_claims_md_is_current():
    assert C.DOCS.is_file(), "run: python -m study.claims docs"
    assert C.DOCS.read_text() == C.registry_markdown(), "docs/claims.md is stale: run python -m study.claims docs"
    for c in C.CLAIMS.values():
        assert f"## {c.id} " in C.DOCS.read_text()


def test_evaluate_devices_keeps_numbers_when_a_device_has_no_rows_of_the_form():
    # a reference that measured other findings has no host-form rows: its empty frame must not
    # turn the other device's numbers into text (they are written to Parquet)
    import pandas as pd
    from study import claims as C

    full = pd.DataFrame([{**{c: None for c in C.OUT_COLUMNS}, "claim": "C2", "effect": 1.5, "ci_lo": 1.2,
                          "ci_hi": 1.8, "p_value": 0.01, "n": 40, "rows": 2, "runs": 3}])
    orig = C.evaluate
    try:
        C.evaluate = lambda tables, *a, **k: full.copy() if tables else pd.DataFrame(columns=C.OUT_COLUMNS)
        out = C.evaluate_devices({"a": {"x": 1}, "b": {}}, form="host")
    finally:
        C.evaluate = orig
    assert len(out) == 1 and out["ci_lo"].dtype.kind == "f" and out["n"].dtype.kind in "iu"
