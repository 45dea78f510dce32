"""The engine interface: one way to load a model on a processor, run it, and say
which operators ran where (delegated vs fallback) and how long each took where the
engine can tell.

Roles are kept apart as in MLPerf LoadGen: the *system under test* is device +
engine + processor (a ``Session``), the *sample library* is ``study.models``, the
*scenario* is ``study.measure``. They meet in ``Engine.open``.
"""
from __future__ import annotations

import abc
import contextlib
import importlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pandas as pd

# Columns of every placement table (one row per operator of the engine's graph).
PLACEMENT_COLUMNS = ["model", "engine", "processor", "op_index", "op_type", "op_name", "placed_on", "delegated",
                     "partition", "method", "reason"]
# Columns of every per-operator profile (one row per operator, times in ms).
OP_PROFILE_COLUMNS = ["model", "engine", "processor", "op_index", "op_type", "op_name", "placed_on", "time_ms",
                      "n", "method"]


class EngineUnavailable(RuntimeError):
    """This engine cannot run this model on this processor; the message says why."""


@dataclass
class Session(abc.ABC):
    """A model loaded on one processor, inputs set, ready to be timed.

    ``run()`` performs one complete, synchronous inference: for asynchronous
    processors it returns only after the outputs are readable on the host.
    """

    engine: str
    processor: str
    model: str
    threads: int
    info: dict[str, Any] = field(default_factory=dict)

    @abc.abstractmethod
    def run(self) -> None:
        ...

    @abc.abstractmethod
    def outputs(self) -> list[np.ndarray]:
        """Run once and return the outputs as host arrays."""

    @abc.abstractmethod
    def set_inputs(self, arrays: list[np.ndarray]) -> None:
        ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def timed_runs(self, runs: int, warmup: int = 0) -> list[int]:
        """``warmup`` untimed runs, then the wall time (ns) of each of ``runs`` runs: a plain
        loop (no stopping rule, no raw log) for operator slices and benchmarks."""
        for _ in range(warmup):
            self.run()
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            self.run()
            ts.append(time.perf_counter_ns() - t0)
        return ts

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Engine(abc.ABC):
    name: str = "abstract"
    #: which processors the engine can target at all, with the device backend each needs
    processor_backends: dict[str, str] = {}
    #: the form of a model the engine loads (``model.has(form)``; None: any model) and what
    #: a model without it lacks, in words
    model_form: str | None = None
    model_form_text: str = ""
    #: the Python package whose ``__version__`` is the engine's version
    package: str | None = None

    def availability(self, device, processor: str, model=None) -> str | None:
        """``None`` if this engine can run ``model`` on ``processor`` of ``device``, else why not."""
        if processor not in self.processor_backends:
            return f"{self.name} has no {processor} backend"
        why = device.processor(processor).backend_reason(self.processor_backends[processor])
        if why is not None:
            return why
        if model is not None:
            return self.model_reason(model)
        return None

    def model_reason(self, model) -> str | None:
        """``None`` if the engine has a form of ``model`` it can load, else why not."""
        if self.model_form is None or model.has(self.model_form):
            return None
        return f"model {model.name} has no {self.model_form_text}"

    def require_model(self, model) -> None:
        """Raise ``EngineUnavailable`` (with ``model_reason``) unless the engine can load ``model``."""
        why = self.model_reason(model)
        if why is not None:
            raise EngineUnavailable(why)

    def check(self, device, processor: str, model=None) -> None:
        why = self.availability(device, processor, model)
        if why is not None:
            raise EngineUnavailable(f"{self.name} on {processor}: {why}")

    @abc.abstractmethod
    def open(self, model, processor: str, threads: int = 1, **options) -> Session:
        ...

    @abc.abstractmethod
    def placement(self, model, processor: str, threads: int = 1) -> pd.DataFrame:
        """Per-operator placement (``PLACEMENT_COLUMNS``)."""

    @abc.abstractmethod
    def op_profile(self, model, processor: str, threads: int = 1, runs: int = 10) -> pd.DataFrame:
        """Per-operator time (``OP_PROFILE_COLUMNS``), with the method that produced it."""

    def version(self) -> str:
        return "?" if self.package is None else importlib.import_module(self.package).__version__


def seeded_inputs(shapes_dtypes: list[tuple[tuple[int, ...], Any]], seed: int = 0) -> list[np.ndarray]:
    """Deterministic inputs: uniform [0, 1) floats, zeros for integer tensors (safe as indices)."""
    rng = np.random.default_rng(seed)
    out = []
    for shape, dtype in shapes_dtypes:
        dt = np.dtype(dtype)
        if np.issubdtype(dt, np.floating):
            out.append(rng.random(shape, dtype=np.float32).astype(dt))
        elif dt == np.bool_:
            out.append(np.zeros(shape, dtype=dt))
        else:
            out.append(np.zeros(shape, dtype=dt))
    return out


@contextlib.contextmanager
def captured_native_stderr() -> Iterator[list[str]]:
    """Redirect file descriptor 2 (native libraries' logs) into a list of lines.

    LiteRT logs every accelerator it loads at INFO level from C++; inside a
    notebook that floods the outputs. The lines are kept: they carry the reason a
    GPU accelerator failed to start; during a stage they are also appended to the
    stage's log (``study.stagelog``).
    """
    from study import stagelog

    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())
            stagelog.write_lines(lines, "native")
