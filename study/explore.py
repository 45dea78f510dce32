"""Every device's data in one call: this machine's, the committed references, peers'.

    from study import explore
    explore.devices()                                  # which device folders exist, from where
    df = explore.load("rigor", "burst_sustained")      # one table of a finding, every device
    df = explore.load("operator_support")              # the finding's tidy dataset, every device

A *device folder* holds ``<finding>.parquet`` and ``<finding>/`` (tables, fingerprint.json)
for one device. They live in

* ``data/<device>/``: measured by this checkout (``local``, ``adb:SERIAL``);
* ``data/reference/<device-slug>/``: committed reference datasets (e.g. an NVIDIA GPU host);
* ``peers/<name>/<device>/``: a peer's data, shared through a DVC remote (``docs/peers.md``);
  ``python -m study.explore pack NAME`` puts this checkout's data there for sharing;
* any further folder given (``extra``): a device folder or a folder of device folders.

Devices are told apart by their fingerprint's ``device_slug`` (every row carries it), so
the same figure can be faceted by device. ``device_label`` is the slug, with the source
added where two folders share a slug.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from study import datasets, paths, stages

PEERS = paths.PEERS                  # peers/<name>/<device>/...: a peer's shared data (DVC-tracked)
FINDINGS = stages.findings()


@dataclass
class DeviceFolder:
    source: str                 # "this machine" (data/local) | "this checkout" (data/adb:...) | "reference"
                                # | "peer:<name>" | "path:<folder>"
    path: Path                  # the folder holding <finding>.parquet and <finding>/
    slug: str                   # device_slug of its fingerprints
    findings: list[str]         # findings with data in it
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)  # finding -> fingerprint
    label: str = ""

    @property
    def folder(self) -> str:
        return self.path.name

    def has(self, finding: str, table: str | None = None) -> bool:
        return self.file(finding, table).is_file()

    def file(self, finding: str, table: str | None = None) -> Path:
        return self.path / f"{finding}.parquet" if table is None else self.path / finding / f"{table}.parquet"

    def read(self, finding: str, table: str | None = None) -> pd.DataFrame | None:
        f = self.file(finding, table)
        return datasets.read_table(f) if f.is_file() else None

    def fingerprint(self) -> dict[str, Any]:
        """The most recent fingerprint of the folder (any finding)."""
        fps = sorted(self.fingerprints.values(), key=lambda fp: str(fp.get("date", "")))
        return fps[-1] if fps else {}

    def row(self) -> dict[str, Any]:
        fp = self.fingerprint()
        return dict(device_label=self.label, device_slug=self.slug, source=self.source, folder=self.folder,
                    path=str(self.path), findings=", ".join(self.findings), device=fp.get("device", ""),
                    kind=fp.get("kind", ""), cpu_model=fp.get("cpu_model", ""), date=fp.get("date", ""))


def _findings_in(p: Path) -> list[str]:
    return [f for f in FINDINGS if (p / f"{f}.parquet").is_file()
            or ((p / f).is_dir() and any((p / f / n).is_file() for n in ("fingerprint.json", "claims.parquet")))]


def _device_folder(p: Path, source: str) -> DeviceFolder | None:
    if not p.is_dir():
        return None
    found = _findings_in(p)
    if not found:
        return None
    fps = {}
    for f in found:
        fpf = p / f / "fingerprint.json"
        if fpf.is_file():
            try:
                fps[f] = json.loads(fpf.read_text())
            except ValueError:
                pass
        elif (p / f"{f}.parquet").is_file():
            fp = datasets.read_fingerprint(p / f"{f}.parquet")
            if fp:
                fps[f] = fp
    slugs = Counter(fp.get("device_slug") for fp in fps.values() if fp.get("device_slug"))
    slug = slugs.most_common(1)[0][0] if slugs else p.name
    return DeviceFolder(source=source, path=p, slug=str(slug), findings=found, fingerprints=fps)


def _children(root: Path, source: str) -> list[DeviceFolder]:
    if not root.is_dir():
        return []
    out = [_device_folder(p, source) for p in sorted(root.iterdir()) if p.is_dir()]
    return [d for d in out if d is not None]


def _peer_folders(peers_root: Path, names: Iterable[str] | None) -> list[DeviceFolder]:
    if not peers_root.is_dir():
        return []
    out = []
    for p in sorted(q for q in peers_root.iterdir() if q.is_dir()):
        if names is not None and p.name not in names:
            continue
        own = _device_folder(p, f"peer:{p.name}")   # peers/<name>/ holding one device's data directly
        out += [own] if own else _children(p, f"peer:{p.name}")
    return out


def _extra_folders(extra: Iterable[str | Path]) -> list[DeviceFolder]:
    out = []
    for e in extra:
        p = Path(e)
        p = p if p.is_absolute() else paths.ROOT / p
        if not p.is_dir():
            raise FileNotFoundError(f"peer folder {e} does not exist")
        own = _device_folder(p, f"path:{p.name}")
        out += [own] if own else _children(p, f"path:{p.name}")
    return out


def _label(folders: list[DeviceFolder]) -> list[DeviceFolder]:
    count = Counter(d.slug for d in folders)
    for d in folders:
        d.label = d.slug if count[d.slug] == 1 else f"{d.slug} [{d.source}: {d.folder}]"
    return folders


def device_folders(include_local: bool = True, include_reference: bool = True,
                   peers: bool | Iterable[str] = True, extra: Iterable[str | Path] = (),
                   devices: Iterable[str] | None = None, data_root: Path = paths.DATA,
                   reference_root: Path = paths.REFERENCE, peers_root: Path = PEERS) -> list[DeviceFolder]:
    """Every device folder found. ``peers``: True = all under ``peers/``, False = none, or
    peer names. ``devices``: keep only these (label, slug or folder name); None = all."""
    found: list[DeviceFolder] = []
    if include_local:
        found += _children(data_root, "this machine")
        for d in found:   # data/<device>/ of a phone measured from this checkout is not this machine
            if d.folder != "local":
                d.source = "this checkout"
    if include_reference:
        found += _children(reference_root, "reference")
    if peers:
        found += _peer_folders(peers_root, None if peers is True else set(peers))
    found += _extra_folders(extra)
    found = _label(found)
    if devices:
        want = set(devices)
        found = [d for d in found if want & {d.label, d.slug, d.folder}]
    return found


def devices(**kw) -> pd.DataFrame:
    """The device folders found, one row each (``device_folders``'s arguments)."""
    rows = [d.row() for d in device_folders(**kw)]
    return pd.DataFrame(rows, columns=["device_label", "device_slug", "source", "folder", "path", "findings", "device",
                                       "kind", "cpu_model", "date"])


def load(finding: str, table: str | None = None, peers: bool | Iterable[str] = True, include_reference: bool = True,
         devices: Iterable[str] | None = None, extra: Iterable[str | Path] = (), **roots) -> pd.DataFrame:
    """One finding's tidy dataset (``table=None``) or one of its tables, across every device
    found, with ``device_label``, ``source`` and ``folder`` columns in front (``device`` and
    ``device_slug`` come with every row). Empty frame if no device has it."""
    frames = []
    for d in device_folders(include_reference=include_reference, peers=peers, extra=extra, devices=devices, **roots):
        df = d.read(finding, table)
        if df is None:
            continue
        df = df.copy()
        for i, (k, v) in enumerate((("device_label", d.label), ("source", d.source), ("folder", d.folder))):
            if k in df.columns:
                df = df.drop(columns=k)
            df.insert(i, k, v)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --------------------------------------------------------------------------- sharing
def pack(name: str, device: str = "local", data_root: Path = paths.DATA, dest_root: Path = PEERS) -> Path:
    """Copy this checkout's ``data/<device>/`` tables and fingerprints (no raw logs, no
    caches) to ``peers/<name>/<device>/``, ready for ``dvc add peers/<name>`` and ``dvc push``."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"peer name {name!r}: a plain folder name expected")
    src = paths.device_data(device, data_root)
    if _device_folder(src, "this machine") is None:
        raise FileNotFoundError(f"no finding data under {src}: run the study first (dvc repro)")
    dest = dest_root / name / paths.device_dirname(device)
    if dest.exists():
        shutil.rmtree(dest)
    n = 0
    for f in sorted(src.rglob("*")):
        rel = f.relative_to(src)
        if f.is_dir() or rel.parts[0] == "raw" or f.suffix not in (".parquet", ".json"):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
        n += 1
    print(f"{n} files -> {dest}")
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m study.explore", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("devices", help="list the device folders found")
    p = sub.add_parser("pack", help="copy data/<device>/ to peers/<name>/<device>/ for sharing")
    p.add_argument("name")
    p.add_argument("--device", default="local")
    args = ap.parse_args(argv)
    if args.cmd == "devices":
        with pd.option_context("display.width", 200, "display.max_colwidth", 60):
            print(devices().to_string(index=False))
        return 0
    try:
        pack(args.name, args.device)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
