"""Synthetic device folders for the paper stage's tests (not a test module).

``make_tree(root)`` writes three devices the way the finding stages and the reference
runner would: ``root/data/local`` (this machine), ``root/reference/<slug>`` (a committed
reference) and ``root/peers/alice/adb:XYZ`` (a peer's phone), each with fingerprints,
claims tables and a few other tables. Every value is made up for the tests.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from study import datasets

CPU_SLUG = "test-cpu_2c"
GPU_SLUG = "test-xeon_16c_nvidia-h100"
PHONE_SLUG = "test-phone_8c"


def fingerprint(device: str, slug: str, finding: str, gpu: bool = False, kind: str = "local") -> dict:
    return {
        "device": device, "device_id": device, "device_slug": slug, "kind": kind, "hostname": "h",
        "date": "2026-01-01T00:00:00+00:00", "os": "Linux", "python": "3.11", "cpu_model": f"CPU of {slug}",
        "logical_cpus": 2, "core_groups": {"g0": [0], "g1": [1], "all": [0, 1]},
        "processors": [{"name": "cpu", "available": True, "reason": ""},
                       {"name": "gpu", "available": gpu, "reason": "" if gpu else "no GPU usable (test)"},
                       {"name": "npu", "available": False, "reason": "no NPU (test)"}],
        "libraries": {"numpy": "2", "pandas": "3"}, "study_commit": "0" * 40, "finding": finding,
        "profile": "quick", "seed": 1, "harness": {"warmup": 2},
    }


def claim_row(claim, verdict, effect=np.nan, lo=np.nan, hi=np.nan, p=np.nan, n=10, reason="synthetic", **extra):
    return dict(claim=claim, text=f"measurable form of {claim}", statistic=f"statistic of {claim}", effect=effect,
                ci_lo=lo, ci_hi=hi, p_value=p, n=n, paper_value="paper", verdict=verdict, reason=reason, **extra)


def _write(root: Path, device: str, slug: str, finding: str, tables: dict[str, pd.DataFrame], gpu=False,
           main: pd.DataFrame | None = None, kind="local"):
    fp = fingerprint(device, slug, finding, gpu, kind)
    for name, df in tables.items():
        datasets.write_dataset(df, device, finding, fp, table=name, root=root)
    datasets.write_dataset(main if main is not None else pd.DataFrame({"x": [1.0, 2.0]}), device, finding, fp,
                           root=root)
    datasets.write_fingerprint(fp, device, finding, root)


def rigor_tables(device: str, inside: int = 9) -> dict[str, pd.DataFrame]:
    methods = pd.DataFrame([("core placement", "applied", "pinned"), ("GPU timing", "not applicable", "no GPU")],
                           columns=["practice", "status", "how"]).assign(device=device)
    cs = pd.DataFrame([dict(interval="order-statistic CI of the median (harness)", configs=12, inside=inside,
                            share=inside / 12, target=0.9, holds=inside / 12 >= 0.9),
                       dict(interval="rerun interval (block bootstrap, widened for the rerun)", configs=12, inside=11,
                            share=11 / 12, target=0.9, holds=True)])
    absent = pd.DataFrame([dict(model="mobilenet_v2", engine="litert", processor="gpu", part="sustained",
                                reason="no GPU usable (test)")])
    return {"methods": methods, "coverage_summary": cs, "absent": absent}


def operator_tables(share: float) -> dict[str, pd.DataFrame]:
    claims = pd.DataFrame([
        claim_row("C1", "reproduced", share, share - 0.1, share + 0.1, p=1e-4, representation="tflite graph",
                  primary=True),
        claim_row("C1", "contradicted", 0.1, 0.05, 0.15, p=0.99, representation="onnx", primary=False),
        claim_row("C2", "inconclusive", 1.85, 1.7, 1.95, representation="tflite graph", primary=True),
        claim_row("C2", "not measurable", reason="gpu: no GPU usable (test)", primary=False),
    ])
    coexec = pd.DataFrame([dict(model=m, engine="litert", representation="tflite graph", processor="cpu",
                                unsplittable_count_share=s) for m, s in (("resnet50", share), ("vgg16", 0.2))])
    avail = pd.DataFrame([dict(model="resnet50", engine="litert", processor="gpu", method="placement",
                               reason="no GPU usable (test)")])
    return {"claims": claims, "coexec": coexec, "availability": avail}


def mulayer_slowdown(scale: float) -> pd.DataFrame:
    return pd.DataFrame([dict(model=m, reference="best single", variant=v, ratio=r * scale, ci_lo=r * scale * 0.9,
                              ci_hi=r * scale * 1.1)
                         for m in ("fast_style_transfer", "resnet50") for v, r in (("best r", 1.3), ("r*", 1.5))])


def contention_slowdown() -> pd.DataFrame:
    rows = [dict(sut=f"{p}/litert", processor=p, kind="none", placement="none", n_competitors=0, slowdown=1.0,
                 ci_lo=1.0, ci_hi=1.0, available=True, reason="") for p in ("cpu", "gpu")]
    rows += [dict(sut=f"{p}/litert", processor=p, kind=p, placement="same", n_competitors=n, slowdown=1 + f * n,
                  ci_lo=1 + f * n * 0.8, ci_hi=1 + f * n * 1.2, available=True, reason="")
             for p, f in (("cpu", 2.0), ("gpu", 0.3)) for n in (1, 2, 3)]
    rows += [dict(sut="npu/-", processor="npu", kind="", placement="", n_competitors=np.nan, slowdown=np.nan,
                  ci_lo=np.nan, ci_hi=np.nan, available=False, reason="no NPU (test)")]
    return pd.DataFrame(rows)


def make_tree(root: Path) -> dict[str, Path]:
    """Three devices; returns the roots (data, reference, peers, figures, metrics)."""
    root = Path(root)
    data, ref, peers = root / "data", root / "reference", root / "peers"
    # this machine: rigor, operator_support, mulayer_overhead (C3 reproduced with a small p, C4 with a large p)
    _write(data, "local", CPU_SLUG, "rigor", rigor_tables("local"))
    _write(data, "local", CPU_SLUG, "operator_support", operator_tables(0.61))
    _write(data, "local", CPU_SLUG, "mulayer_overhead", {"claims": pd.DataFrame([
        claim_row("C3", "reproduced", 1.4, 1.2, 1.6, p=0.001),
        claim_row("C4", "reproduced", 0.2, 0.05, 0.3, p=0.04)]), "slowdown": mulayer_slowdown(1.0)})
    # the reference: a GPU host with contention and profiling_error
    _write(ref, GPU_SLUG, GPU_SLUG, "rigor", rigor_tables("local", inside=12), gpu=True)
    _write(ref, GPU_SLUG, GPU_SLUG, "operator_support", operator_tables(0.55), gpu=True)
    _write(ref, GPU_SLUG, GPU_SLUG, "mulayer_overhead", {"claims": pd.DataFrame([
        claim_row("C3", "reproduced", 2.2, 1.9, 2.6, p=0.0001),
        claim_row("C4", "inconclusive", 0.1, -0.1, 0.3, p=0.3)]), "slowdown": mulayer_slowdown(1.7)}, gpu=True)
    _write(ref, GPU_SLUG, GPU_SLUG, "contention", {"claims": pd.DataFrame([
        claim_row("C5", "reproduced", 3.0, 2.0, 4.0, p=0.002),
        claim_row("C6", "not measurable", reason="no display on a host (test)")]),
        "slowdown": contention_slowdown()}, gpu=True)
    _write(ref, GPU_SLUG, GPU_SLUG, "profiling_error", {"claims": pd.DataFrame([
        claim_row("C7", "reproduced", 0.05, 0.01, 0.09, p=0.01)]),
        "errors": pd.DataFrame([dict(estimator=e, family=f, mape_pct=m, mape_lo=m - 2, mape_hi=m + 2)
                                for e, f, m in (("offline_e2e", "offline", 30.0), ("ewma", "runtime", 12.0))])},
        gpu=True)
    # a peer's phone: rigor and frame_reuse only
    ph = peers / "alice"
    _write(ph, "adb:XYZ", PHONE_SLUG, "rigor", rigor_tables("adb:XYZ"), kind="adb")
    _write(ph, "adb:XYZ", PHONE_SLUG, "frame_reuse", {"claims": pd.DataFrame([
        claim_row("C8", "contradicted", 0.05, 0.02, 0.08, p=0.9)]),
        "c8_by_mechanism": pd.DataFrame([dict(mechanism=m, processor="cpu", models="all models", verdict=v,
                                              reduction=r, red_ci_lo=r - 0.1, red_ci_hi=r + 0.1)
                                         for m, v, r in (("frame", "reproduced", 0.6),
                                                         ("region", "inconclusive", 0.2))]),
    }, kind="adb")
    return {"data": data, "reference": ref, "peers": peers, "figures": root / "figures", "metrics": root / "metrics"}
