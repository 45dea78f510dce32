"""Reference runs that add up across short windows on a lent machine: complete stages are
skipped, a stage cut mid-way resumes from its raw log, another machine's run is refused,
and only complete stages are promoted."""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from study import reference as R
from study import stages as registry


class WindowEnd(BaseException):
    """What SIGINT (``timeout -s INT``) raises in the stage: not an Exception, so not caught as a failure."""


class _Stage:
    """A stand-in finding: appends one raw sample per call of ``step`` to its raw log and,
    once it has ``need`` samples, writes its table and fingerprint (as a finding does at its end)."""

    def __init__(self, name: str, need: int, cut_after: int | None):
        self.name, self.need, self.cut_after = name, need, cut_after

    def run(self, ctx):
        root = ctx.data_root / "local"
        raw = root / "raw" / f"{self.name}.jsonl"
        raw.parent.mkdir(parents=True, exist_ok=True)
        have = len(raw.read_text().splitlines()) if raw.exists() else 0
        taken = 0
        while have < self.need:
            if self.cut_after is not None and taken >= self.cut_after:
                raise WindowEnd
            with raw.open("a") as f:
                f.write(json.dumps({"i": have}) + "\n")
            have += 1
            taken += 1
        (root / self.name).mkdir(parents=True, exist_ok=True)
        (root / self.name / "fingerprint.json").write_text(json.dumps(ctx.fingerprint))
        pd.DataFrame({"i": range(have)}).to_parquet(root / f"{self.name}.parquet")


@pytest.fixture
def fake(monkeypatch, tmp_path):
    import dataclasses

    import study.common
    import study.stages

    stages = {"rigor": _Stage("rigor", 3, None), "contention": _Stage("contention", 5, 2)}
    mods = {}
    for name, st in stages.items():
        mod = types.ModuleType(f"_fake_{name}")
        mod.run = st.run
        sys.modules[mod.__name__] = mod
        mods[name] = mod.__name__
    slug = {"value": "nvidia-h100"}
    for name, mod in mods.items():
        monkeypatch.setitem(study.stages.BY_NAME, name, dataclasses.replace(study.stages.BY_NAME[name], module=mod))
    monkeypatch.setattr(R, "load_params", lambda: {})
    monkeypatch.setattr(R, "resolve", lambda stage, params: {})
    monkeypatch.setattr(study.common, "context",
                        lambda stage, resolved: types.SimpleNamespace(fingerprint={"device_slug": slug["value"]}))
    yield stages, slug
    for m in mods.values():
        sys.modules.pop(m, None)


def test_windows_add_up_to_one_run(fake, tmp_path):
    stages, _ = fake
    out = tmp_path / "run"
    with pytest.raises(WindowEnd):
        R.run_reference(out, stages=["rigor", "contention"])
    assert R.stage_states(out) == {**{s: "not started" for s in registry.findings()},
                                     "rigor": "complete", "contention": "cut"}
    raw = out / "data" / "local" / "raw" / "contention.jsonl"
    assert len(raw.read_text().splitlines()) == 2
    # promotion after the first window: the complete stage only
    dest = R.promote(out, dest_root=tmp_path / "ref")
    assert (dest / "rigor" / "fingerprint.json").exists() and not (dest / "contention").exists()

    # second window: rigor skipped, contention resumes from its 2 raw samples and is cut again
    with pytest.raises(WindowEnd):
        R.run_reference(out, stages=["rigor", "contention"])
    assert len(raw.read_text().splitlines()) == 4
    # third window completes it without re-measuring
    stages["contention"].cut_after = None
    rep = R.run_reference(out, stages=["rigor", "contention"])
    assert len(raw.read_text().splitlines()) == 5
    assert rep["windows"] == 3 and rep["stages"]["contention"]["windows"] == 3
    assert R.stage_states(out)["contention"] == "complete"
    dest = R.promote(out, dest_root=tmp_path / "ref")
    assert len(pd.read_parquet(dest / "contention.parquet")) == 5


def test_a_run_from_another_machine_is_refused(fake, tmp_path):
    stages, slug = fake
    out = tmp_path / "run"
    R.run_reference(out, stages=["rigor"])
    slug["value"] = "nvidia-h200"
    with pytest.raises(R.DeviceMismatch, match="nvidia-h100"):
        R.run_reference(out, stages=["contention"])
    rep = json.loads((out / "reference_run.json").read_text())
    assert rep["device_slug"] == "nvidia-h100" and rep["windows"] == 1 and "contention" not in rep["stages"]


def test_status_command(fake, tmp_path, capsys):
    out = tmp_path / "run"
    R.run_reference(out, stages=["rigor"])
    assert R.main(["status", str(out)]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines["rigor"] == "complete" and lines["contention"] == "not started"
    assert Path(out / "reference_run.json").exists()


def _reference_dirs():
    return sorted(p for p in R.paths.REFERENCE.glob("*") if (p / "reference_run.json").exists())


@pytest.mark.parametrize("ref", _reference_dirs(), ids=lambda p: p.name)
def test_committed_reference_summary_is_in_readme(ref):
    """README's GPU section is the summary of the committed tables, not numbers typed in."""
    text = R.summary(ref)
    assert "not a phone SoC" in text and "Stages measured" in text
    readme = (R.paths.ROOT / "README.md").read_text()
    assert text in readme, f"README's reference section is stale: rerun python -m study.reference summary {ref}"


def test_snapshot_commit_is_recorded(monkeypatch):
    from study.devices.local import git_commit

    monkeypatch.setenv("HETERO_STUDY_COMMIT", "abc123")
    assert git_commit() == "abc123"
