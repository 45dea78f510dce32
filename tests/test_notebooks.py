"""Every stage notebook keeps the contract of a thin papermill notebook: one tagged
parameters cell whose values are the stage's defaults and the quick harness, the
parameters papermill sees are exactly the stage's, no outputs committed, no logic
(functions live in `study/`), a Python 3 kernel."""
from __future__ import annotations

import importlib

import nbformat
import pytest
import yaml

from study import paths, stages
from study.config import COMMON_KEYS

STAGES = stages.with_notebook()


def test_every_notebook_belongs_to_a_stage():
    assert {p.name for p in paths.NOTEBOOKS.glob("[0-9]*.ipynb")} == {stages.notebook_of(s) for s in STAGES}


@pytest.mark.parametrize("stage", STAGES)
def test_stage_notebook_follows_the_contract(stage):
    import papermill as pm

    path = paths.source_notebook(stage)
    nb = nbformat.read(str(path), as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    assert not any("def " in c.source for c in code)
    fields = importlib.import_module(stages.module_of(stage)).PARAMS
    assert set(pm.inspect_notebook(str(path))) == set(COMMON_KEYS) | set(fields)
    ns: dict = {}
    exec(tagged[0].source, ns)  # noqa: S102 - our own notebook's literal parameters
    for k, f in fields.items():
        assert ns[k] == f.default, k
    assert ns["harness"] == yaml.safe_load(paths.PARAMS.read_text())["harness"]["quick"]
    assert any(".run(ctx)" in c.source for c in code), "the notebook calls its finding's run(ctx)"
