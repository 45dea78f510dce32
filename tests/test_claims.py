"""The claims registry and the final verdicts, on synthetic claims tables."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from study import claims as C
from study import paths, stats


def row(claim, verdict, effect=np.nan, lo=np.nan, hi=np.nan, p=np.nan, reason="r", **extra):
    return dict(claim=claim, text=f"form of {claim}", statistic="s", effect=effect, ci_lo=lo, ci_hi=hi, p_value=p,
                n=5, paper_value="x", verdict=verdict, reason=reason, **extra)


def table(*rows):
    return pd.DataFrame(list(rows))


def get(df, cid):
    return df[df["claim"] == cid].iloc[0]


def test_registry_covers_the_paper():
    assert list(C.CLAIMS) == [f"C{i}" for i in range(1, 11)]
    for c in C.CLAIMS.values():
        assert c.text and c.statistic and c.paper_value
        assert c.finding in paths.NOTEBOOK_OF_STAGE, c
        assert c.direction in ("greater", "less", "all hold")
        assert (c.null is None) == (c.direction == "all hold")
    assert C.CLAIMS["C1"].reference == {"paper 48%": 0.48}
    assert C.CLAIMS["C9"].finding == "paper"
    assert set(C.C9_COMPONENTS) <= set(C.CLAIMS)
    assert C.findings() == ["operator_support", "mulayer_overhead", "contention", "profiling_error", "frame_reuse",
                            "cross_level"]
    reg = C.registry_frame()
    assert len(reg) == 10 and reg["hypothesis"].str.len().min() > 3


def test_missing_stage_and_missing_row_are_not_measurable_with_the_reason():
    out = C.evaluate({"operator_support": table(row("C1", "reproduced", 0.6, 0.6, 0.6))})
    assert list(out["claim"]) == list(C.CLAIMS)
    c2 = get(out, "C2")
    assert c2["verdict"] == "not measurable"
    assert c2["reason"] == "stage operator_support wrote no row for C2 on this device"
    c5 = get(out, "C5")
    assert c5["verdict"] == "not measurable" and c5["reason"] == "stage contention produced no data on this device"
    # the paper's value is never an effect
    assert np.isnan(c5["effect"]) and c5["paper_value"] == C.CLAIMS["C5"].paper_value
    out = C.evaluate({}, missing={"contention": "stage contention: no display here"})
    assert get(out, "C6")["reason"] == "stage contention: no display here"
    assert (out["verdict"] == "not measurable").all() and (out["reason"].str.len() > 0).all()


def test_holm_across_claims_downgrades_reproduced_but_not_contradicted():
    tables = {
        "mulayer_overhead": table(row("C3", "reproduced", 2.0, 1.5, 2.5, p=0.001),
                                  row("C4", "reproduced", 0.2, 0.1, 0.3, p=0.03)),
        "contention": table(row("C5", "reproduced", 3.0, 2.0, 4.0, p=0.01),
                            row("C6", "contradicted", -0.1, -0.2, -0.05, p=0.9)),
        "frame_reuse": table(row("C8", "not measurable", reason="no camera")),
    }
    out = C.evaluate(tables)
    ps = [0.001, 0.03, 0.01, 0.9]
    adj = stats.holm(ps)
    got = [get(out, c)["p_holm"] for c in ("C3", "C4", "C5", "C6")]
    np.testing.assert_allclose(got, adj)
    assert adj[1] >= 0.05 > ps[1] and adj[2] < 0.05   # C4: 0.03 x 2 = 0.06; C5: 0.01 x 3 = 0.03
    assert get(out, "C3")["verdict"] == "reproduced" and get(out, "C5")["verdict"] == "reproduced"
    c4 = get(out, "C4")
    assert c4["verdict"] == "inconclusive" and c4["finding_verdict"] == "reproduced"
    assert "Holm-adjusted p" in c4["reason"] and "4 claims" in c4["reason"]
    assert get(out, "C6")["verdict"] == "contradicted"
    c8 = get(out, "C8")
    assert c8["verdict"] == "not measurable" and c8["reason"].startswith("no camera") and np.isnan(c8["p_holm"])


def test_holm_changes_verdicts_only_through_p_values():
    """A claim without a p-value (an exact count) keeps its CI-based verdict."""
    out = C.evaluate({"operator_support": table(row("C1", "reproduced", 0.6, 0.6, 0.6), row("C2", "inconclusive",
                                                                                             1.85, 1.7, 1.95))})
    assert get(out, "C1")["verdict"] == "reproduced" and np.isnan(get(out, "C1")["p_holm"])
    assert get(out, "C2")["verdict"] == "inconclusive"


def test_primary_row_and_disagreeing_rows():
    t = table(row("C1", "contradicted", 0.1, 0.1, 0.1, primary=False, representation="onnx"),
              row("C1", "reproduced", 0.6, 0.6, 0.6, primary=True, representation="tflite"),
              row("C2", "reproduced", 1.5, 1.4, 1.6), row("C2", "contradicted", 1.95, 1.9, 1.99))
    out = C.evaluate({"operator_support": t})
    c1 = get(out, "C1")
    assert c1["verdict"] == "reproduced" and c1["effect"] == 0.6 and c1["rows"] == 2
    assert "primary row of 2" in c1["reason"]
    c2 = get(out, "C2")
    assert c2["verdict"] == "inconclusive" and "disagree" in c2["reason"]
    # rows that agree: the first stands for the claim
    t2 = table(row("C2", "not measurable", reason="gpu absent"), row("C2", "reproduced", 1.5, 1.4, 1.6),
               row("C2", "reproduced", 1.6, 1.5, 1.7))
    c2 = get(C.evaluate({"operator_support": t2}), "C2")
    assert c2["verdict"] == "reproduced" and c2["effect"] == 1.5 and "2 measurable rows agree" in c2["reason"]


def test_invalid_verdict_and_missing_reason():
    out = C.evaluate({"cross_level": table(row("C10", "maybe", 0.9, 0.8, 1.0, reason=""))})
    c = get(out, "C10")
    assert c["verdict"] == "inconclusive" and "no valid verdict" in c["reason"]


def test_finding_threshold_and_direction_replace_the_registry():
    out = C.evaluate({"frame_reuse": table(row("C8", "reproduced", 0.8, 0.6, 0.9, threshold=0.3, direction="greater"))})
    c = get(out, "C8")
    assert c["null"] == 0.3 and c["hypothesis"] == "effect > 0.3"
    out = C.evaluate({"frame_reuse": table(row("C8", "reproduced", 0.8, 0.6, 0.9))})
    assert get(out, "C8")["null"] == C.CLAIMS["C8"].null


@pytest.mark.parametrize("c3, c7, extra, expected", [
    ("reproduced", "reproduced", None, "reproduced"),
    ("reproduced", None, None, "not measurable"),
    ("contradicted", "reproduced", None, "contradicted"),
    ("reproduced", "inconclusive", None, "inconclusive"),
    # a finding's own C9 row replaces C7 as component (b)
    ("reproduced", "inconclusive", "reproduced", "reproduced"),
    ("reproduced", "reproduced", "contradicted", "contradicted"),
    ("reproduced", None, "inconclusive", "inconclusive"),
    ("contradicted", None, None, "contradicted"),
])
def test_c9_from_its_components(c3, c7, extra, expected):
    tables = {"mulayer_overhead": table(row("C3", c3, 2.0, 1.5, 2.5))}
    if c7:
        tables["profiling_error"] = table(row("C7", c7, 0.1, 0.05, 0.2))
    if extra:
        tables["contention"] = table(row("C9", extra, 0.1, 0.05, 0.2, reason="best changes in 2 of 5 contexts",
                                         primary=True),
                                     row("C9", "contradicted", reason="a secondary view", primary=False))
    c9 = get(C.evaluate(tables), "C9")
    assert c9["verdict"] == expected
    assert "C3" in c9["reason"]
    if extra:
        assert "contention's C9 row" in c9["reason"] and "C7 (" not in c9["reason"]
        assert "secondary" not in c9["reason"]        # only the primary row counts
    else:
        assert "C7 (" in c9["reason"]
    if c7 is None and not extra:
        assert "stage profiling_error produced no data on this device" in c9["reason"]
    assert np.isnan(c9["effect"]) and np.isnan(c9["p_value"])


def test_c9_is_not_counted_twice_in_holm():
    tables = {"mulayer_overhead": table(row("C3", "reproduced", 2.0, 1.5, 2.5, p=0.01)),
              "profiling_error": table(row("C7", "reproduced", 0.1, 0.05, 0.2, p=0.02))}
    out = C.evaluate(tables)
    assert "over 2 claim(s)" in get(out, "C3")["reason"]
    assert np.isnan(get(out, "C9")["p_value"]) and get(out, "C9")["verdict"] == "reproduced"


def test_by_device_and_metrics():
    long = C.evaluate_devices({
        "dev-a": {"operator_support": table(row("C1", "reproduced", 0.6, 0.55, 0.65))},
        "dev-b": {},
    })
    assert len(long) == 20 and set(long["device_label"]) == {"dev-a", "dev-b"}
    wide = C.by_device(long)
    assert list(wide.columns[-2:]) == ["dev-a", "dev-b"] and len(wide) == 10
    assert wide.set_index("claim").loc["C1", "dev-a"] == "reproduced: 0.6 [0.55, 0.65]"
    assert wide.set_index("claim").loc["C1", "dev-b"] == "not measurable"
    assert wide.set_index("claim").loc["C1", "paper_value"] == C.CLAIMS["C1"].paper_value
    m = C.metrics(long)
    json.dumps(m, allow_nan=False)   # dvc metrics: no NaN
    assert m["dev-a"]["counts"] == {"reproduced": 1, "contradicted": 0, "inconclusive": 0, "not_measurable": 9,
                                    "claims": 10}
    assert m["dev-a"]["claims"]["C1"]["effect"] == 0.6 and m["dev-b"]["claims"]["C1"]["effect"] is None
