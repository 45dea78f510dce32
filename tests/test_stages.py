"""The stage registry (``study.stages``) against what it describes: ``dvc.yaml`` (written by
hand) has the registry's stages, each running its own command; every notebook,
module and schema section the registry names exists."""
from __future__ import annotations

import importlib.util

import yaml

from study import paths, schema, stages


def _dvc_stages() -> dict[str, dict]:
    return yaml.safe_load(paths.DVC_YAML.read_text())["stages"]


def test_dvc_yaml_has_the_registry_s_stages():
    assert sorted(_dvc_stages()) == sorted(stages.names())   # DVC orders by dependencies, not by listing


def test_each_stage_runs_its_own_command_and_notebook():
    for name, st in _dvc_stages().items():
        want = {"validate": "python -m study validate", "models": "python -m study models"}.get(
            name, f"python -m study run {name}")
        assert st["cmd"].split()[-len(want.split()):] == want.split(), (name, st["cmd"])
        nb = stages.get(name).notebook
        if nb is not None:
            assert f"notebooks/{nb}" in st["deps"], name
            assert f"notebooks/executed/${{device}}/{nb}" in [o if isinstance(o, str) else next(iter(o))
                                                              for o in st["outs"]], name


def test_what_the_registry_names_exists():
    for s in stages.STAGES:
        assert importlib.util.find_spec(s.module) is not None, s
        if s.notebook:
            assert paths.source_notebook(s.name).is_file(), s
        assert (s.name in schema.STAGES) == s.section, s
        assert s.phone in (None, stages.PHONE_RUNNER), s
    assert stages.findings() == tuple(s for s in stages.with_notebook() if s != "paper")


def test_phone_table_of_the_readme_follows_the_registry():
    rows = {}
    for line in (paths.ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[1] in ("yes", "skipped"):
            rows[cells[0].strip("`")] = cells[1]
    assert rows == {s: "yes" if stages.get(s).phone else "skipped" for s in stages.findings()}


def test_every_panel_has_a_drawing_function():
    from study import paper

    for s in stages.STAGES:
        if s.panel is not None:
            spec = paper.panel_spec(s.name)
            assert spec is not None and callable(spec[3]), s.name
            assert spec[:3] == (list(s.panel.tables), s.panel.title, s.panel.ylabel)
