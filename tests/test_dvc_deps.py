"""dvc.yaml's deps and params cannot go stale: each stage lists every ``study`` module its
command may run and the ``params.yaml`` keys it reads.

* Modules: the closure (``tests/study_imports.py``: ast over study/, imports inside functions
  included, packages above a module included) of what the command starts from: ``python -m
  study`` (``study.__main__`` and, function by function, the ``study.cli`` functions the
  stage's sub-command runs), the stage's module and the modules its notebook imports, plus
  what modules that import by a computed name load for that stage (declared below; a new such
  module fails the test until it is declared). A listed file covers its module, a listed
  folder every module under it (``.dvcignore`` keeps ``__pycache__/`` out of a folder's hash).
* Params: the values a stage's outputs depend on: ``device``, ``profile``, ``seed``, the
  harness of the chosen profile (``harness.${profile}``, never the whole ``harness``: editing
  ``harness.full`` must not rerun a quick run) and the stage's own section; ``models`` only its
  section (the build does not use the common keys); ``validate`` the whole file; ``paper`` also
  the findings' sections (it recomputes their claims). A section is listed whole, its profile
  overrides included: DVC cannot name "the section under the chosen profile", and listing each
  key would break on a profile without overrides; the exact resolved values are in the stage's
  ``data/params/<stage>.json`` dep, which changes only when they do.
"""
from __future__ import annotations

import ast
import inspect
import json

import pytest
import yaml

import study_imports as SI
from study import paths, stages

DVC = yaml.safe_load(paths.DVC_YAML.read_text())["stages"]
GRAPH = SI.graph(module_level=False)
SECTIONED = [s for s in stages.with_section()]


def _all_stage_modules(stage: str) -> set[str]:
    return {stages.module_of(s) for s in stages.with_section()}


def _own_module(stage: str) -> set[str]:
    return {stages.module_of(stage)} if stages.get(stage).section else set()


def _findings(stage: str) -> set[str]:
    return {stages.module_of(s) for s in stages.findings()}


# module that imports by a computed name -> what it loads when `stage` runs
DYNAMIC = {
    "study.config": lambda stage: _all_stage_modules(stage) if stage == "validate" else _own_module(stage),
    "study.common": _own_module,           # context_from_notebook: the finding's PARAMS
    "study.paper": _findings,              # every finding's claims_from_tables and paper_panel
    "study.reference": _findings,          # not run by a stage; declared for completeness
    "study.replicate": _own_module,        # an independent run: the finding's own measure and analyse
    "study.engines.base": lambda stage: set(),  # Engine.version: the engine's own package (not study)
}


def notebook_imports(stage: str) -> set[str]:
    nb = stages.get(stage).notebook
    if nb is None:
        return set()
    out = set()
    for cell in json.loads((paths.NOTEBOOKS / nb).read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        for node in ast.walk(ast.parse("\n".join(line for line in src.splitlines() if not line.startswith(("%", "!"))))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "study":
                out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in GRAPH else node.module
                        for a in node.names}
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names if a.name.split(".")[0] == "study"}
    return out


# the study.cli function each stage's command runs (with main and what they call in cli)
ENTRY = {"validate": "cmd_validate", "models": "cmd_models"}   # the rest: `run <stage>` -> cmd_run -> run_stage


def entry_imports(stage: str) -> set[str]:
    return SI.function_imports("study.cli", ["main", ENTRY.get(stage, "run_stage")])


def imported_modules(stage: str) -> set[str]:
    roots = {"study", *entry_imports(stage), *notebook_imports(stage), *_own_module(stage)}
    if stage == "validate":
        roots |= _all_stage_modules(stage)
    while True:
        mods = SI.closure(roots, GRAPH) | {"study.__main__", "study.cli"}
        more = set().union(*(DYNAMIC[m](stage) for m in mods if m in DYNAMIC)) - mods
        if not more:
            return mods
        roots |= more


def module_file(name: str) -> str:
    return str(SI.modules()[name].relative_to(paths.ROOT))


def covered(file: str, deps: list[str]) -> bool:
    return any(file == d or file.startswith(d.rstrip("/") + "/") for d in deps)


def test_every_computed_import_is_declared():
    assert SI.dynamic_importers() <= set(DYNAMIC), "declare what it imports in DYNAMIC"


@pytest.mark.parametrize("stage", stages.names())
def test_deps_cover_every_module_the_stage_imports(stage):
    deps = [d for d in DVC[stage]["deps"]]
    missing = sorted(f for f in map(module_file, imported_modules(stage)) if not covered(f, deps))
    assert not missing, f"{stage}: deps lack {missing}"


def _listed(stage: str) -> set[str]:
    out = set()
    for p in DVC[stage].get("params", []):
        if isinstance(p, dict):   # {file: [keys]} or {file: null} (the whole file)
            for f, keys in p.items():
                out |= {f"{f}:"} if not keys else set(keys)
        else:
            out.add(p)
    return out


def required_params(stage: str) -> set[str]:
    if stage == "validate":
        return {"params.yaml:"}
    if stage == "models":
        return {"models"}
    need = {"device", "profile", "seed", "harness.${profile}", stage}
    if stage == "paper":   # it recomputes each finding's claims with that finding's parameters
        from study import claims as C

        need |= set(C.findings())
    return need


@pytest.mark.parametrize("stage", stages.names())
def test_params_name_what_the_stage_reads(stage):
    listed = _listed(stage)
    assert required_params(stage) <= listed, f"{stage}: params lack {sorted(required_params(stage) - listed)}"
    assert "harness" not in listed, f"{stage}: lists every profile's harness; it reads harness.${{profile}}"
    if stages.get(stage).section and stage not in ("models",):
        assert f"data/params/{stage}.json" in DVC[stage]["deps"], stage


def test_stage_commands_go_through_the_declared_cli_functions():
    import study.cli as cli

    tree = ast.parse(inspect.getsource(cli.cmd_run))
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))], \
        "cmd_run only dispatches (to run_stage for a notebook stage); its imports would be missed"
    assert set(cli.STAGE_COMMANDS) == {"validate", "models", "run"}
    for stage in stages.names():
        assert DVC[stage]["cmd"] == ("python -m study " + (stage if stage in ENTRY else f"run {stage}")), stage


def test_the_import_analysis_sees_imports_inside_functions():
    # study.cli imports study.models.export only inside cmd_models
    assert "study.models.export" in GRAPH["study.cli"]
    assert "study.models.export" in imported_modules("models")
    assert "study.models.export" not in entry_imports("rigor")
    assert "study.config" in imported_modules("rigor") and "study.paths" in imported_modules("paper")
