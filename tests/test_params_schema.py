"""Every leaf of params.yaml against hostile values: each refused by ``validate`` with one line
naming the key (issue 17). The sweep calls the validation function directly; a handful of
cases run the real ``python -m study validate`` in a subprocess."""
from __future__ import annotations

import copy
import math
import subprocess
import sys
from typing import Any, Iterator

import pytest
import yaml

from study import config, paths, schema
from study.schema import PROFILES, Field, ParamError

HOSTILE = ["../../etc/passwd", "$(touch /tmp/hetero-pwned)", "a;rm -rf /", "a\nb", "x\x00y", "-" + "x" * 600, " "]
# lists that may legitimately be empty (documented in params.yaml / the schema's help)
EMPTY_LIST_OK = {"models.mediapipe", "models.user", "paper.devices", "paper.peer_dirs", "frame_reuse.frame_thresholds",
                 "frame_reuse.region_thresholds", "cross_level.quant_variants", "cross_level.prune_strengths",
                 "cross_level.lowrank_ratios", "cross_level.coexec_models",
                 "adaptive_runtime.split_models"}
# strings that may legitimately be empty ("" = not used / chosen by the tool)
EMPTY_STR_OK = {"adb.benchmark_binary", "adb.benchmark_sha256", "adb.gfxinfo_package", "adb.nnapi_accelerator"}


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return yaml.safe_load(paths.PARAMS.read_text())


def _leaves(tree: dict[str, Any], prefix: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _leaves(v, (*prefix, k))
        else:
            yield (*prefix, k), v


def _field(path: tuple) -> Field:
    return schema.leaves()[".".join(path)]


def _schema_key(path: tuple) -> str:
    """``rigor.full.models`` -> ``rigor.models`` (the key the empty-list/str allowances name)."""
    return ".".join(p for p in path if p not in PROFILES or path[0] == "harness")


def _bad_numbers(f: Field, is_int: bool) -> list[Any]:
    out = [math.nan, math.inf, -math.inf, -1, "abc", True, False, None, [], {}, "", "1.0"]
    if is_int:
        out.append(1.5)
    if f.min is not None:
        out.append(f.min if f.min_open else f.min - (1 if is_int else max(1e-6, abs(f.min) * 1e-3)))
        if f.min > 0 or f.min_open:
            out.append(0)
    if f.max is not None:
        out.append(f.max if f.max_open else f.max + (1 if is_int else max(1e-6, abs(f.max) * 1e-3)))
        out.append(f.max * 1000 + 1)
    return out


def bad_values(path: tuple, value: Any) -> list[Any]:
    """Type-appropriate bad values for one leaf: NaN, infinities, negative, zero, out of range,
    wrong type, empty, hostile strings."""
    f = _field(path)
    key = _schema_key(path)
    types = f.types
    if isinstance(value, list) or list in types:
        item_types = f.item if isinstance(f.item, tuple) else (f.item or str,)
        item = value[0] if value else ("x" if str in item_types else 1)
        out: list[Any] = ["notalist", None, 3, {}, [[item]], [None], [True] if bool not in item_types else ["x"]]
        if key not in EMPTY_LIST_OK:
            out.append([])
        if f.unique and str in item_types:
            out.append([item, item] if isinstance(item, str) else ["x", "x"])
        if str in item_types:
            out += [[h] for h in HOSTILE] + [["nosuch_name"]] * (f.choices is not None) + [[""]]
        else:
            is_int = int in item_types and float not in item_types
            out += [[b] for b in _bad_numbers(f, is_int) if not isinstance(b, list)]
        if f.max_len is not None:
            out.append(list(value) + list(value) + list(value))
        return out
    if bool in types:
        return [1, 0, "yes", "true", None, [], "", 2.0, {}]
    if str in types:
        out = [1, 1.5, True, None, [], {}, "a\nb", "x\x00y", "x" * 1000]
        if key == "paper.report_title":
            return out + ["", "<script>alert(1)</script>", "\t"]
        out += HOSTILE + (["nosuch"] if f.choices is not None else [])
        if key not in EMPTY_STR_OK:
            out.append("")
        return out
    return _bad_numbers(f, int in types and float not in types)


def _set(tree: dict, path: tuple, value: Any) -> dict:
    tree = copy.deepcopy(tree)
    node = tree
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return tree


def _refused(params: dict, key: str) -> str:
    with pytest.raises(ParamError) as e:
        config.validate_all(params)
    msg = str(e.value)
    assert "\n" not in msg, f"{key}: message of more than one line: {msg!r}"
    assert len(msg) < 500, f"{key}: message too long: {msg!r}"
    return msg


def test_every_leaf_of_the_schema_has_a_type_and_a_range_or_choices():
    missing = [k for k, f in schema.leaves().items() if not f.has_domain()]
    assert missing == []


def test_params_yaml_has_no_leaf_outside_the_schema(base):
    known = schema.leaves()
    assert [".".join(p) for p, _ in _leaves(base) if ".".join(p) not in known] == []


def test_repository_params_are_valid_under_every_profile(base):
    out = config.validate_all(base)
    assert set(out) >= set(schema.STAGES)
    for p in PROFILES:
        for stage in schema.STAGES:
            config.resolve(stage, base, p)


def test_every_leaf_refuses_every_bad_value(base):
    """The sweep: every leaf of params.yaml (overrides of every profile and the harness
    profiles included) x its bad values; 100% refused with one line naming the key."""
    config.validate_all(base)   # warm: stage modules imported once
    cases = not_refused = 0
    failures = []
    for path, value in _leaves(base):
        key = ".".join(path)
        for bad in bad_values(path, value):
            cases += 1
            try:
                msg = _refused(_set(base, path, bad), key)
            except pytest.fail.Exception:
                not_refused += 1
                failures.append(f"{key} = {bad!r}: accepted")
                continue
            except AssertionError as e:
                failures.append(str(e).splitlines()[0])
                continue
            if not msg.startswith(key) and f"{key}" not in msg:
                failures.append(f"{key} = {bad!r}: message does not name the key: {msg}")
    assert cases > 1500
    assert failures == [], f"{len(failures)} of {cases} cases:\n" + "\n".join(failures[:40])


@pytest.mark.parametrize("where", [(), ("harness", "quick"), ("adb",), ("rigor",), ("rigor", "full"), ("models",),
                                   ("paper", "reference"), ("contention", "quick")])
def test_unknown_keys_are_refused_at_every_level(base, where):
    params = copy.deepcopy(base)
    node = params
    for k in where:
        node = node.setdefault(k, {})
    node["nosuchkey"] = 1
    msg = _refused(params, "nosuchkey")
    assert msg.startswith(".".join((*where, "nosuchkey"))) and "unknown" in msg


@pytest.mark.parametrize("section", ["harness", "models", "adb", "rigor", "paper"])
@pytest.mark.parametrize("bad", [3, "x", [1], None])
def test_a_section_that_is_not_a_mapping_is_refused(base, section, bad):
    if bad is None and section != "harness":
        return   # an empty section means its defaults (tested by the sweep's stages through their keys)
    msg = _refused(_set(base, (section,), bad), section)
    assert msg.startswith(section)


def test_overrides_of_a_profile_that_does_not_run_are_checked(base):
    assert base["profile"] == "quick"
    msg = _refused(_set(base, ("rigor", "full", "models"), ["nosuch_model"]), "rigor.full.models")
    assert "nosuch_model" in msg and "full" in msg
    msg = _refused(_set(base, ("harness", "full", "max_seconds"), math.nan), "harness.full.max_seconds")
    assert msg.startswith("harness.full.max_seconds")


def test_cross_field_and_existence_checks(base):
    assert "g1" in config.device_core_groups("local") or "little" in config.device_core_groups("local")
    msg = _refused(_set(base, ("rigor", "core_group"), "mid7"), "rigor.core_group")
    assert "does not exist" in msg
    msg = _refused(_set(base, ("harness", "quick", "max_samples"), 2), "harness.quick.max_samples")
    assert "min_samples" in msg
    msg = _refused(_set(base, ("paper", "peer_dirs"), ["peers/nosuch"]), "paper.peer_dirs")
    assert "not a folder" in msg
    msg = _refused(_set(base, ("adb", "benchmark_binary"), "nosuch/benchmark_model"), "adb.benchmark_binary")
    assert "no such file" in msg
    msg = _refused(_set(base, ("models", "formats"), []), "models.formats")
    assert msg.startswith("models.formats")
    msg = _refused(_set(base, ("profiling_error", "candidates"), ["litert/cpu/mid3"]), "profiling_error.candidates")
    assert "mid3" in msg


def test_yaml_problems_are_one_line(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("device: local\ndevice: adb\n")
    with pytest.raises(ParamError, match="device: given twice"):
        config.load_params(p)
    p.write_text("device: [local\n")
    with pytest.raises(ParamError, match="not valid YAML") as e:
        config.load_params(p)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- the real command
def _validate_cli(tmp_path, params: dict | str) -> subprocess.CompletedProcess:
    f = tmp_path / "params.yaml"
    f.write_text(params if isinstance(params, str) else yaml.safe_dump(params))
    return subprocess.run([sys.executable, "-m", "study", "validate", "--dry-run", "--params", str(f)],
                          capture_output=True, text=True, cwd=paths.ROOT, timeout=120)


@pytest.mark.parametrize("path,value,key", [
    (("contention", "visit_max_seconds"), math.nan, "contention.visit_max_seconds"),
    (("harness", "quick", "min_samples"), "abc", "harness.quick.min_samples"),
    (("seed",), -1, "seed"),
    (("device",), "../../etc/passwd", "device"),
    (("nosuch_section",), {"a": 1}, "nosuch_section"),
    (("rigor", "core_group"), "g7", "rigor.core_group"),
])
def test_validate_command_refuses_with_one_line_and_status_2(tmp_path, base, path, value, key):
    r = _validate_cli(tmp_path, _set(base, path, value))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"error: {key}"), lines[0]
    assert r.stdout == ""


def test_validate_command_refuses_broken_yaml(tmp_path):
    r = _validate_cli(tmp_path, "device: local\nseed: [1\n")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "not valid YAML" in r.stderr


def test_refused_validate_leaves_the_last_valid_parameters(tmp_path, monkeypatch, base, capsys):
    from study import cli

    out = tmp_path / "params"
    monkeypatch.setattr(paths, "VALIDATED", out)
    monkeypatch.setattr(config, "load_params", lambda path=None: copy.deepcopy(base))
    assert cli.main(["validate"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "rigor.json" in before
    monkeypatch.setattr(config, "load_params", lambda path=None: _set(base, ("rigor", "sustained_seconds"), math.inf))
    assert cli.main(["validate"]) == 2
    assert "rigor.sustained_seconds" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["params"]   # no scratch folder left


def test_run_models_and_unknown_stage_do_not_crash(monkeypatch, capsys):
    from study import cli

    called = []
    monkeypatch.setattr(cli, "cmd_models", lambda args: called.append(args.stage) or 0)
    assert cli.main(["run", "models"]) == 0 and called == ["models"]
    assert cli.main(["run", "nosuch"]) == 2
    assert "unknown stage 'nosuch'" in capsys.readouterr().err


def test_methods_table_fits_100_columns(capsys):
    from study import cli

    assert cli.main(["methods"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "core placement" in out


def test_devices_output_fits_100_columns(capsys):
    from study import cli

    assert cli.main(["devices"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "core groups:" in out and "sensors:" in out


def test_schema_is_a_leaf_module():
    r = subprocess.run([sys.executable, "-c", "import sys, study.schema; "
                        "print(sorted(m for m in sys.modules if m.startswith('study')))"],
                       capture_output=True, text=True, cwd=paths.ROOT, timeout=60)
    assert r.stdout.strip() == "['study', 'study.schema']"


def test_schema_choices_match_the_modules():
    from study import competitors, contention, cross_level, frame_reuse, mulayer_overhead, scenario
    from study.models import export, zoo

    assert tuple(zoo.ZOO) == schema.ZOO_MODELS
    assert export.MEDIAPIPE_TASKS == schema.MEDIAPIPE_TASKS
    assert competitors.KINDS == schema.COMPETITOR_KINDS
    assert (contention.SUTS, contention.PLACEMENTS, contention.RENDERS) == (schema.SUTS, schema.PLACEMENTS, schema.RENDERS)
    assert set(contention.CLIPS) == set(schema.CLIPS) == set(frame_reuse.CLIPS)
    assert (mulayer_overhead.MODELS, mulayer_overhead.PAIRS) == (schema.MULAYER_MODELS, schema.PAIRS)
    assert (mulayer_overhead.GRANULARITIES, mulayer_overhead.FRAME_POLICIES) == (schema.GRANULARITIES,
                                                                                 schema.FRAME_POLICIES)
    assert scenario.PHASE_KINDS == schema.PHASE_KINDS
    assert tuple(frame_reuse.SUPPORTED) == schema.REUSE_MODELS
    assert tuple(cross_level.SUPPORTED) == schema.CROSS_LEVEL_MODELS and cross_level.QUANT == schema.QUANT
