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


def _pick(df, **eq):
    for k, v in eq.items():
        df = df[df[k] == v]
    return df


def _ci(r, col="ratio") -> str:
    return f"{r[col]:.2f}x [{r['ci_lo']:.2f}, {r['ci_hi']:.2f}]"


def summary(ref_dir: Path) -> str:
    """What a promoted reference shows beside the paper, read from its tables, as Markdown
    (README's GPU section is this function's output): C1 GPU delegation per model beside the
    static checker, C3 co-execution vs the GPU alone, C5 slowdowns under 3 competitors, C6
    missed frames of the co-running app, C10 where measured; what is missing says so."""
    import pandas as pd

    ref_dir = Path(ref_dir)
    fps = sorted(ref_dir.glob("*/fingerprint.json"))
    if not fps:
        raise FileNotFoundError(f"no fingerprint under {ref_dir}")
    fp = json.loads(fps[0].read_text())
    gpu = (fp.get("nvidia_smi") or {}).get("gpus", [{}])[0]
    libs = fp.get("libraries", {})
    rep = json.loads((ref_dir / "reference_run.json").read_text()) if (ref_dir / "reference_run.json").exists() else {}
    done = [s for s, r in rep.get("stages", {}).items() if r.get("ok")]
    lines = [f"Device `{fp['device_slug']}`: {gpu.get('name', 'no NVIDIA GPU')} (driver {gpu.get('driver_version', '?')}), "
             f"{fp.get('cpu_model')} with {fp.get('logical_cpus')} logical CPUs; torch {libs.get('torch')}, "
             f"ai-edge-litert {libs.get('ai-edge-litert')}; profile `{rep.get('profile', fp.get('profile'))}`, "
             f"{rep.get('windows', '?')} device windows. A desktop CPU with a discrete data-centre GPU, not a phone "
             "SoC: these numbers say what the pitfalls look like on such a host, not on phones.",
             "", f"Stages measured: {', '.join(done) or 'none'}; not yet: "
             f"{', '.join(s for s in study_stages.findings() if s not in done) or 'none'}.", ""]

    def table(name):
        f = ref_dir / f"{name}.parquet"
        return pd.read_parquet(f) if f.exists() else None

    sup = table("operator_support/support")
    if sup is not None:
        lines.append("* **C1** (LiteRT GPU accelerator, runtime operators placed on the GPU, measured vs the static checker):")
        for m, g in sup[(sup.engine == "litert") & (sup.processor == "gpu")].groupby("model"):
            meas, stat = _pick(g, view="gpu"), _pick(g, view="gpu (static)")
            if meas.empty or not bool(meas.iloc[0]["available"]):
                continue
            a, b = meas.iloc[0], (stat.iloc[0] if len(stat) else None)
            txt = f"{int(a.n_supported)}/{int(a.n_runtime)} on the GPU, {int(a.n_fallback)} fallen back"
            if b is not None and not pd.isna(b.n_supported):
                txt += f"; static checker {int(b.n_supported)}/{int(b.n_runtime)}"
            lines.append(f"  * `{m}`: {txt}")
    slow = table("mulayer_overhead/slowdown")
    if slow is not None:
        r = _pick(slow, model="fast_style_transfer", pair_kind="cpu+gpu", variant="r*", reference="gpu alone",
                  metric="latency_ms")
        if len(r):
            r = r.iloc[0]
            lines.append(f"* **C3** Fast Style Transfer ({int(r.input_size)}px), channel-wise CPU+GPU co-execution at the "
                         f"profile-predicted split / GPU alone: {_ci(r)} (n = {int(r.n_num)}, {int(r.n_den)}); "
                         "paper: 1.9x-3.1x slower.")
    sd = table("contention/slowdown")
    if sd is not None:
        parts = []
        for sut, kind in (("cpu/litert", "cpu"), ("gpu/litert", "gpu"), ("gpu/torch", "gpu")):
            r = _pick(sd, sut=sut, kind=kind, n_competitors=3.0)
            if len(r):
                r = r.iloc[0]
                parts.append(f"{sut} with 3 {kind} competitors {r.slowdown:.2f}x [{r.ci_lo:.2f}, {r.ci_hi:.2f}]")
        if parts:
            lines.append(f"* **C5** slowdown ({sd.model.iloc[0]}): " + "; ".join(parts) + "; paper: CPU 10.2x, GPU 2.1x.")
    cv = table("contention/corun_vs_idle")
    if cv is not None:
        parts = [f"{r.inference_sut} beside a {r.render}-drawn app at {r.fps:.0f} fps: missed {100 * r.missed_share:.1f}% "
                 f"vs idle {100 * r.idle_missed_share:.1f}% (p99 frame time {r.frame_ms_p99:.1f} vs {r.idle_frame_ms_p99:.1f} ms)"
                 for r in cv[cv.inference_sut.str.startswith("gpu")].itertuples()]
        if parts:
            lines.append(f"* **C6** ({cv.inference_model.iloc[0]} inference): " + "; ".join(parts)
                         + "; paper: over 90% frame drops.")
    lines += _c8_lines(table("frame_reuse/claims"), table("frame_reuse/summary"))
    cl = table("cross_level/summary")
    cut = rep.get("stages", {}).get("cross_level", {}).get("state") == "running"
    lines.append("* **C10**: " + ("see `cross_level/summary.parquet`" if cl is not None else
                                  "not measured yet on this device (its stage was cut at the end of the device time)."
                                  if cut else "not measured yet on this device."))
    return "\n".join(lines)


def _c8_lines(claims, summ) -> list[str]:
    """C8 (frame reuse): the claim's pooled row, and per model on the GPU the full inference
    beside frame-level reuse at the smallest change threshold (latency and fidelity)."""
    if claims is None or not len(claims[claims.claim == "C8"]):
        return []
    c = claims[claims.claim == "C8"].iloc[0]
    out = [f"* **C8** frame reuse: {c.verdict}, latency reduction {c.effect:.2f} [{c.ci_lo:.2f}, {c.ci_hi:.2f}] "
           f"({int(c.runs)} runs); {str(c.reason).split(';')[0]}."]
    if summ is not None:
        g = summ[(summ.processor == "gpu")]
        for (m, eng), rows in g.groupby(["model", "engine"]):
            full, fr = rows[rows.mechanism == "full"], rows[rows.mechanism == "frame"].sort_values("threshold")
            if len(full) and len(fr):
                a, b = full.iloc[0], fr.iloc[0]
                out.append(f"  * `{m}` on the GPU ({eng}): every frame {a.lat_mean:.2f} ms; frame reuse at threshold "
                           f"{b.threshold:g}: {b.lat_mean:.2f} ms [{b.lat_ci_lo:.2f}, {b.lat_ci_hi:.2f}], {b.metric} "
                           f"{b.fidelity:.3f}")
    return out


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
    sm = sub.add_parser("summary")
    sm.add_argument("ref_dir", type=Path)
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
    if args.cmd == "summary":
        print(summary(args.ref_dir))
        return 0
    if args.cmd == "status":
        for stage, state in stage_states(args.run_dir).items():
            print(f"{stage:18s} {state}")
        return 0
    print(f"promoted to {promote(args.run_dir, args.device)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
