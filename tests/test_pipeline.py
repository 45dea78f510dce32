"""End to end: `dvc repro` of the quick profile in a temporary copy of the repository,
on this machine's CPU, then checks of what it wrote (every dataset with the columns recorded
in ``tests/dataset_columns.json``); a second `dvc repro` reruns nothing; a bad parameter stops
the pipeline before any measured output is touched.

Runs for several minutes (every stage, quick profile). Marked ``integration``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from conftest import copy_repo, run_in_venv
from study import stages as registry

pytestmark = pytest.mark.integration


def _run(cmd, cwd, check=True, timeout=3600):
    return run_in_venv(cmd, cwd, timeout=timeout, check=check, PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of the tracked and not-ignored files, as a fresh git repository."""
    return copy_repo(tmp_path_factory.mktemp("repro") / "repo")


def finding_stages(root: Path) -> dict[str, dict]:
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return {k: v for k, v in stages.items() if k not in ("validate", "models")}


@pytest.fixture(scope="module")
def reproduced(repo):
    r = _run(["dvc", "repro"], repo)
    return repo, r


def test_every_stage_writes_its_outputs(reproduced):
    repo, _ = reproduced
    params = yaml.safe_load((repo / "params.yaml").read_text())
    dev = params["device"]
    manifest = json.loads((repo / "data/models/manifest.json").read_text())
    assert {m["name"] for m in manifest["models"]} >= set(params["models"]["zoo"])
    stages = finding_stages(repo)
    assert stages, "no finding stages in dvc.yaml"
    for stage in stages:
        if stage == "paper":
            continue
        ds = repo / "data" / dev / f"{stage}.parquet"
        df = pd.read_parquet(ds)
        assert len(df) > 0, f"{stage}: empty dataset"
        assert {"device", "device_slug"} <= set(df.columns), f"{stage}: no environment columns"
        figs = list((repo / "figures" / dev / stage).glob("*.png"))
        assert figs, f"{stage}: no figures"
        assert all(f.with_suffix(".pdf").exists() for f in figs), f"{stage}: PNG without PDF"
        fp = json.loads((repo / "data" / dev / stage / "fingerprint.json").read_text())
        assert fp["device"] == dev and fp["libraries"]
        nb = nbformat.read(repo / "notebooks/executed" / dev / registry.notebook_of(stage), as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{stage}: error cells in the executed notebook"


def test_datasets_keep_their_recorded_columns(reproduced):
    """Issue 18's must-show: every dataset of the quick run has the columns (and kinds of
    column) that a quick run wrote before the refactor (``tests/dataset_columns.json``)."""
    from study import datasets

    repo, _ = reproduced
    dev = yaml.safe_load((repo / "params.yaml").read_text())["device"]
    recorded = json.loads((repo / "tests" / "dataset_columns.json").read_text())
    problems = datasets.column_problems(recorded, datasets.columns_of(repo / "data" / dev))
    assert not problems, "datasets changed schema:\n" + "\n".join(problems)


def test_report_of_this_run_opens_in_chromium_with_every_claim(reproduced, tmp_path):
    """Issue 8's must-show: after `dvc repro` on a CPU-only machine the report exists, renders
    in headless Chromium with every image loaded and no console error, and lists every claim
    with a verdict and a reason."""
    from test_report_browser import check_report, open_report

    repo, _ = reproduced
    dev = yaml.safe_load((repo / "params.yaml").read_text())["device"]
    report = repo / "figures" / dev / "paper" / "report.html"
    assert report.is_file()
    if not shutil.which("chromium"):
        pytest.skip("no chromium (scripts/setup.sh --test installs Debian's chromium)")
    res = open_report(report, tmp_path / "profile", tmp_path / "report.png")
    check_report(res)


def test_samples_carry_core_set_and_sensor_readings(reproduced):
    repo, _ = reproduced
    dev = yaml.safe_load((repo / "params.yaml").read_text())["device"]
    df = pd.read_parquet(repo / "data" / dev / "rigor/coverage_samples.parquet")
    assert len(df) > 0
    blocks = [json.loads(line) for line in (repo / "data" / dev / "raw/rigor-coverage.jsonl").read_text().splitlines()
              if '"type": "block"' in line]
    assert blocks and all(b["cores"] for b in blocks)
    for b in blocks:
        for part in ("sensors_before", "sensors_after"):
            for key in ("cpu_freq", "thermal", "gpu", "cpu_governor"):
                v = b[part][key]
                assert v.get("status") == "unavailable" and v.get("why") or v.get("status") is None


def test_second_repro_reruns_nothing(reproduced):
    repo, _ = reproduced
    r = _run(["dvc", "repro"], repo)
    out = r.stdout + r.stderr
    assert "Running stage" not in out, out[-3000:]
    assert "didn't change" in out or "up to date" in out


def test_bad_parameter_stops_before_measuring(reproduced):
    repo, _ = reproduced
    dev = yaml.safe_load((repo / "params.yaml").read_text())["device"]
    before = {p: p.stat().st_mtime_ns for p in (repo / "data" / dev).glob("*.parquet")}
    assert before
    r = _run(["dvc", "exp", "run", "-S", "harness.quick.min_samples=-5"], repo, check=False)
    assert r.returncode != 0
    assert "min_samples" in (r.stdout + r.stderr)
    after = {p: p.stat().st_mtime_ns for p in (repo / "data" / dev).glob("*.parquet")}
    assert after == before
