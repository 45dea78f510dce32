"""Every path the study reads or writes, anchored at the repository root.

No side effects: nothing here creates a directory or reads a file. Callers that
write create parents themselves (``ensure_parent``).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from study import stages

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
DVC_YAML = ROOT / "dvc.yaml"
NOTEBOOKS = ROOT / "notebooks"
DATA = ROOT / "data"
FIGURES = ROOT / "figures"
MODELS = DATA / "models"
MODEL_MANIFEST = MODELS / "manifest.json"
USER_MODELS = DATA / "user_models"
REFERENCE = DATA / "reference"
ASSETS = Path(__file__).resolve().parent / "assets"
PEERS = ROOT / "peers"          # peers' datasets: peers/<name>/<device>/... (DVC-tracked)
METRICS = ROOT / "metrics"      # dvc metrics files written by the paper stage
VALIDATED = DATA / "params"     # data/params/<stage>.json: what the validate stage checked and resolved


_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


def device_dirname(device_spec: str) -> str:
    """Directory name of a device spec: the spec itself (``local``, ``adb:SERIAL``), so
    that ``dvc.yaml``'s ``data/${device}`` and the code name the same folder."""
    if not isinstance(device_spec, str) or not _SAFE.match(device_spec):
        raise ValueError(f"device spec {device_spec!r} is not usable as a folder name "
                         "(letters, digits, '.', '_', '-', ':' only)")
    return device_spec


def device_data(device_spec: str, root: Path = DATA) -> Path:
    return root / device_dirname(device_spec)


def dataset(device_spec: str, finding: str, root: Path = DATA) -> Path:
    """The tidy dataset of one finding on one device."""
    return device_data(device_spec, root) / f"{finding}.parquet"


def raw_log(device_spec: str, finding: str, root: Path = DATA) -> Path:
    """Append-only raw sample log (JSON lines): survives a kill, lets a rerun resume."""
    return device_data(device_spec, root) / "raw" / f"{finding}.jsonl"


def aux_dir(device_spec: str, finding: str, root: Path = DATA) -> Path:
    """Further tables of a finding (summaries, placements, tests, fingerprint)."""
    return device_data(device_spec, root) / finding


def figures_dir(device_spec: str, finding: str | None = None, root: Path = FIGURES) -> Path:
    d = root / device_dirname(device_spec)
    return d / finding if finding else d


def executed_notebook(device_spec: str, stage: str) -> Path:
    return NOTEBOOKS / "executed" / device_dirname(device_spec) / stages.notebook_of(stage)


def source_notebook(stage: str) -> Path:
    return NOTEBOOKS / stages.notebook_of(stage)


def ensure_parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
