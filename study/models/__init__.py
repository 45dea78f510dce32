"""The sample library: zoo architectures, trained mobile models, user model files.

The ``models`` DVC stage (``python -m study models``) writes the model files and
``data/models/manifest.json``; everything else reads models through
``load_manifest`` / ``get_model``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from study import paths


class ModelError(ValueError):
    """A model that is unknown, missing or unreadable."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str                    # zoo | mediapipe | user
    task: str
    files: dict[str, str] = field(default_factory=dict)  # format -> path relative to the repo root
    torch_zoo: str | None = None   # zoo entry name if a PyTorch definition exists
    seed: int = 0
    inputs: list[dict[str, Any]] = field(default_factory=list)   # [{shape, dtype}]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    params: int | None = None
    macs: int | None = None
    sha256: dict[str, str] = field(default_factory=dict)
    paper_name: str = ""
    notes: str = ""

    def path(self, fmt: str, root: Path | None = None) -> Path:
        root = paths.ROOT if root is None else root
        if fmt not in self.files:
            raise ModelError(f"model {self.name!r} has no {fmt} file (formats: {sorted(self.files)})")
        return root / self.files[fmt]

    def has(self, fmt: str) -> bool:
        if fmt == "torch":
            return self.torch_zoo is not None
        return fmt in self.files

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_manifest(path: Path = paths.MODEL_MANIFEST) -> dict[str, ModelSpec]:
    if not path.exists():
        raise ModelError(f"no model manifest at {path}: run the 'models' stage first (dvc repro models)")
    data = json.loads(path.read_text())
    return {m["name"]: ModelSpec(**m) for m in data["models"]}


def get_model(name: str, manifest: dict[str, ModelSpec] | None = None) -> ModelSpec:
    manifest = manifest if manifest is not None else load_manifest()
    if name not in manifest:
        raise ModelError(f"unknown model {name!r}; the manifest has: {sorted(manifest)}")
    return manifest[name]
