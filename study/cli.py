"""The study's command line (``python -m study ...``).

  validate            check params.yaml for every stage, write data/params/<stage>.json
  models              the models stage: export the zoo, extract trained models, manifest
  run STAGE           run a stage's notebook with papermill, parameters from params.yaml
  devices [--json]    what the device has: processors (or why absent), core groups, sensors
  methods             docs/methods.md practices as applied on this device (measurement rigor)
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
from pathlib import Path
from typing import Any

from study import paths, stages


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def cmd_validate(args) -> int:
    from study.config import ParamError, load_params, validate_all, write_validated

    try:
        resolved = validate_all(load_params(Path(args.params)) if args.params else None)
        if args.check_device:
            from study.devices import get_device

            get_device(resolved[next(iter(resolved))]["device"]).processors()
    except (ParamError, ValueError) as e:
        return _err(str(e))
    except Exception as e:  # noqa: BLE001 - a check that broke: still one line, not a traceback
        print(f"error: validate could not finish: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
              file=sys.stderr)
        return 1
    if args.dry_run:
        print(f"parameters valid for {len(resolved)} stages (nothing written)")
        return 0
    write_validated(resolved, paths.VALIDATED)
    print(f"parameters valid for {len(resolved)} stages -> {paths.VALIDATED}/")
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
    if args.stage == "models":       # the one stage without a notebook
        return cmd_models(args)
    if args.stage == "validate":
        args.check_device = args.dry_run = False
        args.params = None
        return cmd_validate(args)
    if args.stage not in stages.with_notebook():
        return _err(f"unknown stage {args.stage!r}; stages: {', '.join(stages.names())}")
    return run_stage(args.stage)


def cmd_models(args) -> int:
    from study.config import ParamError, resolve
    from study.models.export import main

    try:
        section = resolve("models")
    except ParamError as e:
        return _err(str(e))
    return main(section)


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
    print_device(dev, procs, 10)
    return 0


def _wrapped(first: str, text: str, indent: int) -> str:
    """``first`` then ``text``, wrapped to ``WIDTH`` columns, continuation lines at ``indent``."""
    import textwrap

    return textwrap.fill(text, WIDTH, initial_indent=first, subsequent_indent=" " * indent,
                         break_long_words=True, break_on_hyphens=False)


def print_device(dev, procs, backend_width: int) -> None:
    """Processors (with why one is absent), core groups and one sensor reading, in lines of at
    most ``WIDTH`` columns."""
    for p in procs:
        state = "available" if p.available else f"ABSENT: {p.reason}"
        print(_wrapped(f"  {p.name:4s} ", state, 7))
        for b, why in p.backends.items():
            print(_wrapped(f"       {b:{backend_width}s} ", "ok" if why is None else str(why), 8 + backend_width))
    print(_wrapped("  core groups: ", str(dev.core_groups()), 4))
    print("  sensors:")
    for k, v in dev.read_sensors().items():
        print(_wrapped(f"    {k}: ", json.dumps(v, default=str), 6))


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
        if "device" in df.columns and df["device"].nunique() == 1:
            print(f"device {df['device'].iloc[0]}")
            df = df.drop(columns="device")
        print(text_table(df))
    return 0


WIDTH = 100   # terminal tables fit this many columns


def text_table(df, width: int = WIDTH, gap: int = 2) -> str:
    """``df`` as a plain-text table no wider than ``width``: the last column takes the room the
    others leave (each capped at a third of the width) and every cell is wrapped to its column."""
    import textwrap

    cols = [str(c) for c in df.columns]
    rows = [[("" if v is None else str(v)) for v in r] for r in df.itertuples(index=False)]
    cap = max(8, width // 3)
    widths = [min(cap, max([len(c)] + [len(r[i]) for r in rows])) for i, c in enumerate(cols)]
    widths[-1] = max(10, width - sum(widths[:-1]) - gap * (len(cols) - 1))
    lines = []

    def emit(cells):
        wrapped = [textwrap.wrap(c, w, break_long_words=True, break_on_hyphens=False) or [""]
                   for c, w in zip(cells, widths)]
        for k in range(max(len(w) for w in wrapped)):
            parts = [(w[k] if k < len(w) else "").ljust(widths[i]) for i, w in enumerate(wrapped)]
            lines.append((" " * gap).join(parts).rstrip())

    emit(cols)
    lines.append((" " * gap).join("-" * w for w in widths))
    for r in rows:
        emit(r)
    return "\n".join(lines)


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
        print_device(dev, dev.processors(), 12)
    except (DeviceError, ValueError) as e:
        return _err(str(e))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="check params.yaml, write data/params/")
    v.add_argument("--check-device", action="store_true", help="also reach the device")
    v.add_argument("--dry-run", action="store_true", help="check only; write nothing")
    v.add_argument("--params", help="check this file instead of params.yaml (with --dry-run: a what-if)")
    v.set_defaults(func=cmd_validate)
    sub.add_parser("models", help="the models stage").set_defaults(func=cmd_models)
    r = sub.add_parser("run", help="run one stage's notebook")
    r.add_argument("stage")
    r.set_defaults(func=cmd_run)
    d = sub.add_parser("devices", help="processors, core groups and sensors of a device")
    d.add_argument("--device", default="local")
    d.add_argument("--json", action="store_true", help="the full fingerprint as JSON")
    d.set_defaults(func=cmd_devices)
    m = sub.add_parser("methods", help="docs/methods.md practices as applied on this device")
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
