"""The datasets keep their schema (issue 18's must-show): ``tests/dataset_columns.json``
records the columns (and Arrow types) of every dataset a quick ``dvc repro`` wrote at the
commit before the refactor of issue 18 (``python -m study.datasets`` regenerates it from
``data/local``; do so only when a change means to alter a dataset, and say so in its commit).

Here, fast: the datasets of this checkout's last local run (``data/local``), for the stages it
ran. ``tests/test_pipeline.py`` checks the same on a fresh quick ``dvc repro``, every dataset."""
from __future__ import annotations

import json

import pytest

from study import datasets, paths

RECORDED = json.loads((paths.ROOT / "tests" / "dataset_columns.json").read_text())
LOCAL = paths.device_data("local")


def _stage_not_run(rel: str) -> bool:
    """A dataset of a stage this checkout has not run (neither its main dataset nor its folder)."""
    stage = rel.split("/", 1)[0].removesuffix(".parquet")
    return not (LOCAL / f"{stage}.parquet").exists() and not (LOCAL / stage).is_dir()


def test_the_record_is_well_formed():
    assert RECORDED and all(rel.endswith(".parquet") and not rel.startswith("raw/") for rel in RECORDED)
    assert all(cols and all(isinstance(t, str) for t in cols.values()) for cols in RECORDED.values())


def test_same_kind_of_column():
    assert datasets.same_kind("int64", "double") and datasets.same_kind("null", "large_string")
    assert datasets.same_kind("string", "large_string")
    assert not datasets.same_kind("bool", "large_string") and not datasets.same_kind("double", "string")


def test_column_problems_name_what_changed():
    rec = {"a.parquet": {"x": "int64", "y": "large_string"}, "b/t.parquet": {"z": "bool"}}
    assert datasets.column_problems(rec, rec) == []
    found = {"a.parquet": {"y": "double", "w": "bool"}}
    problems = datasets.column_problems(rec, found)
    assert problems == ["a.parquet: columns lost ['x'], gained ['w']", "a.parquet: y is double, was large_string",
                        "b/t.parquet: missing"]
    assert datasets.column_problems(rec, found, missing_ok=lambda rel: rel.startswith("b/"))[-1].startswith("a.")


def test_local_datasets_keep_their_recorded_columns():
    if not any(LOCAL.glob("*.parquet")):
        pytest.skip(f"no local run's datasets in {LOCAL} (dvc repro writes them; a fresh clone has none)")
    problems = datasets.column_problems(RECORDED, datasets.columns_of(LOCAL), missing_ok=_stage_not_run)
    assert not problems, "datasets changed schema:\n" + "\n".join(problems)
