"""No import circle among the study's modules: neither through the imports a module runs when
it is imported nor through those inside its functions (``tests/study_imports.py`` reads them
from the source)."""
from __future__ import annotations

import pytest

import study_imports as SI


@pytest.mark.parametrize("module_level", [True, False], ids=["module level", "with imports inside functions"])
def test_no_import_cycle(module_level):
    assert SI.cycles(SI.graph(module_level)) == []


def test_the_cycle_finder_finds_one():
    assert SI.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_leaf_modules_import_nothing_of_the_study():
    g = SI.graph(module_level=False)
    for leaf in ("study.schema", "study.stages", "study.swap"):
        assert g[leaf] == set(), leaf


def test_layout_doc_is_current():
    """docs/layout.md (each finding's module, own helpers and notebook; the shared layers) is
    generated from the import graph and the stage registry: a moved or new module makes it stale."""
    doc = (SI.paths.ROOT / "docs" / "layout.md").read_text()
    assert doc == SI.layout(), "docs/layout.md is stale: python tests/study_imports.py > docs/layout.md"
