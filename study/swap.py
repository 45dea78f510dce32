"""A folder replaced whole: build into a scratch folder beside it, then swap it in with two
renames, so the folder holds either the previous complete set or the new one, never a mix
(``data/params`` of the validate stage, ``data/models`` of the models stage). A leaf module."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def scratch_pair(folder: Path) -> tuple[Path, Path]:
    """A new empty folder beside ``folder`` to build in and a name to move the previous one to,
    both private to this process; those a dead process left behind are removed."""
    for d in folder.parent.glob(f".{folder.name}.*-*"):
        pid = d.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(d, ignore_errors=True)
    new = folder.with_name(f".{folder.name}.new-{os.getpid()}")
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    for d in (new, old):
        if d.exists():
            shutil.rmtree(d)
    new.mkdir(parents=True)
    return new, old


def swap_in(new: Path, folder: Path, old: Path) -> None:
    """``new`` becomes ``folder`` (the previous ``folder`` removed): two renames on one file system."""
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    if old.exists():
        shutil.rmtree(old)
