"""The paper stage on synthetic device folders (this machine, a reference, a peer): the
gathered claims, the tables, figures, metrics, the self-contained report; the exploration
call and notebook; the parameters and notebook contract."""
from __future__ import annotations

import json
import re

import nbformat
import pandas as pd
import pytest
import yaml

from study import claims as C
from study import explore, paper, paths
from study.config import ParamError, resolve

import paper_synthetic as S  # noqa: E402


def params(**over):
    p = yaml.safe_load(paths.PARAMS.read_text())
    p["profile"] = "quick"
    p["paper"] = {**(p.get("paper") or {}), **over}
    return p


def make_ctx(roots, **over):
    from study.common import context

    ctx = context("paper", resolve("paper", params(**over)))
    ctx.data_root, ctx.figures_root = roots["data"], roots["figures"]
    ctx.reference_root, ctx.peers_root, ctx.metrics_root = roots["reference"], roots["peers"], roots["metrics"]
    return ctx


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return S.make_tree(tmp_path_factory.mktemp("tree"))


@pytest.fixture(scope="module")
def result(tree):
    import warnings

    ctx = make_ctx(tree)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="paper:")     # a panel that cannot draw warns: fail here
        return ctx, paper.run(ctx)


# --------------------------------------------------------------------------- exploration
def test_explore_finds_every_device_with_its_source(tree):
    roots = dict(data_root=tree["data"], reference_root=tree["reference"], peers_root=tree["peers"])
    dev = explore.devices(**roots)
    assert list(dev["device_label"]) == [S.CPU_SLUG, S.GPU_SLUG, S.PHONE_SLUG]
    assert list(dev["source"]) == ["this machine", "reference", "peer:alice"]
    df = explore.load("rigor", "coverage_summary", **roots)
    assert set(df["device_label"]) == {S.CPU_SLUG, S.GPU_SLUG, S.PHONE_SLUG}
    assert {"device", "device_slug", "source", "folder"} <= set(df.columns)
    assert list(df.columns[:3]) == ["device_label", "source", "folder"]
    assert explore.load("rigor", "coverage_summary", peers=False, include_reference=False, **roots)[
        "device_label"].unique().tolist() == [S.CPU_SLUG]
    assert explore.load("contention", "claims", **roots)["device_label"].unique().tolist() == [S.GPU_SLUG]
    assert explore.load("nothing_here", **roots).empty
    main = explore.load("rigor", **roots)          # the tidy dataset
    assert len(main) == 6 and set(main["device_slug"]) == {S.CPU_SLUG, S.GPU_SLUG, S.PHONE_SLUG}


def test_explore_labels_two_folders_of_one_device_apart(tree, tmp_path):
    extra = tmp_path / "copy"
    import shutil

    shutil.copytree(tree["data"] / "local", extra / "local")
    folders = explore.device_folders(data_root=tree["data"], reference_root=tree["reference"],
                                     peers_root=tree["peers"], extra=[extra])
    labels = [d.label for d in folders]
    assert len(set(labels)) == len(labels) == 4
    assert f"{S.CPU_SLUG} [this machine: local]" in labels and f"{S.CPU_SLUG} [path:copy: local]" in labels
    with pytest.raises(FileNotFoundError):
        explore.device_folders(extra=[tmp_path / "absent"])


def test_pack_copies_tables_without_raw_logs(tree, tmp_path):
    raw = tree["data"] / "local" / "raw"
    raw.mkdir(exist_ok=True)
    (raw / "rigor.jsonl").write_text("{}\n")
    dest = explore.pack("bob", "local", data_root=tree["data"], dest_root=tmp_path / "peers")
    assert (dest / "rigor" / "fingerprint.json").is_file() and (dest / "rigor.parquet").is_file()
    assert not (dest / "raw").exists()
    found = explore.device_folders(include_local=False, include_reference=False, peers_root=tmp_path / "peers")
    assert [(d.source, d.slug) for d in found] == [("peer:bob", S.CPU_SLUG)]
    with pytest.raises(ValueError):
        explore.pack("../x", "local", data_root=tree["data"], dest_root=tmp_path / "peers")


# --------------------------------------------------------------------------- the stage
def test_claims_per_device(result):
    ctx, res = result
    t = res["tables"]
    own = t["claims"]
    assert list(own["claim"]) == list(C.CLAIMS)
    assert set(C.CLAIM_COLUMNS) <= set(own.columns)
    assert set(own["verdict"]) <= set(C.VERDICTS) and own["reason"].str.len().min() > 3
    # this machine has no GPU: C3's paper form (CPU+GPU) is not measurable, whatever its finding wrote
    assert own.set_index("claim").loc["C3", "verdict"] == "not measurable"
    assert "lacks gpu" in own.set_index("claim").loc["C3", "reason"]
    assert own.set_index("claim").loc["C1", "verdict"] == "reproduced"
    assert own.set_index("claim").loc["C5", "reason"].startswith("stage contention produced no data on this device")
    long = t["claims_all"]
    assert len(long) == 33 and list(dict.fromkeys(long["device_label"])) == [S.CPU_SLUG, S.GPU_SLUG, S.PHONE_SLUG]
    assert set(long["source"]) == {"this machine", "reference", "peer:alice"}
    g = long[long["device_label"] == S.GPU_SLUG].set_index("claim")
    assert g.loc["C9", "verdict"] == "reproduced"          # C3 and C7 reproduced on the reference
    assert g.loc["C4", "verdict"] == "inconclusive"
    assert g.loc["C6", "reason"] == "no display on a host (test)"
    wide = t["claims_by_device"]
    assert [c for c in wide.columns if c in (S.CPU_SLUG, S.GPU_SLUG, S.PHONE_SLUG)] == [S.CPU_SLUG, S.GPU_SLUG,
                                                                                       S.PHONE_SLUG]
    assert wide.set_index("claim").loc["C8", S.PHONE_SLUG] == "contradicted: 0.05 [0.02, 0.08]"
    assert set(long[long["device_label"] == S.PHONE_SLUG]["device_class"]) == {"phone"}
    # the main dataset: the gathered evidence, one row per finding row, plus "no data" rows
    ev = pd.read_parquet(paths.dataset("local", "paper", ctx.data_root))
    assert set(ev["status"]) == {"rows", "no data"}
    assert len(ev[(ev["device_label"] == S.PHONE_SLUG) & (ev["status"] == "no data")]) == 6   # adaptive_runtime: none on a phone


def test_not_measured_environment_and_methods(result):
    _, res = result
    nm = res["tables"]["not_measured"]
    mine = nm[nm["device_label"] == S.CPU_SLUG]
    assert set(mine["kind"]) == {"stage", "claim", "configuration"}
    conf = mine[mine["kind"] == "configuration"]
    assert (conf["reason"] == "no GPU usable (test)").all() and len(conf) == 2   # rigor absent + operator_support
    assert "stage cross_level" in set(mine["item"])
    env = res["tables"]["environment"]
    assert set(env["device_label"]) == {S.CPU_SLUG, S.GPU_SLUG, S.PHONE_SLUG}
    assert env[env["device_label"] == S.CPU_SLUG]["processors"].iloc[0].startswith("cpu: available; gpu: absent")
    meth = res["tables"]["methods"]
    assert set(meth["device_label"]) == {S.CPU_SLUG, S.GPU_SLUG, S.PHONE_SLUG}
    assert set(meth["practice"]) == {"core placement", "GPU timing"}


def test_figures_metrics_and_plots(result):
    ctx, res = result
    figdir = paths.figures_dir("local", "paper", ctx.figures_root)
    for name in ("verdicts", "effects", "rigor_by_device", "operator_support_by_device", "mulayer_overhead_by_device",
                 "contention_by_device", "profiling_error_by_device", "frame_reuse_by_device"):
        assert (figdir / f"{name}.png").is_file() and (figdir / f"{name}.pdf").is_file(), name
    assert set(res["figures"]) == {"verdicts", "effects", "sensitivity"} | {f"{f}_by_device" for f in
                                                              ("rigor", *C.findings())
                                                                  if f not in ("cross_level", "adaptive_runtime")}
    # (cross_level has no panel; the synthetic devices hold no adaptive_runtime tables)
    assert set(res["figure_files"]) == set(res["figures"]) and all(p.suffix == ".png" for p in res["figure_files"].values())
    # one facet per device that has the finding's table
    fig = res["figures"]["mulayer_overhead_by_device"]
    assert [a.get_title().split("\n")[0] for a in fig.axes if a.axison] == [S.CPU_SLUG, S.GPU_SLUG]
    m = json.loads(res["files"]["metrics"].read_text())
    assert list(m) == [S.CPU_SLUG, S.GPU_SLUG, S.PHONE_SLUG]
    assert m[S.GPU_SLUG]["counts"]["reproduced"] == 5 and m[S.PHONE_SLUG]["counts"]["contradicted"] == 1
    assert sum(v for k, v in m[S.CPU_SLUG]["counts"].items() if k != "claims") == 11
    csv = pd.read_csv(res["files"]["plots"])
    assert list(csv.columns) == ["claim", "device", "source", "verdict", "effect", "ci_lo", "ci_hi", "p_holm", "n"]
    assert len(csv) == 33


def test_report_is_self_contained_and_lists_every_claim(result):
    ctx, res = result
    html = res["files"]["report"].read_text()
    assert not re.search(r'(src|href)="(?!data:|#)', html), "external resource in the report"
    assert "<script" not in html
    imgs = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) >= 4 and all(len(i) > 1000 for i in imgs)
    rows = re.findall(r'<tr class="claim-row" data-device="([^"]+)" data-claim="(C\d+)" data-verdict="([^"]+)">', html)
    assert len(rows) == 33
    assert {v for _, _, v in rows} <= set(C.VERDICTS)
    for dev in (S.CPU_SLUG, S.GPU_SLUG, S.PHONE_SLUG):
        assert {c for d, c, _ in rows if d == dev} == set(C.CLAIMS)
    for section in ("What could not be measured, and why", "Environment of each device", "Methods per device",
                    "Claims across devices", "stage cross_level produced no data on this device",
                    "no GPU usable (test)"):
        assert section in html, section
    # the summary's numbers are the metrics file's
    m = json.loads(res["files"]["metrics"].read_text())
    c = m[S.CPU_SLUG]["counts"]
    assert (f"On <b>{S.CPU_SLUG}</b>: {c['reproduced']} of {c['claims']} claims reproduced, "
            f"{c['contradicted']} contradicted") in html


def test_no_finding_data_at_all(tmp_path):
    roots = {k: tmp_path / k for k in ("data", "reference", "peers", "figures", "metrics")}
    ctx = make_ctx(roots)
    res = paper.run(ctx)
    own = res["tables"]["claims"]
    assert (own["verdict"] == "not measurable").all()
    assert own.set_index("claim").loc["C1", "reason"] == "stage operator_support produced no data on this device"
    assert len(res["tables"]["devices"]) == 1 and res["tables"]["devices"]["this_device"].all()
    assert res["files"]["report"].is_file()
    assert (paths.figures_dir("local", "paper", ctx.figures_root) / "effects.png").is_file()


def test_parameters_select_devices(tree):
    ctx = make_ctx(tree, include_reference=False, include_peers=False)
    assert [d.label for d in paper.folders(ctx)] == [S.CPU_SLUG]
    ctx = make_ctx(tree, devices=[S.GPU_SLUG, "adb:XYZ"])
    assert [d.label for d in paper.folders(ctx)] == [S.GPU_SLUG, S.PHONE_SLUG]
    ctx = make_ctx(tree, include_peers=False, peer_dirs=[str(tree["peers"] / "alice")])
    assert [d.source for d in paper.folders(ctx)] == ["this machine", "reference", "path:alice"]


def test_unreachable_device_uses_its_recorded_fingerprint(tree):
    class Unplugged:
        spec = "local"

        def fingerprint(self):
            raise RuntimeError("no adb server")

    ctx = make_ctx(tree)
    ctx.__dict__["device"] = Unplugged()
    fp = paper._fingerprint(ctx)
    assert fp["device_slug"] == S.CPU_SLUG and "not reachable" in fp["fingerprint_note"]


def test_parameters_are_checked():
    r = resolve("paper", params())
    assert r["devices"] == [] and r["include_reference"] is True and r["alpha"] == 0.05
    with pytest.raises(ParamError, match="alpha"):
        resolve("paper", params(alpha=2.0))
    with pytest.raises(ParamError, match="unknown key"):
        resolve("paper", params(colour="red"))
    with pytest.raises(ParamError, match="include_peers"):
        resolve("paper", params(include_peers="yes"))
    with pytest.raises(ParamError, match="devices"):
        resolve("paper", params(devices=[3]))
    with pytest.raises(ParamError, match="peer_dirs"):
        resolve("paper", params(peer_dirs=["no/such/folder"]))


def test_explore_notebook_is_clean_with_one_parameters_cell():
    # the stage notebooks' contract: tests/test_notebooks.py
    ex = nbformat.read(paths.NOTEBOOKS / "explore.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in ex.cells if c.cell_type == "code")
    assert sum("parameters" in c.metadata.get("tags", []) for c in ex.cells) == 1


@pytest.mark.slow
def test_explore_notebook_executes(tree, tmp_path, monkeypatch):
    import os

    import papermill as pm

    # the kernel runs in a temporary folder: it finds `study` whether or not the package is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(paths.ROOT), os.environ.get("PYTHONPATH")])))
    out = tmp_path / "explore.ipynb"
    roots = {"data_root": str(tree["data"]), "reference_root": str(tree["reference"]),
             "peers_root": str(tree["peers"])}
    pm.execute_notebook(str(paths.NOTEBOOKS / "explore.ipynb"), str(out), cwd=str(tmp_path), progress_bar=False,
                        parameters={"finding": "rigor", "table": "coverage_summary", "roots": roots})
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = json.dumps([o for o in outputs], default=str)
    assert "6 rows from 3 device(s)" in text
    assert "image/png" in text     # the faceted figure


@pytest.mark.slow
@pytest.mark.skipif(explore.devices().empty, reason="no finding data in this checkout yet (dvc repro)")
def test_explore_notebook_executes_on_this_checkouts_data(tmp_path, monkeypatch):
    import os

    import papermill as pm

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(paths.ROOT), os.environ.get("PYTHONPATH")])))
    out = tmp_path / "explore.ipynb"
    pm.execute_notebook(str(paths.NOTEBOOKS / "explore.ipynb"), str(out), cwd=str(tmp_path), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                if o.get("output_type") == "error"]


def test_rerun_stability_benchmark_compares_two_folders(tree, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("rerun_stability", paths.ROOT / "benchmarks" / "rerun_stability.py")
    rs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rs)
    out = tmp_path / "rs.json"
    a, b = tree["data"] / "local", tree["reference"] / S.GPU_SLUG
    assert rs.main([str(a), str(a), "--out", str(out)]) == 0
    same = json.loads(out.read_text())
    assert same["verdict_flips"] == [] and same["covered"] == same["checked"] > 0
    assert set(same) >= {"runs", "verdict_flips", "covered", "checked", "claims", "host_form"}
    assert rs.main([str(a), str(b), "--out", str(out)]) == 0
    diff = json.loads(out.read_text())
    assert "C3" in diff["verdict_flips"] and diff["claims"]["C1"]["rel_halfwidth"][0] > 0
