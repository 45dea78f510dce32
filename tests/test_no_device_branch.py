"""No finding module branches on the kind of device (issue 18: the phone is one more system
under test). A finding builds configurations and asks the device (``study.devices.supports``,
``Device.engine`` / ``open_session``) or the stage registry (``study.phone.not_measurable``:
each stage's ``phone`` runner in ``study.stages``); it never tests for a phone: no ``is_phone``,
no comparison with a device kind (``.kind == "adb"``, ``"local"``), no ``AdbDevice``, no
``device_spec.startswith("adb")``."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from study import stages

KINDS = {"adb", "adb:", "local"}
NAMES = {"is_phone", "AdbDevice"}


def device_branches(source: str) -> list[str]:
    """Where ``source`` tests for the kind of device: 'line: what'."""
    out = []
    for node in ast.walk(ast.parse(source)):
        where = getattr(node, "lineno", 0)
        if isinstance(node, ast.Name) and node.id in NAMES or isinstance(node, ast.Attribute) and node.attr in NAMES:
            out.append(f"{where}: {getattr(node, 'id', None) or node.attr}")
        elif isinstance(node, ast.alias) and node.name in NAMES:
            out.append(f"{where}: import {node.name}")
        elif isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            if any(isinstance(p, ast.Constant) and p.value in KINDS for p in parts):
                out.append(f"{where}: compares with a device kind")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith"
              and node.args and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("adb")):
            out.append(f"{where}: startswith('adb')")
    return out


def finding_files() -> list[Path]:
    """Each finding's module (a package: every module in it)."""
    files = []
    for name in stages.findings():
        origin = Path(importlib.util.find_spec(stages.module_of(name)).origin)
        files += sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
    return files


@pytest.mark.parametrize("snippet", [
    "if phone.is_phone(ctx):\n    pass",
    "from study.phone import is_phone",
    "ok = ctx.device.kind == 'adb'",
    "ok = getattr(dev, 'kind', None) != 'local'",
    "ok = isinstance(dev, AdbDevice)",
    "from study.devices.adb import AdbDevice",
    "ok = ctx.device_spec.startswith('adb')",
    "ok = 'adb' == spec",
])
def test_the_scan_finds_each_form(snippet):
    assert device_branches(snippet), snippet


def test_capability_questions_are_not_device_branches():
    assert not device_branches("if not devices.supports(ctx.device_spec, PYTHON):\n    pass\n"
                               "why = phone.not_measurable(ctx, FINDING)\nok = cond.kind == 'cpu'")


def test_no_finding_module_branches_on_the_kind_of_device():
    files = finding_files()
    assert len(files) >= len(stages.findings())
    found = {str(f.name): device_branches(f.read_text()) for f in files}
    assert not {k: v for k, v in found.items() if v}, found
