"""Reference runs: every finding's ``run(ctx)`` without papermill or DVC, for machines
that have neither (a lent GPU box) and for committed reference datasets.

  python -m study.reference --out DIR [--profile reference] [--stages rigor operator_support ...]

Writes ``DIR/data/<device>/...`` and ``DIR/figures/<device>/...`` exactly as the stages
would, plus ``DIR/reference_run.json`` (per stage: seconds, ok or the error). A stage
that fails is reported and the others go on. ``promote`` copies such a run into
``data/reference/<device-slug>/`` (small Parquet tables and fingerprints only).

Runs resume: a second ``run`` into the same DIR skips the stages already complete
(``--force`` reruns them) and a stage cut mid-way resumes from its raw logs
(``DIR/data/<device>/raw/*.jsonl``), as a killed ``dvc repro`` does, so short windows on
a lent machine add up to one complete run. ``status DIR`` says per stage what is
complete, cut (resumes next time) or not started.
"""
from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import time
import traceback
from pathlib import Path

from study import paths
from study import stages as study_stages
from study.config import ParamError, load_params, resolve

MAX_TABLE_BYTES = 2_000_000   # larger tables are raw traces: kept out of git


class DeviceMismatch(SystemExit):
    pass


def load_report(out: Path) -> dict:
    f = out / "reference_run.json"
    return json.loads(f.read_text()) if f.exists() else {}


def stage_states(out: Path) -> dict[str, str]:
    """Per stage: ``complete``, ``cut`` (started, not finished: resumes from its raw
    logs), ``failed`` (finished with an error) or ``not started``."""
    stages = load_report(out).get("stages", {})
    states = {}
    for stage in study_stages.findings():
        rec = stages.get(stage)
        if rec is None:
            states[stage] = "not started"
        elif rec.get("ok"):
            states[stage] = "complete"
        elif rec.get("state") == "running":
            states[stage] = "cut"
        else:
            states[stage] = "failed"
    return states


def run_reference(out: Path, profile: str = "reference", stages: list[str] | None = None,
                  overrides: dict | None = None, force: bool = False) -> dict:
    from study.common import context

    params = load_params()
    params["profile"] = profile
    for dotted, v in (overrides or {}).items():
        # "stage.key=value" sets the key in the stage's section for this profile
        node = params
        *parents, last = dotted.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[last] = v
        if len(parents) == 1 and isinstance(params.get(parents[0]), dict):
            params[parents[0]].setdefault(profile, {})[last] = v
    from study.devices.local import git_commit

    out.mkdir(parents=True, exist_ok=True)
    previous = load_report(out)
    if previous and previous.get("profile") != profile:
        raise SystemExit(f"{out} holds a {previous.get('profile')!r} run, not {profile!r}: use another --out")
    report = {"profile": profile, "overrides": {**previous.get("overrides", {}), **(overrides or {})},
              "study_commit": git_commit(), "windows": previous.get("windows", 0) + 1,
              "stages": previous.get("stages", {})}
    if previous.get("device_slug"):
        report["device_slug"] = previous["device_slug"]
    for stage in stages or study_stages.findings():
        done = report["stages"].get(stage, {})
        if done.get("ok") and not force:
            print(f"== {stage}: complete in an earlier window, skipped", flush=True)
            continue
        t0 = time.time()
        # recorded before it runs: a window that ends mid-stage leaves "running" (status: cut)
        report["stages"][stage] = {"ok": False, "state": "running", "seconds": 0,
                                   "seconds_before": done.get("seconds_before", 0) + done.get("seconds", 0),
                                   "windows": done.get("windows", 0) + 1}
        (out / "reference_run.json").write_text(json.dumps(report, indent=2))
        try:
            mod = importlib.import_module(study_stages.module_of(stage))
            resolved = resolve(stage, params)
            ctx = context(stage, resolved)
            ctx.data_root = out / "data"
            ctx.figures_root = out / "figures"
            slug = ctx.fingerprint["device_slug"]
            if report.setdefault("device_slug", slug) != slug:
                # windows on another machine never add up into one device's run
                raise DeviceMismatch(f"{out} holds a run measured on {report['device_slug']}, this machine is "
                                     f"{slug}: use another --out")
            print(f"== {stage} ({profile})", flush=True)
            mod.run(ctx)
            report["stages"][stage].update(ok=True, state="complete", seconds=round(time.time() - t0, 1),
                                           device_slug=ctx.fingerprint["device_slug"])
        except DeviceMismatch:
            if done:
                report["stages"][stage] = done
            else:
                del report["stages"][stage]
            report["windows"] -= 1
            report["device_slug"] = previous["device_slug"]
            (out / "reference_run.json").write_text(json.dumps(report, indent=2))
            raise
        except ModuleNotFoundError as e:
            report["stages"][stage].update(state="failed", error=f"not built: {e}")
        except (ParamError, Exception) as e:  # report and go on
            traceback.print_exc()
            report["stages"][stage].update(state="failed", seconds=round(time.time() - t0, 1),
                                           error=f"{type(e).__name__}: {e}"[:2000])
        (out / "reference_run.json").write_text(json.dumps(report, indent=2))
        print(f"   {stage}: {report['stages'][stage]}", flush=True)
    return report


def promote(run_dir: Path, device: str = "local", dest_root: Path = paths.REFERENCE) -> Path:
    """Copy a reference run's tables into ``data/reference/<slug>/``: Parquet tables under
    the size cap, fingerprints and the run report; raw logs stay out. Only the stages the
    run report calls complete are copied (a stage cut by the end of a window is not)."""
    src = run_dir / "data" / device
    states = stage_states(run_dir) if load_report(run_dir) else {}
    fps = sorted(src.glob("*/fingerprint.json"))
    if not fps:
        raise FileNotFoundError(f"no fingerprint under {src}")
    slug = json.loads(fps[0].read_text())["device_slug"]
    dest = dest_root / slug
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.rglob("*")):
        if f.is_dir() or "raw" in f.relative_to(src).parts:
            continue
        stage = f.relative_to(src).parts[0].removesuffix(".parquet")
        if states.get(stage, "complete") != "complete":
            continue
        if f.suffix == ".parquet" and f.stat().st_size > MAX_TABLE_BYTES:
            print(f"skipped (too large for git: {f.stat().st_size / 1e6:.1f} MB): {f.relative_to(src)}")
            continue
        if f.suffix not in (".parquet", ".json"):
            continue
        target = dest / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    if (run_dir / "reference_run.json").exists():
        shutil.copyfile(run_dir / "reference_run.json", dest / "reference_run.json")
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m study.reference", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--profile", default="reference")
    r.add_argument("--stages", nargs="*", default=None)
    r.add_argument("--set", nargs="*", default=[], metavar="STAGE.KEY=YAML",
                   help="parameter overrides, e.g. contention.models=[mobilenet_v2] (recorded in the run report)")
    r.add_argument("--force", action="store_true", help="rerun stages complete in an earlier window")
    st = sub.add_parser("status")
    st.add_argument("run_dir", type=Path)
    p = sub.add_parser("promote")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--device", default="local")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        import yaml

        overrides = {}
        for item in args.set:
            key, _, val = item.partition("=")
            overrides[key] = yaml.safe_load(val)
        rep = run_reference(args.out, args.profile, args.stages, overrides, force=args.force)
        return 0 if all(s["ok"] for s in rep["stages"].values()) else 1
    if args.cmd == "status":
        for stage, state in stage_states(args.run_dir).items():
            print(f"{stage:18s} {state}")
        return 0
    print(f"promoted to {promote(args.run_dir, args.device)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
