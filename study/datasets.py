"""Writing and reading the versioned datasets.

Every dataset is a Parquet file whose rows carry ``device`` and ``device_slug``
columns and whose file metadata holds the device's full environment fingerprint,
so data from different machines merge without mixing.

Layout::

    data/<device>/<finding>.parquet          the tidy dataset (one row per timed call / measurement)
    data/<device>/<finding>/<table>.parquet  further tables (summaries, placements, tests)
    data/<device>/<finding>/fingerprint.json the environment of the run
    data/reference/<slug>/...                the same, committed from reference machines
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from study import paths

FP_KEY = b"hetero_pitfalls.fingerprint"


def _attach(df: pd.DataFrame, fingerprint: dict[str, Any]) -> pd.DataFrame:
    df = df.copy()
    if "device" not in df.columns:
        df.insert(0, "device", fingerprint.get("device"))
    if "device_slug" not in df.columns:
        df.insert(1, "device_slug", fingerprint.get("device_slug"))
    return df


def write_table(df: pd.DataFrame, path: Path, fingerprint: dict[str, Any]) -> Path:
    df = _attach(df, fingerprint)
    # object columns holding mixed types break Arrow: store them as text
    for c in df.columns:
        if df[c].dtype == object:
            kinds = {type(v) for v in df[c].dropna()}
            if len(kinds) > 1 or (kinds and not kinds <= {str}):
                df[c] = df[c].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v, default=str))
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[FP_KEY] = json.dumps(fingerprint, default=str).encode()
    table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def write_dataset(df: pd.DataFrame, device: str, finding: str, fingerprint: dict[str, Any],
                  table: str | None = None, root: Path = paths.DATA) -> Path:
    """The main dataset (``table=None``) or a further table of a finding."""
    path = paths.dataset(device, finding, root) if table is None else paths.aux_dir(device, finding, root) / f"{table}.parquet"
    return write_table(df, path, fingerprint)


def write_fingerprint(fingerprint: dict[str, Any], device: str, finding: str, root: Path = paths.DATA) -> Path:
    p = paths.aux_dir(device, finding, root) / "fingerprint.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(fingerprint, indent=2, default=str) + "\n")
    return p


def read_fingerprint(path: Path) -> dict[str, Any]:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[FP_KEY]) if FP_KEY in meta else {}


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


# --------------------------------------------------------------------------- the datasets' columns
def columns_of(root: Path) -> dict[str, dict[str, str]]:
    """Every dataset under ``root`` (a device's data folder, ``data/<device>``): its path
    relative to ``root`` -> {column: Arrow type}, in path order. The raw logs and the
    independent runs' copies under ``raw/`` are left out (their names vary by run)."""
    out = {}
    for p in sorted(root.rglob("*.parquet")):
        rel = p.relative_to(root).as_posix()
        if rel.split("/", 1)[0] == "raw":
            continue
        out[rel] = {f.name: str(f.type) for f in pq.read_schema(p)}
    return out


def same_kind(recorded: str, found: str) -> bool:
    """Arrow types that the same code writes for the same column: equal but for ``large_``
    (string offsets), or one is ``null`` (a column with no value in this run), or both
    numbers (an integer column with a missing value is written as floating point)."""
    def number(t: str) -> bool:
        return t.startswith(("int", "uint", "float", "double", "halffloat"))

    recorded, found = recorded.removeprefix("large_"), found.removeprefix("large_")
    return recorded == found or "null" in (recorded, found) or (number(recorded) and number(found))


BY_DEVICE_FIXED = {"device", "device_slug", "claim", "finding", "paper_claim", "paper_value", "paper_setting"}


def column_problems(recorded: dict[str, dict[str, str]], found: dict[str, dict[str, str]],
                    missing_ok: Any = None) -> list[str]:
    """How ``found`` (``columns_of``) departs from ``recorded``: a recorded dataset absent
    (unless ``missing_ok(path)``), a column gained or lost, a column of another kind
    (``same_kind``). Datasets that only ``found`` has, and the order of columns, are not
    problems."""
    out = []
    for rel, cols in recorded.items():
        if rel not in found:
            if not (missing_ok and missing_ok(rel)):
                out.append(f"{rel}: missing")
            continue
        have = found[rel]
        if rel.endswith("_by_device.parquet"):   # one column per device present: not a schema
            cols, have = ({c: t for c, t in d.items() if c in BY_DEVICE_FIXED} for d in (cols, have))
        gone, new = [c for c in cols if c not in have], [c for c in have if c not in cols]
        if gone or new:
            out.append(f"{rel}: columns lost {gone}, gained {new}")
        out.extend(f"{rel}: {c} is {have[c]}, was {t}" for c, t in cols.items() if c in have and not same_kind(t, have[c]))
    return out


if __name__ == "__main__":
    # python -m study.datasets [DEVICE_FOLDER [OUT]]: record the columns of a run's datasets
    # (default: data/local -> tests/dataset_columns.json, the reference of tests/test_dataset_columns.py)
    import sys

    src = Path(sys.argv[1]) if len(sys.argv) > 1 else paths.device_data("local")
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else paths.ROOT / "tests" / "dataset_columns.json"
    cols = columns_of(src)
    dst.write_text(json.dumps(cols, indent=1) + "\n")
    print(f"{dst}: the columns of {len(cols)} datasets under {src}")
