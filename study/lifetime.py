"""Processes that end with their parent.

Every process the study starts ends when the process that started it dies, so that no
stage measures or writes after its ``dvc repro`` (or the shell that ran it) is gone:

* the stage process (``python -m study run|models|validate``) calls ``die_with_parent()``
  first (``study.cli.main``): killed with ``dvc``;
* the notebook's kernel is started by the stage process with ``child_preexec`` (the
  kernel manager of ``study.cli.execute_notebook``): killed with the stage process;
* children the kernel starts (the rigor child runs, probes, competitors, the co-running
  app, co-execution workers) ask for the same: ``child_preexec`` as ``preexec_fn`` of
  ``subprocess``, or ``die_with_parent(expected_ppid)`` as their first act
  (``study.competitors``, ``study.corunning_app``, ``study.coexec``, ``study.rigor``).

On Linux this is ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel sends SIGKILL to the
process when the *thread* that started it ends (start children from the main thread,
as the CLI, papermill and the notebooks do). A parent that died before the ``prctl``
took effect is caught by comparing ``getppid()`` with the parent the process expects.
Off Linux nothing is enforced.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1

_prctl = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
        _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        _prctl.restype = ctypes.c_int
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl
        _prctl = None

_SIGKILL = int(signal.SIGKILL)


def set_parent_death_signal(sig: int = _SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies; False where
    that is not possible (not Linux)."""
    if _prctl is None:
        return False
    return _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def die_with_parent(expected_ppid: int | None = None) -> None:
    """This process dies (SIGKILL) when its parent dies. ``expected_ppid``: the parent it
    was started by; if that one is gone already, exit now."""
    set_parent_death_signal()
    if expected_ppid is not None and os.getppid() != int(expected_ppid):
        os._exit(3)  # the parent died before the prctl took effect


def child_preexec() -> None:
    """``preexec_fn`` for ``subprocess``: the child gets SIGKILL when this process's
    starting thread ends. Only a prepared C call, safe between fork and exec."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)


def popen_kwargs() -> dict:
    """Keyword arguments for ``subprocess.run``/``Popen`` of a child that must end with us."""
    return {"preexec_fn": child_preexec} if _prctl is not None else {}


__all__ = ["child_preexec", "die_with_parent", "popen_kwargs", "set_parent_death_signal"]
