"""The device interface: where a measurement runs.

A device knows its processors (present or absent, with the reason), its CPU core
groups (the affinity sets a configuration runs on), its environment fingerprint
and its sensors (clocks, heat, power), read before and after each sample block.

It also supplies the sessions the harness times (``engine`` / ``open_session``) and says
what it can run (``supports``): findings ask it, never the kind of device.
"""
from __future__ import annotations

import abc
import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Any

UNAVAILABLE = "unavailable"

# what a device can run (``Device.supports``)
PYTHON = "python"                       # the study's Python code: engines in this process, one inference per run()
BENCHMARK_MODEL = "litert-benchmark"    # LiteRT's benchmark_model: blocks of runs, timed by the tool (aggregates)


class DeviceError(ValueError):
    """A device spec that names no reachable device, or a device that stopped answering."""


@dataclass(frozen=True)
class Processor:
    """One processor of a device, as the study sees it.

    ``name`` is the study's processor name (``cpu``, ``gpu``, ``npu``). ``backends`` maps a
    backend (``xnnpack``, ``cuda``, ``vulkan``, ``nnapi`` ...) to ``None`` when usable or to
    the reason it is not.
    """

    name: str
    available: bool
    reason: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    backends: dict[str, str | None] = field(default_factory=dict)

    def backend_reason(self, backend: str) -> str | None:
        """``None`` if ``backend`` is usable on this processor, else why not."""
        if not self.available:
            return self.reason or f"no {self.name} on this device"
        if backend not in self.backends:
            return f"backend {backend!r} not known on {self.name}"
        return self.backends[backend]

    def as_row(self) -> dict[str, Any]:
        d = asdict(self)
        d["backends"] = {k: ("ok" if v is None else v) for k, v in self.backends.items()}
        return d


class Device(abc.ABC):
    """Common interface of the local host and of phones reached over adb."""

    kind: str = "abstract"
    capabilities: frozenset[str] = frozenset()  # PYTHON, BENCHMARK_MODEL, ...

    def __init__(self, spec: str):
        self.spec = spec

    def supports(self, capability: str) -> bool:
        """Whether this device can run ``capability`` (``PYTHON``, ``BENCHMARK_MODEL``, a stage's
        ``study.stages`` runner): what a finding asks instead of the kind of device."""
        return capability in self.capabilities

    def engine(self, name: str):
        """The engine that runs ``name``'s models here (its name and version go into the rows)."""
        raise NotImplementedError(f"{self.kind} device: no engines")

    def open_session(self, engine, model, processor: str, threads: int, cores=None, seed: int = 0):
        """A session of ``model`` for the harness (``study.measure``): one with ``run()`` the harness
        times, or with ``run_block(runs, warmup)`` where the device times the runs itself."""
        raise NotImplementedError(f"{self.kind} device: no sessions")

    @property
    def id(self) -> str:
        """Stable name of this device for directories (``local``, ``adb-SERIAL``)."""
        from study.paths import device_dirname

        return device_dirname(self.spec)

    @abc.abstractmethod
    def processors(self) -> list[Processor]:
        ...

    def processor(self, name: str) -> Processor:
        for p in self.processors():
            if p.name == name:
                return p
        return Processor(name=name, available=False, reason=f"{self.kind} device has no processor named {name!r}")

    @abc.abstractmethod
    def core_groups(self) -> dict[str, list[int]]:
        """Named CPU core sets: disjoint groups plus ``all``."""

    def core_set(self, group: str) -> list[int]:
        groups = self.core_groups()
        if group not in groups:
            raise ValueError(f"unknown core group {group!r} on {self.spec}; known: {sorted(groups)}")
        return groups[group]

    @abc.abstractmethod
    def read_sensors(self) -> dict[str, Any]:
        """Clocks, governor, temperatures, power: each value or ``{'status': 'unavailable', 'why': ...}``."""

    @abc.abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        ...

    def slug(self) -> str:
        """A descriptive id for reference datasets (``data/reference/<slug>/``)."""
        return self.id


def unavailable(why: str) -> dict[str, str]:
    return {"status": UNAVAILABLE, "why": why}


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
