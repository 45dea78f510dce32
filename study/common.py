"""What every finding does the same way: open the device, take its fingerprint,
build configurations for the harness, mark absent processors with their reason,
write datasets and figures under the device's folders.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable

import pandas as pd

from study import datasets, paths, plotting
from study.devices import Device, get_device
from study.engines import EngineUnavailable, get_engine
from study.measure import Config, Harness, HarnessSettings, RawLog, failures_frame, samples_frame
from study.models import ModelSpec, load_manifest

AVAILABILITY_COLUMNS = ["model", "engine", "processor", "available", "reason"]


@dataclass
class StageContext:
    finding: str
    device_spec: str
    profile: str
    seed: int
    settings: HarnessSettings
    params: dict[str, Any] = field(default_factory=dict)
    data_root: Any = paths.DATA
    figures_root: Any = paths.FIGURES

    @cached_property
    def device(self) -> Device:
        return get_device(self.device_spec)

    @cached_property
    def fingerprint(self) -> dict[str, Any]:
        fp = self.device.fingerprint()
        fp.update(finding=self.finding, profile=self.profile, seed=self.seed,
                  harness=dataclasses.asdict(self.settings))
        return fp

    @property
    def env(self) -> dict[str, Any]:
        """What must match for samples to be resumed or merged."""
        fp = self.fingerprint
        return {"device_slug": fp["device_slug"], "cpu": fp.get("cpu_model"), "libraries": fp.get("libraries")}

    @cached_property
    def manifest(self) -> dict[str, ModelSpec]:
        return load_manifest()

    def model(self, name: str) -> ModelSpec:
        from study.models import get_model

        return get_model(name, self.manifest)

    def raw_log(self, name: str | None = None) -> RawLog:
        return RawLog(paths.raw_log(self.device_spec, name or self.finding, self.data_root))

    def harness(self, log: RawLog | None = None, settings: HarnessSettings | None = None, **kw) -> Harness:
        return Harness(settings or self.settings, log or self.raw_log(), self.device, env=self.env, **kw)

    def samples(self, log: RawLog, configs: list[Config], settings: HarnessSettings | None = None,
                run_ids=None) -> pd.DataFrame:
        return samples_frame(log, configs, settings or self.settings, self.env, run_ids=run_ids)

    def failures(self, log: RawLog, configs: list[Config], settings: HarnessSettings | None = None,
                 run_ids=None) -> pd.DataFrame:
        return failures_frame(log, configs, settings or self.settings, self.env, run_ids=run_ids)

    def write(self, df: pd.DataFrame, table: str | None = None):
        return datasets.write_dataset(df, self.device_spec, self.finding, self.fingerprint, table, self.data_root)

    def write_fingerprint(self):
        return datasets.write_fingerprint(self.fingerprint, self.device_spec, self.finding, self.data_root)

    def save(self, fig, name: str):
        return plotting.save(fig, self.device_spec, self.finding, name, self.figures_root)

    # -- configurations -------------------------------------------------------
    def cores_for(self, group: str) -> tuple[int, ...]:
        return tuple(self.device.core_set(group))

    def threads_for(self, processor: str, cores: tuple[int, ...]) -> int:
        return len(cores) if processor == "cpu" else 1

    def availability(self, models: Iterable[str], engines: Iterable[str], processors: Iterable[str]) -> pd.DataFrame:
        """One row per model x engine x processor: usable, or the reason it is not."""
        rows = []
        for m, e, p in itertools.product(models, engines, processors):
            eng = get_engine(e)
            why = eng.availability(self.device, p, self.model(m))
            rows.append(dict(model=m, engine=e, processor=p, available=why is None, reason=why or ""))
        return pd.DataFrame(rows, columns=AVAILABILITY_COLUMNS)

    def latency_config(self, model: str, engine: str, processor: str, core_group: str = "all",
                       **extra: Any) -> Config:
        """A harness configuration running ``model`` with ``engine`` on ``processor``: the device
        supplies the engine (on a phone LiteRT is ``benchmark_model``, column ``engine`` says
        ``litert-benchmark``) and the session (``Device.open_session``)."""
        spec = self.model(model)
        eng = self.device.engine(engine)
        cores = self.cores_for(core_group)
        threads = self.threads_for(processor, cores)
        cols = dict(model=model, engine=eng.name, engine_version=eng.version(), processor=processor,
                    threads=threads, core_group=core_group, **extra)

        def opener():
            return self.device.open_session(eng, spec, processor, threads, cores, self.seed)

        return Config(columns=cols, opener=opener, cores=cores)


def context(finding: str, params: dict[str, Any]) -> StageContext:
    """The stage context from a notebook's parameters (``device``, ``profile``, ``seed``,
    ``harness`` and the finding's own keys)."""
    settings = HarnessSettings.from_params(dict(params["harness"]))
    own = {k: v for k, v in params.items() if k not in ("device", "profile", "seed", "harness")}
    return StageContext(finding=finding, device_spec=params["device"], profile=params["profile"],
                        seed=int(params["seed"]), settings=settings, params=own)


def context_from_notebook(finding: str, namespace: dict[str, Any]) -> StageContext:
    """The stage context from a notebook's globals: the common keys plus the finding's
    ``PARAMS`` keys, validated again (a notebook run by hand gets the same checks)."""
    import importlib

    from study import stages
    from study.config import COMMON_KEYS, check_section

    mod = importlib.import_module(stages.module_of(finding))
    own = check_section(finding, {k: namespace[k] for k in mod.PARAMS if k in namespace}, mod.PARAMS)
    params = {k: namespace[k] for k in COMMON_KEYS}
    ctx = context(finding, {**params, **own})
    start_stage_log(ctx)
    return ctx


def start_stage_log(ctx: StageContext) -> None:
    """Inside a kernel: progress and native libraries' log lines (file descriptor 2) go to the
    stage's log, ``data/<device>/raw/log/<finding>.log``, not into the executed notebook."""
    from study import stagelog

    if stagelog.in_kernel():
        stagelog.start(stagelog.log_path(ctx.device_spec, ctx.finding, ctx.data_root))


def run_finding(ctx: StageContext, measure, analyse, plot) -> dict[str, Any]:
    """A finding's standard run: fingerprint, measure, analyse, plot (what the notebook and
    the reference runner call)."""
    ctx.write_fingerprint()
    data = measure(ctx)
    tables = analyse(ctx, data)
    figs = plot(ctx, tables)
    return {"data": data, "tables": tables, "figures": figs}


def absent_rows(availability: pd.DataFrame) -> pd.DataFrame:
    return availability[~availability["available"]].reset_index(drop=True)


__all__ = ["AVAILABILITY_COLUMNS", "EngineUnavailable", "StageContext", "absent_rows", "context", "context_from_notebook", "run_finding"]
