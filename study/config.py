"""Parameters: read ``params.yaml``, resolve one stage's section, validate it.

Layout of ``params.yaml``::

    device: local            # or adb:SERIAL
    profile: quick           # quick | full | reference (bounded-time run for reference datasets)
    seed: 20240503
    harness: {quick: {...}, full: {...}}   # study.measure.HarnessSettings per profile
    models: {...}            # the models stage
    <stage>:                 # one section per finding stage
      key: value             # used by every profile
      quick: {key: value}    # overrides for the quick profile
      full:  {key: value}    # overrides for the full profile

A stage's parameters are its section (profile overrides applied) plus ``device``,
``profile``, ``seed`` and ``harness`` (the settings of the chosen profile). Each
finding module declares its schema as ``PARAMS: dict[str, Field]``; a key the
schema does not know, a value of the wrong type or out of range is an error, raised
before anything is measured or written.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from study import paths

PROFILES = ("quick", "full", "reference")
PROCESSORS = ("cpu", "gpu", "npu")
COMMON_KEYS = ("device", "profile", "seed", "harness")
# stage -> module that declares PARAMS (and optionally check_params(resolved) for cross-field checks)
STAGE_MODULES = {
    "models": "study.models.export",
    "rigor": "study.rigor",
    "operator_support": "study.operator_support",
    "mulayer_overhead": "study.mulayer_overhead",
    "contention": "study.contention",
    "profiling_error": "study.profiling_error",
    "frame_reuse": "study.frame_reuse",
    "cross_level": "study.cross_level",
    "paper": "study.paper",
}


class ParamError(ValueError):
    """A parameter that is unknown, missing, of the wrong type or out of range."""


_MISSING = object()


@dataclass(frozen=True)
class Field:
    type: type | tuple[type, ...]
    default: Any = _MISSING
    choices: Sequence[Any] | None = None      # allowed values (for lists: allowed items)
    min: float | None = None
    max: float | None = None
    help: str = ""
    check: Callable[[Any], str | None] | None = None  # returns an error text or None

    def validate(self, name: str, value: Any) -> Any:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in types:
            raise ParamError(f"{name}: expected {_tname(types)}, got a boolean {value!r}")
        if not isinstance(value, types):
            raise ParamError(f"{name}: expected {_tname(types)}, got {type(value).__name__} {value!r}")
        items = value if isinstance(value, list) else [value]
        if self.choices is not None:
            bad = [v for v in items if v not in self.choices]
            if bad:
                raise ParamError(f"{name}: {bad!r} not allowed; choose from {list(self.choices)}")
        for v in items:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if self.min is not None and v < self.min:
                    raise ParamError(f"{name}: {v!r} is below the minimum {self.min}")
                if self.max is not None and v > self.max:
                    raise ParamError(f"{name}: {v!r} is above the maximum {self.max}")
        if self.check is not None:
            err = self.check(value)
            if err:
                raise ParamError(f"{name}: {err}")
        return value


def _tname(types) -> str:
    return " or ".join(t.__name__ for t in types)


def check_section(where: str, section: dict[str, Any], schema: dict[str, Field]) -> dict[str, Any]:
    """Values of ``section`` checked against ``schema``, defaults filled in."""
    if not isinstance(section, dict):
        raise ParamError(f"{where}: expected a mapping, got {type(section).__name__}")
    unknown = sorted(set(section) - set(schema))
    if unknown:
        raise ParamError(f"{where}: unknown key(s) {unknown}; known: {sorted(schema)}")
    out = {}
    for name, field in schema.items():
        if name in section:
            out[name] = field.validate(f"{where}.{name}", section[name])
        elif field.default is _MISSING:
            raise ParamError(f"{where}: missing key {name!r}")
        else:
            out[name] = field.default
    return out


def positive_ints(v) -> str | None:
    return None if all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v) else "non-negative integers expected"


def load_params(path: Path = paths.PARAMS) -> dict[str, Any]:
    if not path.exists():
        raise ParamError(f"no parameters file at {path}")
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ParamError(f"{path}: expected a mapping at the top level")
    return data


def validate_common(params: dict[str, Any]) -> dict[str, Any]:
    from study.devices import DeviceError, parse_spec
    from study.measure import HarnessSettings

    for k in COMMON_KEYS:
        if k not in params:
            raise ParamError(f"params.yaml: missing top-level key {k!r}")
    try:
        parse_spec(params["device"])
        paths.device_dirname(params["device"])
    except (DeviceError, ValueError) as e:
        raise ParamError(f"device: {e}") from e
    if "adb" in params or str(params["device"]).startswith("adb"):
        from study.devices import DeviceError
        from study.devices.adb import check_adb_params  # the adb section; on a phone the binary's sha256 too

        try:
            check_adb_params(params)
        except (ParamError, DeviceError) as e:
            raise ParamError(str(e) if str(e).startswith("adb") else f"adb: {e}") from e
    if params["profile"] not in PROFILES:
        raise ParamError(f"profile: {params['profile']!r} unknown; choose from {list(PROFILES)}")
    if not isinstance(params["seed"], int) or isinstance(params["seed"], bool):
        raise ParamError(f"seed: expected an integer, got {params['seed']!r}")
    harness = params["harness"]
    if not isinstance(harness, dict) or params["profile"] not in harness:
        raise ParamError(f"harness: needs a section for profile {params['profile']!r}")
    try:
        settings = HarnessSettings.from_params(dict(harness[params["profile"]]))
    except (TypeError, ValueError) as e:
        raise ParamError(f"harness.{params['profile']}: {e}") from e
    import dataclasses

    return {"device": params["device"], "profile": params["profile"], "seed": params["seed"],
            "harness": dataclasses.asdict(settings)}


def stage_section(stage: str, params: dict[str, Any]) -> dict[str, Any]:
    """The stage's section with the chosen profile's overrides applied."""
    section = params.get(stage, {}) or {}
    if not isinstance(section, dict):
        raise ParamError(f"{stage}: expected a mapping")
    base = {k: v for k, v in section.items() if k not in PROFILES}
    override = section.get(params["profile"], {}) or {}
    if not isinstance(override, dict):
        raise ParamError(f"{stage}.{params['profile']}: expected a mapping")
    return {**base, **override}


def resolve(stage: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the stage's notebook receives: common keys + its validated section."""
    if stage not in STAGE_MODULES:
        raise ParamError(f"unknown stage {stage!r}; known: {sorted(STAGE_MODULES)}")
    params = load_params() if params is None else params
    common = validate_common(params)
    mod = importlib.import_module(STAGE_MODULES[stage])
    section = check_section(stage, stage_section(stage, params), mod.PARAMS)
    for k in section:
        if k in COMMON_KEYS:
            raise ParamError(f"{stage}: key {k!r} clashes with a top-level key")
    resolved = {**common, **section}
    checker = getattr(mod, "check_params", None)
    if checker is not None:
        checker(resolved, params)
    return resolved


def configured_models(params: dict[str, Any]) -> list[str]:
    """Names of every model the models stage produces under these parameters."""
    from study.models.export import model_names

    return model_names(check_section("models", stage_section("models", {**params, "profile": params.get("profile", "quick")}),
                                     importlib.import_module(STAGE_MODULES["models"]).PARAMS))


def check_models(stage: str, names: list[str], params: dict[str, Any]) -> None:
    known = configured_models(params)
    bad = [n for n in names if n not in known]
    if bad:
        raise ParamError(f"{stage}.models: {bad} are not produced by the models stage; known: {known}")


def validate_all(params: dict[str, Any] | None = None, stages: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    params = load_params() if params is None else params
    out = {}
    for stage in stages or STAGE_MODULES:
        try:
            importlib.import_module(STAGE_MODULES[stage])
        except ModuleNotFoundError as e:
            if e.name == STAGE_MODULES[stage]:
                continue  # a finding not built yet
            raise
        out[stage] = resolve(stage, params)
    if stages is None:
        out["adb"] = adb_section(params)
    return out


def adb_section(params: dict[str, Any]) -> dict[str, Any]:
    """What ``data/params/adb.json`` holds: the phone settings on an ``adb`` device, a
    constant on the local one (so changing ``adb.*`` reruns only phone runs)."""
    if not str(params.get("device", "")).startswith("adb"):
        return {"device": "local: the adb section is not used"}
    from study.devices.adb import check_adb_params

    return {"device": params["device"], **check_adb_params(params)}


def write_validated(resolved: dict[str, dict[str, Any]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stage, values in resolved.items():
        values = dict(values)
        if stage in ("models", "adb"):  # device-independent or already reduced: no device-driven reruns
            values = {k: v for k, v in values.items() if k not in ("device", "profile", "harness", "seed")}
        (folder / f"{stage}.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
