"""Finding 2: muLayer-style co-execution on two processors, its overhead, and the
granularity of parallel scheduling (claims C3 and C4).

The paper: co-executing Fast Style Transfer on CPU+GPU with muLayer (every layer's
output channels split between the processors, run concurrently, merged) is 1.9x to
3.1x slower than the GPU alone, because of scheduling and synchronization; coarse
granularity (subgraphs) leaves processors idle, fine granularity (inside an operator)
adds waits and transfers.

Method. ``study.coexec`` is a real co-execution engine for the zoo's PyTorch models
(CPU+GPU with a CUDA GPU; two disjoint CPU core groups, the second one in a pinned
worker process, on any host). For every model and processor pair it measures, through
the harness (one row per timed call, with the engine's time decomposition joined to it):

* each processor alone (the plain model: ``single``);
* operator level: output channels split at ratio r (share on processor ``b``) for the
  swept ratios, r = 0 and r = 1 through the engine, the ratio r* predicted from
  per-layer single-processor profiles (one global r that balances the summed compute of
  the splittable layers) and per-layer predicted ratios (``r*/layer``);
* branch level: independent branches on different processors (ResNet-50's projection
  shortcuts, the YOLO detector's stride-8 head; models without such branches say so);
* frame level: bursts of ``frames_per_run`` frames, each whole on one processor, strictly
  alternating (``alternate``) or in proportion to the processors' speeds (``balanced``).

Each co-executed call is decomposed into solo / parallel / imbalance / sync / transfer /
merge / other (``study.coexec``), and compared with each processor alone and with the
ideal bound 1/(1/t_a + 1/t_b) of an overhead-free split (from the measured single
latencies). Outputs of every co-executed configuration are checked against the plain
float32 CPU model (``agreement`` table). Slowdowns are ratios of medians with bootstrap
95% intervals (``study.stats.ratio_of_medians_ci``).

``input_size`` (0 = each model's standard input) lets the quick profile use smaller
images on a 2-core host; the reference profile uses the standard sizes.

On a phone (``device=adb:SERIAL``) nothing is measured: co-execution is ``study.coexec``, a
PyTorch engine in Python processes, and a phone runs only ``benchmark_model``
(``study.phone``, ``study.stages``). The stage still writes its outputs: one absent row per
model x pair with that reason, C3 and C4 as ``not measurable``, a figure saying so, its raw logs.
"""
from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from study import claims as C
from study import phone, stats
from study.config import check_models
from study.measure import Config, RawLog, config_key, set_affinity, current_affinity
from study.schema import STAGES, ParamError

FINDING = "mulayer_overhead"
MODELS = ("fast_style_transfer", "resnet50", "mobilenet_v2", "yolo_det", "vgg16", "transformer_enc")
FIXED_INPUT = {"vgg16": 224, "transformer_enc": 224}   # their classifier / position embedding fix the size
GRANULARITIES = ("operator", "branch", "frame")
FRAME_POLICIES = ("alternate", "balanced")
PAIRS = ("cpu+gpu", "cpu+cpu")
ALL_CORES = "single:all"   # cpu+cpu pairs: the plain model on the union of both core groups (fair host baseline)
C9_CLEARLY = 1.10          # C9 (a): "clearly slower" = at least 10% slower than the best single processor
TOLERANCE = 1e-3  # relative error of co-executed outputs against the single-processor float32 model


PARAMS = STAGES["mulayer_overhead"]   # the schema of this stage's section (study.schema)


def check_params(resolved: dict[str, Any], params: dict[str, Any]) -> None:
    check_models(FINDING, resolved["models"], params)
    size = resolved["input_size"]
    for m in resolved["models"]:
        if m in FIXED_INPUT and size not in (0, FIXED_INPUT[m]):
            raise ParamError(f"{FINDING}.input_size: {m} takes only {FIXED_INPUT[m]}x{FIXED_INPUT[m]} (use 0)")
    if not resolved["pairs"]:
        raise ParamError(f"{FINDING}.pairs: at least one pair expected")
    if not resolved["granularities"]:
        raise ParamError(f"{FINDING}.granularities: at least one granularity expected")


# =========================================================================== measure
def effective_settings(ctx):
    """The harness settings of this stage: the profile's, with ``max_samples`` capped by the
    stage's own ``max_samples`` (about 45 configurations on a GPU host: the reference
    profile's 200 samples with a cool-down per block of 10 would take a quarter of an hour)."""
    import dataclasses

    s = ctx.settings
    cap = int(ctx.params.get("max_samples", 0) or 0)
    if cap and cap < s.max_samples:
        s = dataclasses.replace(s, max_samples=max(cap, s.min_samples))
    return s


class BreakdownLog(RawLog):
    """The raw log, plus: right after the harness logs a timed sample, the engine's time
    decomposition of that same call (outside the timed region)."""

    def __init__(self, path):
        super().__init__(path)
        self.sessions: dict[str, Any] = {}

    def append(self, record: dict[str, Any]) -> None:
        super().append(record)
        if record.get("type") == "sample":
            s = self.sessions.get(record["config"])
            last = getattr(s, "last", None)
            if last:
                super().append({"type": "breakdown", "config": record["config"], "sample": record["sample"],
                                "run_id": record["run_id"], "settings_hash": record["settings_hash"], **last})
                s.last = None


def pair_plan(ctx) -> list[dict[str, Any]]:
    """The requested pairs: cores and thread counts of each side, or why a pair is absent."""
    p = ctx.params
    groups = ctx.device.core_groups()
    out = []
    for kind in p["pairs"]:
        if kind == "cpu+gpu":
            why = ctx.device.processor("gpu").backend_reason("cuda")
            g = p["gpu_cpu_group"]
            if why is None and g not in groups:
                why = f"core group {g!r} not on this device (groups: {sorted(groups)})"
            cores = groups.get(g, [])
            out.append(dict(kind=kind, pair="cpu+gpu", proc_a="gpu", proc_b="cpu", cores_a=cores, cores_b=cores,
                            group_a=g, group_b=g, available=why is None,
                            reason="" if why is None else f"no CUDA GPU for PyTorch: {why}"))
        else:
            ga, gb = p["cpu_groups"]
            missing = [g for g in (ga, gb) if g not in groups]
            why = f"core group(s) {missing} not on this device (groups: {sorted(groups)})" if missing else None
            if why is None and set(groups[ga]) & set(groups[gb]):
                why = f"core groups {ga} and {gb} overlap"
            out.append(dict(kind=kind, pair=f"{ga}+{gb}", proc_a=ga, proc_b=gb, cores_a=groups.get(ga, []),
                            cores_b=groups.get(gb, []), group_a=ga, group_b=gb, available=why is None,
                            reason=why or ""))
    return out


def model_input(name: str, size: int, seed: int):
    import torch

    from study.models.zoo import ZOO

    shape = tuple(ZOO[name].input_shape)
    if size:
        shape = shape[:2] + (size, size)
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _weights_seed(ctx, name: str) -> int:
    try:
        return int(ctx.model(name).seed)
    except Exception:  # no manifest (models stage not run): the zoo's default seed
        return 0


def _open_pair(stack: contextlib.ExitStack, plan: dict[str, Any], p: dict[str, Any]):
    from study import coexec

    if plan["kind"] == "cpu+gpu":
        pair = coexec.CudaPair(cpu_threads=max(1, len(plan["cores_a"])), tf32=p["gpu_tf32"])
    else:
        pair = coexec.CpuWorkerPair(plan["cores_a"], plan["cores_b"], names=(plan["proc_a"], plan["proc_b"]),
                                    timeout_s=p["worker_timeout_s"], spin_us=p["spin_us"])
    return stack.enter_context(pair)


@contextlib.contextmanager
def _pinned(cores):
    before = current_affinity()
    set_affinity(cores)
    try:
        yield
    finally:
        set_affinity(before)


def _profile(ctx, plan, pair, rt, model: str, size: int, runs: int, log: RawLog) -> dict[str, Any]:
    """Per-layer profile (engine at r=0 and r=1) and whole-model single times; reused from
    the raw log when a killed run measured them already. One record holds the whole profile
    (written after all of it is measured): a profile cut by a kill is measured again."""
    from study import coexec

    key = json.dumps({"pair": plan["pair"], "model": model, "input_size": size, "runs": runs, "env": ctx.env},
                     sort_keys=True, default=str)
    old = [r for r in log.records("profile") if r.get("profile_key") == key]
    if old:
        layers, singles = old[-1]["layers"], old[-1]["singles"]
    else:
        cuda = plan["kind"] == "cpu+gpu"
        with _pinned(plan["cores_a"]):
            layers = coexec.profile_layers(pair, rt, runs)
            sa = coexec.time_runs(coexec.SingleSession(rt.model_a, rt.x_a, pair.threads_a, cuda=cuda), runs)
        with _pinned(plan["cores_b"]):
            sb = coexec.time_runs(coexec.SingleSession(rt.model_b, rt.x_b, pair.threads_b), runs)
        singles = {"a": sa, "b": sb}
        log.append({"type": "profile", "profile_key": key, "pair": plan["pair"], "model": model,
                    "layers": layers, "singles": singles})
    r_star, r_layer, rows = coexec.predict_ratios(layers)
    ta, tb = float(np.median(singles["a"])), float(np.median(singles["b"]))
    return {"r_star": r_star, "r_layer": r_layer, "rows": rows, "t_a": ta, "t_b": tb,
            "r_frame": ta / (ta + tb) if ta + tb > 0 else 0.5}


def _weighted_mean_ratio(r_layer: dict[str, float], rows: list[dict[str, Any]]) -> float:
    w = {r["layer"]: (r["t_a_ms"] + r["t_b_ms"]) for r in rows if not math.isnan(r["t_a_ms"] + r["t_b_ms"])}
    tot = sum(w.values())
    return float(sum(r_layer[k] * w[k] for k in w) / tot) if tot > 0 else float(np.mean(list(r_layer.values()) or [0.5]))


def _configs(ctx, plan, pair, rt, model: str, size: int, prof: dict[str, Any], log: BreakdownLog):
    """(Config, check) per configuration of one model on one pair; ``check`` runs the
    configuration once and returns its outputs with the reference outputs."""
    from study import coexec

    p = ctx.params
    cuda = plan["kind"] == "cpu+gpu"
    base = dict(model=model, pair=plan["pair"], pair_kind=plan["kind"], proc_a=plan["proc_a"], proc_b=plan["proc_b"],
                input_size=size or int(rt.x_a.shape[-1]), threads_a=pair.threads_a, threads_b=pair.threads_b,
                group_a=plan["group_a"], group_b=plan["group_b"])
    out = []

    def add(columns, factory, cores):
        columns = {**base, **columns}
        key = config_key(columns)

        def opener():
            s = factory()
            log.sessions[key] = s
            return s

        out.append((Config(columns=columns, opener=opener, cores=tuple(cores)), factory))

    single = dict(granularity="single", ratio=None, ratio_kind=None)
    add(dict(single, label=f"single:{plan['proc_a']}", processor=plan["proc_a"]),
        lambda: coexec.SingleSession(rt.model_a, rt.x_a, pair.threads_a, cuda=cuda), plan["cores_a"])
    add(dict(single, label=f"single:{plan['proc_b']}", processor=plan["proc_b"]),
        lambda: coexec.SingleSession(rt.model_b, rt.x_b, pair.threads_b), plan["cores_b"])
    if not cuda:
        # the host form's fair baseline: the model alone on all the cores the two groups have together
        cores_all = sorted(set(plan["cores_a"]) | set(plan["cores_b"]))
        add(dict(single, label=ALL_CORES, processor="all"),
            lambda: coexec.SingleSession(rt.model_a, rt.x_a, pair.threads_a + pair.threads_b), cores_all)
    co = dict(processor=plan["pair"])
    if "operator" in p["granularities"]:
        sweep = sorted({float(r) for r in p["ratios"]} | {0.0, 1.0})
        for r in sweep:
            add(dict(co, granularity="operator", label=f"operator:r={r:g}", ratio=r, ratio_kind="sweep"),
                lambda r=r: coexec.CoexecSession(pair, rt, "operator", r), plan["cores_a"])
        rs = round(prof["r_star"], 4)
        add(dict(co, granularity="operator", label="operator:r*", ratio=rs, ratio_kind="r*"),
            lambda: coexec.CoexecSession(pair, rt, "operator", rs), plan["cores_a"])
        rl = {k: round(v, 4) for k, v in prof["r_layer"].items()}
        add(dict(co, granularity="operator", label="operator:r*/layer",
                 ratio=round(_weighted_mean_ratio(rl, prof["rows"]), 4), ratio_kind="r*/layer"),
            lambda: coexec.CoexecSession(pair, rt, "operator", rl), plan["cores_a"])
    if "branch" in p["granularities"] and rt.branch_model is not None:
        add(dict(co, granularity="branch", label="branch", ratio=None, ratio_kind=None),
            lambda: coexec.CoexecSession(pair, rt, "branch"), plan["cores_a"])
    notes = []
    if "frame" in p["granularities"]:
        n = p["frames_per_run"]
        for pol in p["frame_policies"]:
            share = 0.5 if pol == "alternate" else round(prof["r_frame"], 4)
            assign = coexec.frame_assignment(n, share)
            if "a" not in assign or "b" not in assign:
                notes.append(f"frame:{pol}: share {share:.3g} of {n} frames leaves "
                             f"{plan['proc_b'] if 'b' not in assign else plan['proc_a']} without a frame "
                             f"(the same as one processor alone): not measured")
                continue
            add(dict(co, granularity="frame", label=f"frame:{pol}", ratio=share, ratio_kind=pol),
                lambda assign=assign: coexec.FrameSession(pair, rt, assign), plan["cores_a"])
    return out, notes


def _agreement(plan, rt, model: str, entries, x_ref_out, frame_ref_outs) -> list[dict[str, Any]]:
    """Every configuration run once: its outputs against the plain float32 CPU model."""
    from study import coexec

    rows = []
    for cfg, factory in entries:
        c = cfg.columns
        with _pinned(cfg.cores):
            s = factory()
            if c["granularity"] == "frame":
                errs = [coexec.rel_error(y, r) for y, r in zip(s.outputs(), frame_ref_outs)]
                err = max(errs)
            else:
                err = coexec.rel_error(s.output(), x_ref_out)
        rows.append(dict(pair=plan["pair"], model=model, label=c["label"], granularity=c["granularity"],
                         ratio=c["ratio"], max_rel_err=err, tolerance=TOLERANCE, ok=bool(err < TOLERANCE),
                         reference="plain float32 model on the CPU",
                         metric="max|y - y_ref| / max|y_ref|"))
    return rows


def measure_phone(ctx) -> pd.DataFrame:
    """On a phone: the dataset says what was not measured and why (nothing runs there)."""
    p = ctx.params
    ga, gb = p["cpu_groups"]
    pairs = [dict(pair="cpu+gpu", pair_kind="cpu+gpu", proc_a="gpu", proc_b="cpu") if k == "cpu+gpu" else
             dict(pair=f"{ga}+{gb}", pair_kind=k, proc_a=ga, proc_b=gb) for k in p["pairs"]]
    data = phone.unsupported_rows(FINDING, ctx.device_spec, [dict(model=m, **pr) for m in p["models"] for pr in pairs])
    ctx.write(data)
    phone.close_raw_logs(ctx, [FINDING, f"{FINDING}-profile"], FINDING)
    return data


def measure(ctx) -> pd.DataFrame:
    if phone.not_measurable(ctx, FINDING):
        return measure_phone(ctx)
    import torch

    from study import coexec
    from study.models.zoo import build

    p = ctx.params
    plans = pair_plan(ctx)
    log = BreakdownLog(ctx.raw_log().path)
    prof_log = ctx.raw_log(f"{FINDING}-profile")
    entries, agreement, layers, applic, absent = [], [], [], [], []
    size = p["input_size"]
    with contextlib.ExitStack() as stack:
        for plan in plans:
            if not plan["available"]:
                for m in p["models"]:
                    absent.append(dict(model=m, pair=plan["pair"], pair_kind=plan["kind"], proc_a=plan["proc_a"],
                                       proc_b=plan["proc_b"], available=False, reason=plan["reason"]))
                continue
            pair = _open_pair(stack, plan, p)
            for m in p["models"]:
                model = build(m, _weights_seed(ctx, m))
                x = model_input(m, size, ctx.seed)
                frames = [model_input(m, size, ctx.seed + 1 + i) for i in range(p["frames_per_run"])]
                with _pinned(plan["cores_a"]):
                    rt = pair.load(f"{m}@{size}", model, x, frames)
                    with torch.inference_mode():
                        x_ref = model(x)
                        f_ref = [model(f) for f in frames]
                prof = _profile(ctx, plan, pair, rt, m, size, p["profile_runs"], prof_log)
                for r in prof["rows"]:
                    layers.append(dict(pair=plan["pair"], model=m, input_size=int(x.shape[-1]), **r,
                                       op=coexec.layer_op(rt.model_b.get_submodule(r["layer"]))))
                leaves = [mod for mod in model.modules() if not list(mod.children())]
                n_split = len(coexec.splittable_layers(model))
                applic.append(dict(pair=plan["pair"], model=m, input_size=int(x.shape[-1]), leaf_modules=len(leaves),
                                   splittable=n_split, unsplittable=len(leaves) - n_split,
                                   splittable_share=n_split / len(leaves) if leaves else float("nan"),
                                   branch_level=rt.branch_model is not None, branch_points=len(rt.branch_points),
                                   branch_note=rt.branch_note, r_star=prof["r_star"], r_frame=prof["r_frame"],
                                   t_a_profile_ms=prof["t_a"], t_b_profile_ms=prof["t_b"]))
                es, notes = _configs(ctx, plan, pair, rt, m, size, prof, log)
                applic[-1]["notes"] = "; ".join(notes)
                agreement += _agreement(plan, rt, m, es, x_ref, f_ref)
                entries += es
        configs = [c for c, _ in entries]
        settings = effective_settings(ctx)
        samples = ctx.harness(log, settings=settings).run(configs)
    data = tidy(samples, log, settings.hash(ctx.env))
    if absent:
        data = pd.concat([data, pd.DataFrame(absent)], ignore_index=True)
    ctx.write(data)
    ctx.write(pd.DataFrame(layers), table="layers")
    ctx.write(pd.DataFrame(agreement), table="agreement")
    ctx.write(pd.DataFrame(applic), table="applicability")
    failed = ctx.failures(log, configs, settings)
    ctx.write(failed if len(failed) else pd.DataFrame(columns=["reason"]), table="failures")
    log.mark_complete()
    prof_log.mark_complete()
    log.close()
    prof_log.close()
    return data


def tidy(samples: pd.DataFrame, log: RawLog, settings_hash: str) -> pd.DataFrame:
    """Samples joined with the engine's decomposition of the same call."""
    if samples.empty:
        return samples.assign(available=pd.Series(dtype=bool), reason=pd.Series(dtype=str))
    bd = pd.DataFrame([r for r in log.records("breakdown") if r.get("settings_hash") == settings_hash])
    if len(bd):
        bd = bd.drop(columns=["type", "settings_hash"]).drop_duplicates(["config", "sample", "run_id"], keep="last")
        out = samples.merge(bd, on=["config", "sample", "run_id"], how="left")
    else:
        out = samples.copy()
    out["ratio"] = pd.to_numeric(out["ratio"], errors="coerce")
    out["available"] = True
    out["reason"] = ""
    return out


# =========================================================================== analyse
GROUP = ["pair", "pair_kind", "model", "input_size"]
SHARE_COLS = [f"t_{ph}_ms" for ph in ("solo", "parallel", "imbalance", "sync", "transfer", "merge", "other")]


def _measured(data: pd.DataFrame) -> pd.DataFrame:
    if data.empty or "latency_ms" not in data:
        return pd.DataFrame(columns=GROUP + ["label", "latency_ms"])
    d = data[data["available"].fillna(False).astype(bool)].copy()
    if "frames" in d:
        d["time_per_frame_ms"] = d["latency_ms"] / d["frames"]
    return d


def _vals(d: pd.DataFrame, label: str, col: str = "latency_ms") -> np.ndarray:
    if col not in d:
        return np.array([])
    return d.loc[d["label"] == label, col].dropna().to_numpy(dtype=float)


def _boot_medians(x: np.ndarray, n_boot: int, rng) -> np.ndarray:
    return np.median(x[rng.integers(0, x.size, size=(n_boot, x.size))], axis=1)


def summary_table(d: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: latency median with CI, and the decomposition (mean shares)."""
    rows = []
    keys = GROUP + ["granularity", "label", "proc_a", "proc_b"]
    for key, g in d.groupby(keys, sort=True, dropna=False):
        x = g["latency_ms"].to_numpy(dtype=float)
        med, lo, hi = stats.median_ci(x)
        row = dict(zip(keys, key), ratio=g["ratio"].iloc[0] if "ratio" in g else None,
                   ratio_kind=g["ratio_kind"].iloc[0] if "ratio_kind" in g else None, n=len(x), median_ms=med,
                   ci_lo=lo, ci_hi=hi, cv=float(np.std(x, ddof=1) / np.mean(x)) if len(x) > 1 else np.nan)
        if "engine_wall_ms" in g and g["engine_wall_ms"].notna().any():
            wall = g["engine_wall_ms"]
            for c in SHARE_COLS:
                row[c.replace("t_", "share_").replace("_ms", "")] = float((g[c] / wall).mean())
            for c in ("compute_a_ms", "compute_b_ms", "wait_ms", "overhead_ms", "t_transfer_ms", "t_sync_ms"):
                row[f"median_{c}"] = float(g[c].median())
            for c in ("overhead_share", "idle_a", "idle_b"):
                row[c] = float(g[c].median())
        if "frames" in g and g["frames"].notna().any():
            row["throughput_fps"] = float(g["throughput_fps"].median())
            row["frame_latency_ms"] = float(g["frame_latency_ms"].median())
            row["time_per_frame_ms"] = float(g["time_per_frame_ms"].median())
            row["frames_b"] = float(g["frames_b"].median())
        rows.append(row)
    return pd.DataFrame(rows)


def _best_operator(d: pd.DataFrame) -> str | None:
    """The operator-level configuration with 0 < r < 1 and the lowest median latency."""
    op = d[(d["granularity"] == "operator") & d["ratio"].between(0, 1, inclusive="neither")]
    if op.empty:
        return None
    meds = op.groupby("label")["latency_ms"].median()
    return str(meds.idxmin())


def _singles(d: pd.DataFrame, plan_row: pd.Series) -> tuple[str, str]:
    return f"single:{plan_row['proc_a']}", f"single:{plan_row['proc_b']}"


def _with_singles(d: pd.DataFrame):
    """Each pair x model group whose two processors were both measured alone: (group key,
    group, its first row, latencies of processor a alone, of processor b alone)."""
    for key, g in d.groupby(GROUP, sort=True):
        first = g.iloc[0]
        la, lb = _singles(g, first)
        a, b = _vals(g, la), _vals(g, lb)
        if a.size and b.size:
            yield key, g, first, a, b


def ideal_table(d: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per pair and model: each processor alone, the ideal bound 1/(1/t_a + 1/t_b), and the
    engine's co-execution at r* and at the best r against that bound (bootstrap CIs)."""
    rows = []
    rng = np.random.default_rng(seed)
    for key, g, first, a, b in _with_singles(d):
        ta, tb = float(np.median(a)), float(np.median(b))
        ba, bb = _boot_medians(a, n_boot, rng), _boot_medians(b, n_boot, rng)
        ideal_boot = 1 / (1 / ba + 1 / bb)
        row = dict(zip(GROUP, key), proc_a=first["proc_a"], proc_b=first["proc_b"], t_a_ms=ta, t_b_ms=tb,
                   ideal_ms=1 / (1 / ta + 1 / tb), ideal_lo=float(np.quantile(ideal_boot, .025)),
                   ideal_hi=float(np.quantile(ideal_boot, .975)), best_single=first["proc_a"] if ta <= tb else first["proc_b"],
                   best_single_ms=min(ta, tb))
        for tag, label in (("rstar", "operator:r*"), ("best", _best_operator(g))):
            x = _vals(g, label) if label else np.array([])
            if not x.size:
                continue
            bx = _boot_medians(x, n_boot, rng)
            ratio = bx / ideal_boot
            row.update({f"{tag}_label": label, f"{tag}_ratio": float(g.loc[g["label"] == label, "ratio"].iloc[0]),
                        f"{tag}_ms": float(np.median(x)), f"{tag}_over_ideal": float(np.median(x)) / row["ideal_ms"],
                        f"{tag}_over_ideal_lo": float(np.quantile(ratio, .025)),
                        f"{tag}_over_ideal_hi": float(np.quantile(ratio, .975)),
                        f"{tag}_over_best_single": float(np.median(x)) / row["best_single_ms"]})
        rows.append(row)
    return pd.DataFrame(rows)


def _variants(g: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """(granularity, variant, label, column) of the co-executed configurations of a group."""
    out = []
    best = _best_operator(g)
    if best:
        out.append(("operator", "best r", best, "latency_ms"))
    labels = set(g["label"])
    for lab, var in (("operator:r*", "r*"), ("operator:r*/layer", "r*/layer")):
        if lab in labels:
            out.append(("operator", var, lab, "latency_ms"))
    if "branch" in labels:
        out.append(("branch", "branches", "branch", "latency_ms"))
    for pol in FRAME_POLICIES:
        lab = f"frame:{pol}"
        if lab in labels:
            out.append(("frame", f"{pol}: frame latency", lab, "frame_latency_ms"))
            out.append(("frame", f"{pol}: time per frame", lab, "time_per_frame_ms"))
    return out


def slowdown_table(d: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Co-execution over the best single processor (and over the GPU alone for CPU+GPU):
    ratio of medians with a bootstrap 95% CI; > 1 = slower than one processor alone."""
    rows = []
    for key, g, first, a, b in _with_singles(d):
        refs = [("best single", first["proc_a"] if np.median(a) <= np.median(b) else first["proc_b"],
                 a if np.median(a) <= np.median(b) else b)]
        if first["pair_kind"] == "cpu+gpu":
            refs.append(("gpu alone", "gpu", a))
        for gran, var, label, col in _variants(g):
            num = _vals(g, label, col)
            if not num.size:
                continue
            for ref, proc, den in refs:
                r, lo, hi = stats.ratio_of_medians_ci(num, den, n_boot=n_boot, seed=seed)
                rows.append(dict(zip(GROUP, key), granularity=gran, variant=var, label=label, metric=col,
                                 reference=ref, reference_processor=proc, ratio=r, ci_lo=lo, ci_hi=hi,
                                 n_num=int(num.size), n_den=int(den.size),
                                 ratio_value=float(g.loc[g["label"] == label, "ratio"].iloc[0])
                                 if g.loc[g["label"] == label, "ratio"].notna().any() else np.nan))
    return pd.DataFrame(rows)


def breakdown_table(d: pd.DataFrame) -> pd.DataFrame:
    """Mean share of each phase of the wall time, per co-executed configuration."""
    if "engine_wall_ms" not in d:
        return pd.DataFrame()
    co = d[d["granularity"] != "single"].dropna(subset=["engine_wall_ms"])
    rows = []
    for key, g in co.groupby(GROUP + ["granularity", "label"], sort=True):
        wall = g["engine_wall_ms"]
        row = dict(zip(GROUP + ["granularity", "label"], key), n=len(g), median_wall_ms=float(wall.median()))
        for c in SHARE_COLS:
            row[c[2:-3]] = float((g[c] / wall).mean())
            row[f"{c[2:-3]}_ms"] = float(g[c].median())
        row["overhead_share"] = float(g["overhead_share"].median())
        row["idle_a"] = float(g["idle_a"].median())
        row["idle_b"] = float(g["idle_b"].median())
        rows.append(row)
    return pd.DataFrame(rows)


def _verdict(lo: float, hi: float, null: float) -> tuple[str, str]:
    """Claimed side: above ``null``."""
    if np.isnan(lo) or np.isnan(hi):
        return "inconclusive", "no interval"
    if lo > null:
        return "reproduced", f"95% CI [{lo:.3g}, {hi:.3g}] lies above {null:g}"
    if hi < null:
        return "contradicted", f"95% CI [{lo:.3g}, {hi:.3g}] lies below {null:g}"
    return "inconclusive", f"95% CI [{lo:.3g}, {hi:.3g}] contains {null:g}"


def c4_parts(d: pd.DataFrame, pair_kind: str | None, idle_threshold: float = 0.5, n_boot: int = 2000,
             seed: int = 0) -> pd.DataFrame:
    """C4, two measurable parts on one pair:
    (i) fine granularity adds waits and transfers: the share of wall time in which neither
        processor computes (sync + transfer + merge + other) is larger at operator level
        (at r*) than at frame level (alternating frames): difference of medians per model;
    (ii) coarse granularity leaves a processor idle: at branch level the helper processor b
        computes during less than (1 - idle_threshold) of the inference: its idle share.
    Each row has a one-sided bootstrap p (at least ``stats.P_RESAMPLES`` resamples)."""
    rng = np.random.default_rng(seed)
    n_boot = stats.p_resamples(n_boot)
    rows = []
    if pair_kind is None or "overhead_share" not in d:
        return pd.DataFrame(columns=["part", "model", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "n", "null"])
    sub = d[d["pair_kind"] == pair_kind]
    diffs, idles = [], []
    for (model,), g in sub.groupby(["model"], sort=True):
        op = _vals(g, "operator:r*", "overhead_share")
        fr = _vals(g, "frame:alternate", "overhead_share")
        if op.size and fr.size:
            boots = _boot_medians(op, n_boot, rng) - _boot_medians(fr, n_boot, rng)
            rows.append(dict(part="i", model=model, statistic="median overhead share: operator (r*) - frame (alternate)",
                             effect=float(np.median(op) - np.median(fr)), ci_lo=float(np.quantile(boots, .025)),
                             ci_hi=float(np.quantile(boots, .975)), p_value=stats.boot_p(boots, 0.0),
                             n=int(op.size + fr.size), null=0.0,
                             operator_share=float(np.median(op)), frame_share=float(np.median(fr))))
            diffs.append((op, fr))
        br = _vals(g, "branch", "idle_b")
        if br.size:
            boots = _boot_medians(br, n_boot, rng)
            rows.append(dict(part="ii", model=model, statistic="median idle share of processor b at branch level",
                             effect=float(np.median(br)), ci_lo=float(np.quantile(boots, .025)),
                             ci_hi=float(np.quantile(boots, .975)), p_value=stats.boot_p(boots, idle_threshold),
                             n=int(br.size), null=idle_threshold))
            idles.append(br)
    if diffs:
        est = float(np.mean([np.median(o) - np.median(f) for o, f in diffs]))
        boots = np.mean([_boot_medians(o, n_boot, rng) - _boot_medians(f, n_boot, rng) for o, f in diffs], axis=0)
        rows.append(dict(part="i", model="all (mean over models)",
                         statistic="mean over models of the median overhead share difference, operator (r*) - frame",
                         effect=est, ci_lo=float(np.quantile(boots, .025)), ci_hi=float(np.quantile(boots, .975)),
                         p_value=stats.boot_p(boots, 0.0), n=int(sum(o.size + f.size for o, f in diffs)), null=0.0))
    if idles:
        est = float(np.mean([np.median(i) for i in idles]))
        boots = np.mean([_boot_medians(i, n_boot, rng) for i in idles], axis=0)
        rows.append(dict(part="ii", model="all (mean over models)",
                         statistic="mean over models of the median idle share of b at branch level", effect=est,
                         ci_lo=float(np.quantile(boots, .025)), ci_hi=float(np.quantile(boots, .975)),
                         p_value=stats.boot_p(boots, idle_threshold), n=int(sum(i.size for i in idles)),
                         null=idle_threshold))
    out = pd.DataFrame(rows)
    if len(out):
        out.insert(0, "pair_kind", pair_kind)
        out["verdict"] = [_verdict(lo, hi, n)[0] for lo, hi, n in zip(out.ci_lo, out.ci_hi, out.null)]
    return out


def _form(kind: str) -> str:
    """CPU+GPU is the paper's form of C2/C3/C4/C9; two core groups are the host form."""
    return "paper" if kind == "cpu+gpu" else "host"


def _claim_model(g: pd.DataFrame) -> str | None:
    models = sorted(set(g["model"])) if len(g) else []
    if not models:
        return None
    return C.CLAIMS["C3"].primary_model if C.CLAIMS["C3"].primary_model in models else models[0]


def _ratio_boot(num: np.ndarray, den: np.ndarray, n_boot: int, rng) -> tuple[float, np.ndarray]:
    return float(np.median(num) / np.median(den)), _boot_medians(num, n_boot, rng) / _boot_medians(den, n_boot, rng)


def _pair_text(first: pd.Series, kind: str) -> str:
    if kind == "cpu+gpu":
        return f"pair {first['pair']} (CPU with {int(first['threads_b'])} threads + CUDA GPU)"
    return (f"host form: pair {first['pair']}, two disjoint CPU core groups ({int(first['threads_a'])} + "
            f"{int(first['threads_b'])} threads, the second in a worker process), not two processors")


def _claim_row(claim: str, form: str, **kw) -> dict[str, Any]:
    return _row(claim, form, **kw)


def _row(claim: str, form: str, **kw) -> dict[str, Any]:
    c = C.CLAIMS[claim]
    base = dict(claim=claim, form=form, paper_value=c.paper_value, text=c.statistic, statistic=c.statistic,
                effect=np.nan, ci_lo=np.nan, ci_hi=np.nan, p_value=np.nan, n=0, threshold=c.null, primary=True)
    base.update(kw)
    return base


def _c2_c3_c9(g: pd.DataFrame, kind: str, n_boot: int, seed: int) -> list[dict[str, Any]]:
    """C2, C3 and C9 (a) on one pair kind, from the timed samples."""
    rng = np.random.default_rng(seed)
    B = stats.p_resamples(n_boot)
    form = _form(kind)
    m = _claim_model(g)
    gm = g[g["model"] == m]
    first = gm.iloc[0]
    la, lb = _singles(gm, first)
    a, b = _vals(gm, la), _vals(gm, lb)
    co = _vals(gm, "operator:r*")
    size = int(first["input_size"])
    rs = float(gm.loc[gm["label"] == "operator:r*", "ratio"].iloc[0]) if co.size else np.nan
    where = f"{m} ({size}x{size}); {_pair_text(first, kind)}"
    rows = []

    def _row(claim, form, **kw):    # the model the row's statistic is measured on (study.replicate's key)
        return _claim_row(claim, form, models=m, **kw)
    # ---- C2: measured co-execution at r* over the ideal bound 1/(1/t_a + 1/t_b)
    thr2 = C.CLAIMS["C2"].null
    if co.size and a.size and b.size:
        ideal = 1 / (1 / np.median(a) + 1 / np.median(b))
        ib = 1 / (1 / _boot_medians(a, B, rng) + 1 / _boot_medians(b, B, rng))
        rb = _boot_medians(co, B, rng) / ib
        est = float(np.median(co) / ideal)
        lo, hi = float(np.quantile(rb, .025)), float(np.quantile(rb, .975))
        rows.append(_row("C2", form, text=f"median latency at r* = {rs:.3g} over the ideal bound of {where}",
                         statistic="median(co-execution at r*) / (1 / (1/median t_a + 1/median t_b)); percentile "
                                   f"bootstrap 95% CI and one-sided p ({B} resamples)",
                         effect=est, ci_lo=lo, ci_hi=hi, p_value=stats.boot_p(rb, thr2), n=int(co.size + a.size + b.size),
                         verdict=_verdict(lo, hi, thr2)[0],
                         reason=(f"co-execution {np.median(co):.3g} ms vs ideal {ideal:.3g} ms (t_a {np.median(a):.3g}, "
                                 f"t_b {np.median(b):.3g} ms); {_verdict(lo, hi, thr2)[1]}")))
    else:
        rows.append(_row("C2", form, verdict="not measurable",
                         reason=f"{where}: co-execution at r* or a processor alone not measured"))
    # ---- C3: co-execution at r* over the GPU alone (paper) / all the pair's cores (host)
    if kind == "cpu+gpu":
        den, den_name = a, "the GPU alone"
    else:
        den, den_name = _vals(gm, ALL_CORES), f"the model alone on all the cores of {first['pair']}"
    if co.size and den.size:
        est, rb = _ratio_boot(co, den, B, rng)
        lo, hi = float(np.quantile(rb, .025)), float(np.quantile(rb, .975))
        v, why = _verdict(lo, hi, 1.0)
        rows.append(_row("C3", form, text=f"median latency of channel-wise co-execution at the profile-predicted "
                                          f"split r* = {rs:.3g} over {den_name}: {where}; > 1 = co-execution slower",
                         statistic=f"ratio of medians (r*) / {den_name}; percentile bootstrap 95% CI and one-sided "
                                   f"p ({B} resamples)",
                         effect=est, ci_lo=lo, ci_hi=hi, p_value=stats.boot_p(rb, 1.0), n=int(co.size + den.size),
                         verdict=v, reason=f"{why}; paper: 1.9x-3.1x (comparison only)"))
    else:
        why = ("the model alone on all the pair's cores was not measured (data of older code): no fair baseline"
               if kind != "cpu+gpu" and co.size else "co-execution at r* or the baseline not measured")
        rows.append(_row("C3", form, verdict="not measurable", reason=f"{where}: {why}"))
    # ---- C9 (a): some parallel configuration clearly slower than the best single processor
    singles = [x for x in (a, b, _vals(gm, ALL_CORES)) if x.size]
    confs = []
    for lab in sorted(set(gm.loc[gm["granularity"] != "single", "label"])):
        h = gm[gm["label"] == lab]
        r = h["ratio"].iloc[0] if "ratio" in h else np.nan
        if h["granularity"].iloc[0] == "operator" and r in (0.0, 1.0):
            continue                                    # r = 0 / 1: one processor through the engine
        col = "time_per_frame_ms" if h["granularity"].iloc[0] == "frame" and "time_per_frame_ms" in h else "latency_ms"
        x = _vals(gm, lab, col)
        if x.size:
            confs.append((lab, x))
    if confs and singles:
        best = min(float(np.median(s)) for s in singles)
        worst_lab, worst = max(confs, key=lambda t: np.median(t[1]))
        est = float(np.median(worst)) / best
        rb = (np.max(np.stack([_boot_medians(x, B, rng) for _, x in confs]), axis=0)
              / np.min(np.stack([_boot_medians(s, B, rng) for s in singles]), axis=0))
        lo, hi = float(np.quantile(rb, .025)), float(np.quantile(rb, .975))
        v, why = _verdict(lo, hi, C9_CLEARLY)
        rows.append(_row("C9", form, text=f"(a) not always beneficial: the slowest of {len(confs)} measured parallel "
                                          f"configurations over the best single processor ({where}), > {C9_CLEARLY:g}",
                         statistic="max over configurations / min over single processors of the medians; both "
                                   f"selections repeated in each of {B} bootstrap resamples",
                         effect=est, ci_lo=lo, ci_hi=hi, p_value=stats.boot_p(rb, C9_CLEARLY), threshold=C9_CLEARLY,
                         direction="greater", n=int(sum(x.size for _, x in confs)), verdict=v,
                         reason=f"slowest: {worst_lab}; {why}"))
    else:
        rows.append(_row("C9", form, threshold=C9_CLEARLY, verdict="not measurable",
                         reason=f"{where}: no parallel configuration and single processor measured"))
    return rows


def _c4(d: pd.DataFrame, kind: str, parts: pd.DataFrame, idle_threshold: float) -> dict[str, Any]:
    out = _c4_row(d, kind, parts, idle_threshold)
    sub = d[d["pair_kind"] == kind] if len(d) and "pair_kind" in d else d
    out["models"] = ",".join(sorted(set(sub["model"]))) if len(sub) and "model" in sub else ""
    return out


def _c4_row(d: pd.DataFrame, kind: str, parts: pd.DataFrame, idle_threshold: float) -> dict[str, Any]:
    form = _form(kind)
    text = ("(i) the share of wall time with neither processor computing (sync + transfer + merge + other) is "
            "larger at operator level (r*) than at frame level (alternating frames); (ii) at branch level "
            f"processor b idles for more than {idle_threshold:.0%} of the inference")
    stat = ("(i) mean over models of the difference of median overhead shares (effect, CI); (ii) mean over models "
            "of the median idle share of b (in reason); p: the larger of the two parts' one-sided bootstrap p")
    pi = parts[(parts["part"] == "i") & (parts["model"].str.startswith("all"))] if len(parts) else parts
    pii = parts[(parts["part"] == "ii") & (parts["model"].str.startswith("all"))] if len(parts) else parts
    if pi.empty and pii.empty:
        return _row("C4", form, text=text, statistic=stat, verdict="not measurable",
                    reason="neither operator+frame level nor branch level measured on this pair")
    vs, reasons, ps = [], [], []
    for name, part in (("(i)", pi), ("(ii)", pii)):
        if part.empty:
            vs.append("inconclusive")
            reasons.append(f"{name} not measured")
            ps.append(1.0)
            continue
        row = part.iloc[0]
        v, why = _verdict(row.ci_lo, row.ci_hi, row.null)
        vs.append(v)
        ps.append(float(row.p_value) if "p_value" in part and not np.isnan(row.p_value) else 1.0)
        reasons.append(f"{name} {row.statistic} = {row.effect:.3g}: {v} ({why})")
    verdict = ("reproduced" if all(v == "reproduced" for v in vs) else
               "contradicted" if any(v == "contradicted" for v in vs) else "inconclusive")
    main = pi.iloc[0] if len(pi) else pii.iloc[0]
    return _row("C4", form, text=text, statistic=stat, effect=float(main.effect), ci_lo=float(main.ci_lo),
                ci_hi=float(main.ci_hi), threshold=float(main.null), p_value=max(ps), n=int(parts["n"].max()),
                verdict=verdict,
                reason=(f"pair kind {kind}{' (host form: two core groups)' if kind == 'cpu+cpu' else ''}; "
                        + "; ".join(reasons) + "; both parts must hold for 'reproduced', either contradicted gives "
                        "'contradicted'"))


CLAIM_COLS = ["claim", "form", "text", "statistic", "effect", "ci_lo", "ci_hi", "p_value", "n", "paper_value",
              "verdict", "reason", "threshold", "direction", "primary", "models"]


def claims_table(d: pd.DataFrame, absent: pd.DataFrame, parts: pd.DataFrame | None = None, n_boot: int = 2000,
                 seed: int = 0, idle_threshold: float = 0.5) -> pd.DataFrame:
    """C2, C3, C4 and C9 (a): the paper's form on the CPU+GPU pair, the host form on two
    CPU core groups (its own rows, ``form = host``). Where the CPU+GPU pair was not measured
    the paper-form rows are ``not measurable`` with the reason."""
    rows = []
    gpu_absent = (absent[absent["pair_kind"] == "cpu+gpu"]["reason"].iloc[0]
                  if len(absent) and "pair_kind" in absent and (absent["pair_kind"] == "cpu+gpu").any() else "")
    kinds = set(d["pair_kind"]) if len(d) and "pair_kind" in d else set()
    for kind in ("cpu+gpu", "cpu+cpu"):
        g = d[d["pair_kind"] == kind] if kind in kinds else d.iloc[0:0]
        if g.empty:
            if kind == "cpu+gpu":
                why = (f"CPU+GPU absent: {gpu_absent}" if gpu_absent else "the cpu+gpu pair was not measured "
                       "(not requested, or no data)")
                for cid in ("C2", "C3", "C4", "C9"):
                    rows.append(_row(cid, "paper", verdict="not measurable", reason=why,
                                     **({"threshold": C9_CLEARLY} if cid == "C9" else {})))
            continue
        rows += _c2_c3_c9(g, kind, n_boot, seed)
        p = parts[parts["pair_kind"] == kind] if parts is not None and len(parts) and "pair_kind" in parts \
            and "p_value" in parts else c4_parts(d, kind, idle_threshold, n_boot, seed)
        rows.append(_c4(d, kind, p, idle_threshold))
    out = pd.DataFrame(rows)
    for c in CLAIM_COLS:
        if c not in out:
            out[c] = np.nan if c not in ("direction",) else ""
    order = {c: i for i, c in enumerate(("C2", "C3", "C4", "C9"))}
    out = out.assign(_o=out["claim"].map(order), _f=(out["form"] != "paper").astype(int))
    return out.sort_values(["_o", "_f"], kind="stable")[CLAIM_COLS].reset_index(drop=True)


CLAIMS_TABLES = [None, "absent"]


def claims_from_tables(read, params: dict[str, Any], seed: int = 0) -> pd.DataFrame | None:
    """The claims recomputed with the current code from a device folder's tables (``read(table)``;
    ``None``: the main dataset of timed samples), or None where they are not there."""
    data = read(None)
    if data is None or "latency_ms" not in data or "label" not in data:
        return None
    d = _measured(data)
    if d.empty:
        return None                 # nothing measured here (a phone, a failed run): the stage's own rows stand
    absent = read("absent")
    if absent is None or "pair_kind" not in absent:
        absent = pd.DataFrame(columns=["model", "pair", "pair_kind", "proc_a", "proc_b", "reason"])
    return claims_table(d, absent, None, int(params.get("n_boot", 2000)), seed, float(params.get("idle_threshold", 0.5)))


def analyse(ctx, data: pd.DataFrame) -> dict[str, pd.DataFrame]:
    p = ctx.params
    n_boot, seed = p.get("n_boot", 2000), ctx.seed
    d = _measured(data)
    absent = (data[~data["available"].fillna(False).astype(bool)] if "available" in data else data.iloc[0:0])
    absent = absent[[c for c in ("model", "pair", "pair_kind", "proc_a", "proc_b", "reason") if c in absent]]
    if absent.empty:
        absent = pd.DataFrame(columns=["model", "pair", "pair_kind", "proc_a", "proc_b", "reason"])
    parts = pd.concat([c4_parts(d, k, p.get("idle_threshold", 0.5), n_boot, seed) for k in PAIRS
                       if len(d) and k in set(d["pair_kind"])] or [c4_parts(d, None)], ignore_index=True)
    tables = {
        "summary": summary_table(d) if len(d) else pd.DataFrame(),
        "ideal": ideal_table(d, n_boot, seed) if len(d) else pd.DataFrame(),
        "slowdown": slowdown_table(d, n_boot, seed) if len(d) else pd.DataFrame(),
        "breakdown": breakdown_table(d) if len(d) else pd.DataFrame(),
        "c4_parts": parts,
        "absent": absent.reset_index(drop=True),
    }
    tables["claims"] = claims_table(d, absent, parts, n_boot, seed, p.get("idle_threshold", 0.5))
    why = phone.not_measurable(ctx, FINDING)
    if why:  # nothing ran: the one reason
        tables["claims"]["reason"] = why
    for name, t in tables.items():
        ctx.write(t, table=name)
    return tables


# =========================================================================== plot
PHASE_COLORS = {"solo": "#8C8C8C", "parallel": "#55A868", "imbalance": "#CCB974", "sync": "#C44E52",
                "transfer": "#4C72B0", "merge": "#8172B3", "other": "#DA8BC3"}


def _color(proc: str) -> str:
    from study import plotting

    return plotting.PROCESSOR_COLORS.get(proc, {"g0": "#4C72B0", "g1": "#64B5CD"}.get(proc, "#937860"))


def _plain_log_ticks(ax, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    a = ax.yaxis if axis == "y" else ax.xaxis
    a.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    a.set_minor_formatter(NullFormatter())


def plot_latency_vs_r(summary: pd.DataFrame, ideal: pd.DataFrame):
    from study import plotting

    op = summary[summary["granularity"] == "operator"] if len(summary) else summary
    groups = list(op.groupby(GROUP, sort=True)) if len(op) else []
    n = max(1, len(groups))
    ncol = min(n, 4)
    nrow = math.ceil(n / ncol)
    fig, axes = plotting.figure(w=3.2 * ncol, h=2.8 * nrow, nrows=nrow, ncols=ncol, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    if not groups:
        axes[0, 0].text(0.5, 0.5, "no operator-level data", ha="center", va="center", transform=axes[0, 0].transAxes)
    for ax, (key, g) in zip(axes.flat, groups):
        k = dict(zip(GROUP, key))
        sweep = g[g["ratio_kind"] == "sweep"].sort_values("ratio")
        ax.errorbar(sweep["ratio"], sweep["median_ms"], yerr=[sweep["median_ms"] - sweep["ci_lo"].fillna(sweep["median_ms"]),
                                                              sweep["ci_hi"].fillna(sweep["median_ms"]) - sweep["median_ms"]],
                    fmt="o-", color="#333333", ms=4, capsize=2, label="co-execution (operator level)")
        for kind, marker, col in (("r*", "*", "#C44E52"), ("r*/layer", "D", "#8172B3")):
            s = g[g["ratio_kind"] == kind]
            if len(s):
                ax.plot(s["ratio"], s["median_ms"], marker, color=col, ms=9 if marker == "*" else 6,
                        label=f"{kind} (predicted)", zorder=5)
        iv = ideal[(ideal["pair"] == k["pair"]) & (ideal["model"] == k["model"]) & (ideal["input_size"] == k["input_size"])] \
            if len(ideal) else ideal
        if len(iv):
            r0 = iv.iloc[0]
            ax.axhline(r0["t_a_ms"], color=_color(r0["proc_a"]), lw=1.2, label=f"{r0['proc_a']} alone")
            ax.axhline(r0["t_b_ms"], color=_color(r0["proc_b"]), lw=1.2, ls="-.", label=f"{r0['proc_b']} alone")
            ax.axhline(r0["ideal_ms"], color="black", lw=1, ls="--", label="ideal 1/(1/t_a+1/t_b)")
        ax.set_yscale("log")
        _plain_log_ticks(ax)
        ax.set(title=f"{k['model']} {int(k['input_size'])}px, {k['pair']}", xlabel=f"r (share on {g['proc_b'].iloc[0]})",
               ylabel="latency (ms)")
        ax.title.set_fontsize(9)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=7, frameon=False,
                   bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("Operator-level co-execution: latency vs split ratio (median, 95% CI)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return fig


def plot_breakdown(bd: pd.DataFrame):
    from study import plotting

    pairs = sorted(bd["pair"].unique()) if len(bd) else []
    npair = max(1, len(pairs))
    heights = [max(2.0, 0.22 * len(bd[bd["pair"] == p]) + 1.0) for p in pairs] or [2.0]
    fig, axes = plotting.figure(w=8.0, h=sum(heights), nrows=npair, ncols=1, squeeze=False,
                                gridspec_kw={"height_ratios": heights})
    if not pairs:
        axes[0, 0].text(0.5, 0.5, "no co-execution data", ha="center", va="center", transform=axes[0, 0].transAxes)
    phases = list(PHASE_COLORS)
    for ax, pr in zip(axes[:, 0], pairs):
        g = bd[bd["pair"] == pr].sort_values(["model", "granularity", "label"])
        ylabels = [f"{m} | {lab}" for m, lab in zip(g["model"], g["label"])]
        left = np.zeros(len(g))
        for ph in phases:
            v = g[ph].fillna(0).to_numpy()
            ax.barh(np.arange(len(g)), v, left=left, color=PHASE_COLORS[ph], label=ph, height=0.75)
            left += v
        for i, w in enumerate(g["median_wall_ms"]):
            ax.text(1.01, i, f"{w:.3g} ms", va="center", fontsize=6, transform=ax.get_yaxis_transform())
        ax.set_yticks(np.arange(len(g)))
        ax.set_yticklabels(ylabels, fontsize=6)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set(xlabel="share of the co-executed call's wall time (mean)", title=f"Time decomposition, pair {pr}")
        ax.title.set_fontsize(9)
    if pairs:
        axes[0, 0].legend(loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=len(phases), fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def plot_slowdown(sl: pd.DataFrame):
    from study import plotting

    s = sl[sl["reference"] == "best single"] if len(sl) else sl
    pairs = sorted(s["pair"].unique()) if len(s) else []
    npair = max(1, len(pairs))
    fig, axes = plotting.figure(w=10.0, h=3.2 * npair, nrows=npair, ncols=1, squeeze=False)
    if not pairs:
        axes[0, 0].text(0.5, 0.5, "no co-execution data", ha="center", va="center", transform=axes[0, 0].transAxes)
    for ax, pr in zip(axes[:, 0], pairs):
        g = s[s["pair"] == pr]
        models = sorted(g["model"].unique())
        order = {"operator": 0, "branch": 1, "frame": 2}
        variants = sorted(dict.fromkeys(f"{a}: {b}" for a, b in zip(g["granularity"], g["variant"])),
                          key=lambda v: (order.get(v.split(":")[0], 9), v))
        width = 0.8 / max(1, len(variants))
        cmap = plotting.plt.get_cmap("tab10")
        for j, var in enumerate(variants):
            gv = g[(g["granularity"] + ": " + g["variant"]) == var]
            xs, ys, lo, hi = [], [], [], []
            for i, m in enumerate(models):
                r = gv[gv["model"] == m]
                if len(r):
                    xs.append(i - 0.4 + width * (j + 0.5))
                    ys.append(r["ratio"].iloc[0])
                    lo.append(r["ratio"].iloc[0] - r["ci_lo"].iloc[0])
                    hi.append(r["ci_hi"].iloc[0] - r["ratio"].iloc[0])
            ax.bar(xs, ys, width=width * 0.95, color=cmap(j % 10), label=var)
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor="black", capsize=2, lw=0.8)
        ax.axhline(1.0, color="black", lw=0.8)
        if "fast_style_transfer" in models:
            plotting.mark_paper(ax, 1.9, "paper: muLayer FST 1.9x")
            plotting.mark_paper(ax, 3.1, "paper: muLayer FST 3.1x")
        ax.set_yscale("log")
        _plain_log_ticks(ax)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, fontsize=8)
        ax.set(ylabel="co-execution / best single (x)", title=f"Slowdown vs the best single processor, pair {pr} "
                                                               f"(> 1: slower; bootstrap 95% CI)")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot(ctx, tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    figs = {
        "latency_vs_r": plot_latency_vs_r(tables.get("summary", pd.DataFrame()), tables.get("ideal", pd.DataFrame())),
        "overhead_breakdown": plot_breakdown(tables.get("breakdown", pd.DataFrame())),
        "slowdown": plot_slowdown(tables.get("slowdown", pd.DataFrame())),
    }
    for name, fig in figs.items():
        ctx.save(fig, name)
    if phone.not_measurable(ctx, FINDING):
        ab = tables.get("absent", pd.DataFrame())
        what = sorted({f"{r['model']} on {r['pair']}" for _, r in ab.iterrows()}) if len(ab) else []
        figs["not_measured"] = phone.notice_figure(
            ctx, "not_measured", f"C3, C4 (muLayer co-execution): not measurable on {ctx.device_spec}",
            [phone.unsupported_reason(FINDING), "not measured: " + ", ".join(what)])
    return figs


def replicate_params(p: dict[str, Any]) -> dict[str, Any]:
    """What an independent run measures (``study.replicate``): the stage's whole design.
    C2, C3 and C9 (a) are decided on the primary model, but C4 is a mean over all the models,
    so every run measures them all and C4 pools as many runs as the others (a run of the
    primary model alone would leave C4 one run, its interval within-run only)."""
    return dict(p)


def run(ctx) -> dict[str, Any]:
    ctx.settings = effective_settings(ctx)  # before the fingerprint, which records the settings
    ctx.__dict__.pop("fingerprint", None)
    ctx.write_fingerprint()
    data = measure(ctx)
    from study import replicate

    tables = replicate.independent_runs(ctx, analyse(ctx, data), replicate_params(ctx.params))
    figs = plot(ctx, tables)
    return {"data": data, "tables": tables, "figures": figs}
