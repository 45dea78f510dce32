"""The study's command line (``python -m study ...``).

  validate            check params.yaml for every stage, write data/params/<stage>.json
  models              the models stage: export the zoo, extract trained models, manifest
  run STAGE           run a stage's notebook with papermill, parameters from params.yaml
  devices [--json]    what the device has: processors (or why absent), core groups, sensors
  methods             METHODS.md practices as applied on this device (measurement rigor)
  adb devices         phones on the adb server (serial, model, SoC, Android, ABI)
  adb check DEVICE    verify and push the benchmark binary, show what the phone offers

Every command checks its inputs first and exits with status 2 and one clear line
on bad parameters, before anything is measured or written.

The stage commands (validate, models, run) end when their parent (``dvc repro``, a
shell) dies, and so does the notebook's kernel and every process it starts
(``study.lifetime``): no stage measures or writes after its ``dvc repro`` is gone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from study import paths


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def cmd_validate(args) -> int:
    from study.config import ParamError, validate_all, write_validated

    try:
        resolved = validate_all()
        if args.check_device:
            from study.devices import get_device

            get_device(resolved[next(iter(resolved))]["device"]).processors()
    except (ParamError, ValueError) as e:
        return _err(str(e))
    write_validated(resolved, paths.VALIDATED)
    print(f"parameters valid for {len(resolved)} stages -> {paths.VALIDATED.relative_to(paths.ROOT)}/")
    return 0


def notebook_parameters(nb_path) -> dict[str, Any]:
    import papermill as pm

    return pm.inspect_notebook(str(nb_path))


def _kernel_manager_class():
    """papermill's kernel manager, starting the kernel with a parent-death signal: the kernel
    (and, through their own, its children) ends when this process dies."""
    from jupyter_client import AsyncKernelManager

    from study import lifetime

    class StageKernelManager(AsyncKernelManager):
        async def _async_pre_start_kernel(self, **kw):
            cmd, kw = await super()._async_pre_start_kernel(**kw)
            kw.update(lifetime.popen_kwargs())
            return cmd, kw

    return StageKernelManager


def execute_notebook(nb_in, nb_out, parameters: dict[str, Any], *, log_output: bool = True):
    """papermill on ``nb_in`` -> ``nb_out`` with ``parameters``, its kernel bound to this process."""
    import papermill as pm

    return pm.execute_notebook(str(nb_in), str(nb_out), parameters=parameters, cwd=str(paths.ROOT),
                               progress_bar=False, log_output=log_output, report_mode=False,
                               kernel_manager_class=_kernel_manager_class())


def run_stage(stage: str, params: dict[str, Any] | None = None, *, log_output: bool = True) -> int:
    """Validate, then execute the stage's notebook with exactly its parameters."""
    import papermill as pm

    from study.config import ParamError, resolve

    try:
        resolved = resolve(stage, params)
        nb_in = paths.source_notebook(stage)
        if not nb_in.exists():
            raise ParamError(f"stage {stage}: notebook {nb_in} is missing")
        declared = notebook_parameters(nb_in)
        unknown = sorted(set(resolved) - set(declared))
        if unknown:
            raise ParamError(f"stage {stage}: notebook {nb_in.name} defines no parameter(s) {unknown} "
                             f"in its 'parameters' cell")
    except (ParamError, ValueError) as e:
        return _err(str(e))
    nb_out = paths.executed_notebook(resolved["device"], stage)
    nb_out.parent.mkdir(parents=True, exist_ok=True)
    try:
        execute_notebook(nb_in, nb_out, resolved, log_output=log_output)
    except pm.PapermillExecutionError as e:
        print(f"error: stage {stage} failed in cell {e.exec_count}: {e.ename}: {e.evalue}", file=sys.stderr)
        return 1
    print(f"stage {stage}: executed notebook -> {nb_out.relative_to(paths.ROOT)}")
    return 0


def cmd_run(args) -> int:
    return run_stage(args.stage)


def cmd_models(args) -> int:
    from study.models.export import main

    return main()


def cmd_devices(args) -> int:
    from study.devices import DeviceError, get_device

    try:
        dev = get_device(args.device)
        procs = dev.processors()
    except (DeviceError, ValueError) as e:
        return _err(str(e))
    if args.json:
        print(json.dumps(dev.fingerprint(), indent=2, default=str))
        return 0
    print(f"device {dev.spec} ({dev.slug()})")
    for p in procs:
        state = "available" if p.available else f"ABSENT: {p.reason}"
        print(f"  {p.name:4s} {state}")
        for b, why in p.backends.items():
            print(f"       {b:10s} {'ok' if why is None else why}")
    print(f"  core groups: {dev.core_groups()}")
    print(f"  sensors: {json.dumps(dev.read_sensors(), default=str)}")
    return 0


def cmd_methods(args) -> int:
    try:
        from study.rigor import methods_table
    except ImportError as e:
        return _err(f"methods table not available: {e}")
    from study.devices import DeviceError, get_device

    try:
        dev = get_device(args.device)
    except (DeviceError, ValueError) as e:
        return _err(str(e))
    df = methods_table(dev)
    if args.json:
        print(df.to_json(orient="records", indent=2))
    else:
        import pandas as pd

        with pd.option_context("display.max_colwidth", 80, "display.width", 200):
            print(df.to_string(index=False))
    return 0


def cmd_adb(args) -> int:
    from study.devices import DeviceError, parse_spec
    from study.devices.adb import AdbDevice, AdbSettings, list_devices

    try:
        settings = AdbSettings.from_params()
        if args.server:
            settings = AdbSettings(**{**settings.__dict__, "server": args.server})
        if args.adb_cmd == "devices":
            df = list_devices(settings)
            if args.json:
                print(df.to_json(orient="records", indent=2))
            elif df.empty:
                print(f"no phones on the adb server {settings.server}")
            else:
                print(df.to_string(index=False))
            return 0
        kind, serial = parse_spec(args.device)
        if kind != "adb":
            return _err(f"{args.device!r} is not a phone (adb:SERIAL)")
        dev = AdbDevice(args.device, serial, settings)
        remote = dev.ensure_binary()
        flags = dev.binary_flags() or set()
        print(f"phone {dev.serial} ({dev.slug()}): benchmark_model sha256 ok -> {remote}")
        print("  delegates in the binary: " + ", ".join(f for f in ("use_xnnpack", "use_gpu", "use_nnapi",
                                                                    "use_hexagon") if f in flags))
        for p in dev.processors():
            state = "available" if p.available else f"ABSENT: {p.reason}"
            print(f"  {p.name:4s} {state}")
            for b, why in p.backends.items():
                print(f"       {b:12s} {'ok' if why is None else why}")
        print(f"  core groups: {dev.core_groups()}")
        print(f"  sensors: {json.dumps(dev.read_sensors(), default=str)}")
    except (DeviceError, ValueError) as e:
        return _err(str(e))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="check params.yaml, write data/params/")
    v.add_argument("--check-device", action="store_true", help="also reach the device")
    v.set_defaults(func=cmd_validate)
    sub.add_parser("models", help="the models stage").set_defaults(func=cmd_models)
    r = sub.add_parser("run", help="run one stage's notebook")
    r.add_argument("stage")
    r.set_defaults(func=cmd_run)
    d = sub.add_parser("devices", help="processors, core groups and sensors of a device")
    d.add_argument("--device", default="local")
    d.add_argument("--json", action="store_true", help="the full fingerprint as JSON")
    d.set_defaults(func=cmd_devices)
    m = sub.add_parser("methods", help="METHODS.md practices as applied on this device")
    m.add_argument("--device", default="local")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_methods)
    a = sub.add_parser("adb", help="Android phones over adb: list them, check one")
    a.add_argument("adb_cmd", choices=["devices", "check"])
    a.add_argument("device", nargs="?", default="adb", help="for check: adb:SERIAL (or adb with one phone attached)")
    a.add_argument("--server", help="adb server host:port (default: params.yaml adb.server)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_adb)
    return p


STAGE_COMMANDS = ("validate", "models", "run")


def main(argv: list[str] | None = None) -> int:
    ppid = os.getppid()  # first: the parent that started this process
    args = build_parser().parse_args(argv)
    if argv is None and args.cmd in STAGE_COMMANDS:  # a process of its own (python -m study ...)
        from study import lifetime

        lifetime.die_with_parent(ppid)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
