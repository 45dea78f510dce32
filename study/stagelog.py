"""The stage's log: what a stage emits while it runs, kept out of its executed notebook.

An executed notebook holds results. Progress updates and the log lines of native
libraries (LiteRT, XNNPACK, ONNX Runtime write INFO lines to file descriptor 2 from C++,
which the kernel would forward into the notebook) go to one file per stage and device:
``data/<device>/raw/log/<finding>.log``.

* ``start(path)`` (called by ``study.common.context_from_notebook`` inside a kernel)
  makes that file the stage's log and points file descriptor 2 at it;
* ``progress(total, desc)`` is the harness's progress: lines in the stage's log (at most
  one per ``every_s`` seconds, and the last one); without a stage log, a tqdm bar on a
  terminal, nothing inside a kernel or when stderr is not a terminal;
* ``write_lines(lines, source)`` appends lines captured elsewhere
  (``study.engines.base.captured_native_stderr``).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Iterable

from study import paths

_lock = threading.Lock()
_path: Path | None = None
_saved_fd2: int | None = None


def log_path(device_spec: str, finding: str, root: Path = paths.DATA) -> Path:
    """``data/<device>/raw/log/<finding>.log``."""
    return paths.device_data(device_spec, root) / "raw" / "log" / f"{finding}.log"


def current() -> Path | None:
    """The stage's log file, or None outside a stage."""
    return _path


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a notebook run by papermill or by hand)."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython

        return getattr(get_ipython(), "kernel", None) is not None
    except Exception:  # noqa: BLE001
        return False


def start(path: Path, redirect_fd2: bool = True) -> Path:
    """Make ``path`` the stage's log; with ``redirect_fd2``, native libraries' stderr
    (file descriptor 2) goes there too, until ``stop()``."""
    global _path, _saved_fd2
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock:
        _path = path
    write(f"stage log opened (pid {os.getpid()})")
    if redirect_fd2:
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except Exception:  # noqa: BLE001
                pass
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if _saved_fd2 is None:
            _saved_fd2 = os.dup(2)
        os.dup2(fd, 2)
        os.close(fd)
    return path


def stop() -> None:
    """Back to the state before ``start``: file descriptor 2 restored, no stage log."""
    global _path, _saved_fd2
    if _saved_fd2 is not None:
        os.dup2(_saved_fd2, 2)
        os.close(_saved_fd2)
        _saved_fd2 = None
    with _lock:
        _path = None


def write(line: str) -> None:
    """One line in the stage's log (timestamped); nothing without a stage log."""
    write_lines([line])


def write_lines(lines: Iterable[str], source: str = "") -> None:
    path = _path
    if path is None:
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    prefix = f"{stamp} {source + ': ' if source else ''}"
    text = "".join(f"{prefix}{ln.rstrip()}\n" for ln in lines if ln.strip())
    if not text:
        return
    with _lock, open(path, "a") as f:
        f.write(text)


class _LogProgress:
    """Progress as lines in the stage's log."""

    def __init__(self, total: int, desc: str, every_s: float):
        self.total, self.desc, self.every_s = int(total), desc, every_s
        self.n, self.t0, self.last = 0, time.monotonic(), -1e9
        self._report(force=True)

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        pct = f" ({100.0 * self.n / self.total:.0f}%)" if self.total else ""
        write(f"{self.desc}: {self.n}/{self.total}{pct}, {now - self.t0:.0f} s")

    def set(self, n: int) -> None:
        self.n = int(n)
        self._report()

    def close(self) -> None:
        self._report(force=True)


class _TqdmProgress:
    def __init__(self, total: int, desc: str):
        from tqdm import tqdm  # the plain text bar: a terminal, never a notebook

        self.bar = tqdm(total=total, desc=desc, leave=False, file=sys.stderr)

    def set(self, n: int) -> None:
        self.bar.n = int(n)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


class _NoProgress:
    def set(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int, desc: str, every_s: float = 10.0):
    """A progress reporter with ``set(n)`` and ``close()``: lines in the stage's log when
    there is one; else a tqdm bar on a terminal; else (inside a kernel, stderr not a
    terminal) nothing."""
    if _path is not None:
        return _LogProgress(total, desc, every_s)
    if in_kernel():
        return _NoProgress()
    try:
        tty = sys.stderr.isatty()
    except Exception:  # noqa: BLE001
        tty = False
    return _TqdmProgress(total, desc) if tty else _NoProgress()


__all__ = ["current", "in_kernel", "log_path", "progress", "start", "stop", "write", "write_lines"]
