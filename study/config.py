"""Parameters: read ``params.yaml``, check it against the schema, resolve one stage's section.

The schema (every key, its type and its range or choices) is ``study.schema``; this module
is the loader. Layout of ``params.yaml``::

    device: local            # or adb:SERIAL
    profile: quick           # quick | full | reference (bounded-time run for reference datasets)
    seed: 20240503
    harness: {quick: {...}, full: {...}, reference: {...}}   # study.measure.HarnessSettings per profile
    models: {...}            # the models stage
    adb: {...}               # phones
    <stage>:                 # one section per finding stage
      key: value             # used by every profile
      quick: {key: value}    # overrides for the quick profile
      full:  {key: value}    # overrides for the full profile

A stage's parameters are its section (profile overrides applied) plus ``device``,
``profile``, ``seed`` and ``harness`` (the settings of the chosen profile). Every leaf of
the whole file is checked (every profile's overrides too), then what needs the machine:
model names against what the models stage produces, core groups against the device's,
user model files opened and parsed, host paths. A key the schema does not know, a value
of the wrong type, out of range, not finite or naming nothing that exists is a
``ParamError`` naming the key, raised before anything is measured or written.
"""
from __future__ import annotations

import functools
import importlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import yaml

from study import paths, schema, stages
from study.swap import scratch_pair, swap_in
from study.schema import COMMON_KEYS, PROCESSORS, PROFILES, Field, ParamError, check_section  # noqa: F401 (re-exported)

# stage -> module that declares check_params(resolved, params) for cross-field checks (study.stages)
STAGE_MODULES = {name: stages.module_of(name) for name in stages.with_section()}


# ---------------------------------------------------------------------------- reading
class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _unique_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ParamError(f"{key}: given twice (line {key_node.start_mark.line + 1} of params.yaml)")
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_params(path: Path = paths.PARAMS) -> dict[str, Any]:
    if not path.exists():
        raise ParamError(f"no parameters file at {path}")
    try:
        with open(path) as f:
            data = yaml.load(f, Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ParamError(f"{path.name}: not valid YAML{line}: {problem}") from None
    if not isinstance(data, dict):
        raise ParamError(f"{path.name}: expected a mapping at the top level")
    return data


# ---------------------------------------------------------------------------- what exists here
@functools.lru_cache(maxsize=8)
def device_core_groups(device: str) -> tuple[str, ...] | None:
    """Core groups of ``device`` where they are known without reaching it (this host);
    None for a phone (its groups are checked when the stage reaches it)."""
    if device != "local":
        return None
    from study.devices.local import allowed_cpus, cpufreq_limits, split_core_groups

    cpus = allowed_cpus()
    return tuple(split_core_groups(cpus, cpufreq_limits(cpus)))


def _check_core_group(name: str, group: str, device: str) -> None:
    groups = device_core_groups(device)
    if groups is not None and group not in groups:
        raise ParamError(f"{name}: core group {group!r} does not exist on {device}; it has {', '.join(groups)}")


def _check_names(where: str, section: dict[str, Any], fields: dict[str, Field], params: dict[str, Any],
                 profile: str) -> None:
    """Strings that name something: checked against what exists on this machine."""
    device = params["device"]
    raw = params.get(where) if isinstance(params.get(where), dict) else {}
    override = raw.get(profile) if isinstance(raw.get(profile), dict) else {}
    for key, field in fields.items():
        if field.names is None or key not in section:
            continue
        value = section[key]
        items = value if isinstance(value, list) else [value]
        name = f"{where}.{profile}.{key}" if key in override else f"{where}.{key}"
        if field.names == "core_group":
            for g in items:
                if g != "auto":
                    _check_core_group(name, g, device)
        elif field.names == "candidate":
            for c in items:
                _check_core_group(name, c.rsplit("/", 1)[1], device)
        elif field.names == "model":
            known = configured_models({**params, "profile": profile})
            bad = [m for m in items if m not in known]
            if bad:
                raise ParamError(f"{name}: {', '.join(map(repr, bad))} not produced by the models stage; "
                                 f"known: {', '.join(known)}")
        elif field.names == "file":
            for p in items:
                if p and not (Path(p) if Path(p).is_absolute() else paths.ROOT / p).is_file():
                    raise ParamError(f"{name}: {p!r}: no such file")
        elif field.names == "folder":
            for p in items:
                if not (Path(p) if Path(p).is_absolute() else paths.ROOT / p).is_dir():
                    raise ParamError(f"{name}: {p!r} is not a folder")
        elif field.names == "user_model":
            from study.models.check import check_user_model

            for p in items:
                check_user_model(p, name)


# ---------------------------------------------------------------------------- resolving
def validate_common(params: dict[str, Any], profile: str | None = None) -> dict[str, Any]:
    """``device``, ``profile``, ``seed`` and the harness settings of the profile (the whole
    file checked first)."""
    from study.measure import HarnessSettings

    tree = schema.check_tree(params)
    profile = tree["profile"] if profile is None else profile
    try:
        paths.device_dirname(tree["device"])
    except ValueError as e:
        raise ParamError(f"device: {e}") from None
    if "adb" in params or tree["device"].startswith("adb"):
        from study.devices import DeviceError
        from study.devices.adb import check_adb_params  # on a phone the binary's sha256 too

        try:
            check_adb_params(params)
        except (ParamError, DeviceError) as e:
            raise ParamError(str(e) if str(e).startswith("adb") else f"adb: {e}") from None
        _check_names("adb", tree["adb"], schema.ADB, params, profile)
    harness = tree["harness"].get(profile, tree["harness"][tree["profile"]])
    try:
        settings = HarnessSettings.from_params(dict(harness))
    except (TypeError, ValueError) as e:
        raise ParamError(f"harness.{profile}: {e}") from None
    import dataclasses

    return {"device": tree["device"], "profile": profile, "seed": tree["seed"],
            "harness": dataclasses.asdict(settings)}


def stage_section(stage: str, params: dict[str, Any]) -> dict[str, Any]:
    """The stage's section with the chosen profile's overrides applied (unchecked)."""
    section = params.get(stage, {}) or {}
    if not isinstance(section, dict):
        raise ParamError(f"{stage}: expected a mapping")
    base = {k: v for k, v in section.items() if k not in PROFILES}
    override = section.get(params["profile"], {}) or {}
    if not isinstance(override, dict):
        raise ParamError(f"{stage}.{params['profile']}: expected a mapping")
    return {**base, **override}


def resolve(stage: str, params: dict[str, Any] | None = None, profile: str | None = None) -> dict[str, Any]:
    """Everything the stage's notebook receives: common keys + its validated section (under
    ``profile``, by default the chosen one)."""
    if stage not in STAGE_MODULES:
        raise ParamError(f"unknown stage {stage!r}; known: {', '.join(STAGE_MODULES)}")
    params = load_params() if params is None else params
    common = validate_common(params, profile)
    profile = common["profile"]
    tree = schema.check_tree(params)
    section = schema.stage_section(stage, tree, profile)
    _check_names(stage, section, schema.STAGES[stage], params, profile)
    resolved = {**common, **section}
    checker = getattr(importlib.import_module(STAGE_MODULES[stage]), "check_params", None)
    if checker is not None:
        checker(resolved, {**params, "profile": profile})
    return resolved


def configured_models(params: dict[str, Any]) -> list[str]:
    """Names of every model the models stage produces under these parameters."""
    raw = params.get("models") or {}
    if not isinstance(raw, dict):
        raise ParamError(f"models: expected a mapping of keys, got {type(raw).__name__}")
    merged = {k: v for k, v in raw.items() if k not in PROFILES}
    override = raw.get(params.get("profile", "quick")) or {}
    merged.update(override if isinstance(override, dict) else {})
    section = check_section("models", merged, schema.MODELS)
    return list(section["zoo"]) + list(section["mediapipe"]) + [Path(p).stem for p in section["user"]]


def check_models(stage: str, names: list[str], params: dict[str, Any]) -> None:
    known = configured_models(params)
    bad = [n for n in names if n not in known]
    if bad:
        raise ParamError(f"{stage}.models: {bad} are not produced by the models stage; known: {known}")


def validate_all(params: dict[str, Any] | None = None, stages: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every stage resolved under the chosen profile (returned) and under every other profile
    (checked only: a bad ``full:`` override is refused while the quick profile runs)."""
    params = load_params() if params is None else params
    tree = schema.check_tree(params)
    chosen = tree["profile"]
    # first what needs no stage module (fast: a bad file or name is refused in a second or two)
    for profile in (chosen, *(p for p in PROFILES if p != chosen)):
        for stage in stages or STAGE_MODULES:
            try:
                _check_names(stage, schema.stage_section(stage, tree, profile), schema.STAGES[stage], params, profile)
            except ParamError as e:
                raise (e if profile == chosen else ParamError(f"{e} (under the {profile} profile's overrides)")) from None
    out = {}
    for stage in stages or STAGE_MODULES:
        try:
            importlib.import_module(STAGE_MODULES[stage])
        except ModuleNotFoundError as e:
            if e.name == STAGE_MODULES[stage]:
                continue  # a finding not built yet
            raise
        out[stage] = resolve(stage, params)
        for other in PROFILES:
            if other != chosen:
                try:
                    resolve(stage, params, other)
                except ParamError as e:
                    raise ParamError(f"{e} (under the {other} profile's overrides)") from None
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
    """Write every stage's ``<stage>.json`` into a new folder beside ``folder``, then swap it in:
    ``folder`` holds either the last complete set or the new one, never a mix."""
    new, old = scratch_pair(folder)
    for stage, values in resolved.items():
        values = dict(values)
        if stage in ("models", "adb"):  # device-independent or already reduced: no device-driven reruns
            values = {k: v for k, v in values.items() if k not in ("device", "profile", "harness", "seed")}
        text = json.dumps(values, indent=2, sort_keys=True) + "\n"
        with open(new / f"{stage}.json", "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    swap_in(new, folder, old)


__all__ = ["COMMON_KEYS", "PROCESSORS", "PROFILES", "STAGE_MODULES", "Field", "ParamError", "adb_section", "check_models",
           "check_section", "configured_models", "device_core_groups", "load_params", "resolve",
           "stage_section", "validate_all", "validate_common", "write_validated"]
