"""The one registry of the pipeline's stages: what each stage is called, the module that holds
its code, its notebook, its place in the order, whether a phone can run it, and its panel in
the report. Everything else derives from it (``paths.source_notebook``, ``config.resolve``,
``reference`` runs, ``phone.unsupported_reason`` and ``phone.not_measurable`` (what a phone cannot
run: the one place that says it), the ``paper`` stage's per-finding figures);
``dvc.yaml`` is written by hand: ``tests/test_stages.py`` fails where its stages, commands
and notebooks disagree with this registry, ``tests/test_dvc_deps.py`` where a stage's deps
miss a module its command imports or its params a key it reads.

A leaf module: it imports nothing of the study. To add a stage: one ``Stage`` here, its
section in ``study.schema.STAGES``, its module (``run(ctx)``, ``PARAMS``, optionally
``check_params``, ``claims_from_tables`` and ``paper_panel``), its notebook and its
``dvc.yaml`` stage.
"""
from __future__ import annotations

from dataclasses import dataclass

PHONE_RUNNER = "litert-benchmark"   # how a phone runs a finding: LiteRT's benchmark_model over adb


@dataclass(frozen=True)
class Panel:
    """A finding's main result in the report, one facet per device: the tables (of
    ``data/<device>/<finding>/``) the panel reads, its title and y label. The drawing
    function is ``study.paper._panel_<stage>`` or, for a finding that brings its own, the
    module's ``paper_panel(ax, tables) -> bool``."""
    tables: tuple[str, ...]
    title: str
    ylabel: str


@dataclass(frozen=True)
class Stage:
    name: str
    module: str                   # the module run(ctx) / check_params(resolved, params) live in
    notebook: str | None = None   # notebooks/<notebook>; None: the stage runs a command, no notebook
    finding: bool = True          # measures on a device (data/<device>/<name>...), run by reference runs
    phone: str | None = None      # how a phone runs it (PHONE_RUNNER), None where it cannot
    phone_why: str = ""           # how it runs there, or why it cannot
    panel: Panel | None = None    # its facet in the report (None: no main panel)
    section: bool = True          # has a params.yaml section (study.schema.STAGES), resolved by study.config


STAGES: tuple[Stage, ...] = (
    Stage("validate", "study.config", finding=False, section=False, phone_why="runs on the host"),
    Stage("models", "study.models.export", finding=False, phone_why="runs on the host"),
    Stage("rigor", "study.rigor", "00_rigor.ipynb", phone=PHONE_RUNNER,
          phone_why="methods table, burst vs sustained, between-run and coverage on benchmark_model blocks",
          panel=Panel(("coverage_summary",), "Rerun medians inside the first run's interval (dotted: 90% target)",
                      "share of configurations")),
    Stage("operator_support", "study.operator_support", "01_operator_support.ipynb", phone=PHONE_RUNNER,
          phone_why="delegated vs total nodes per delegate (GPU, NNAPI, XNNPACK) from benchmark_model's delegate "
                    "log line; per-operator placement from --enable_op_profiling node indices; per-operator time "
                    "of fallback operators and of each delegate partition",
          panel=Panel(("coexec",), "Operators a channel-wise CPU+GPU split cannot split (tflite graph; dotted: C1 "
                      "threshold)", "share of runtime operators")),
    Stage("mulayer_overhead", "study.mulayer_overhead", "02_mulayer_overhead.ipynb",
          phone_why="channel-wise CPU+GPU co-execution is study.coexec, a PyTorch engine running in Python "
                    "processes; a phone has no Python, and benchmark_model cannot split a layer across processors",
          panel=Panel(("slowdown",), "Best channel-wise co-execution over the best single processor, per model "
                      "(> 1: slower)", "latency ratio (95% CI)")),
    Stage("contention", "study.contention", "03_contention.ipynb", phone=PHONE_RUNNER,
          phone_why="benchmark_model on CPU/GPU/NPU with competitor processes on the phone (cpu, memory, gpu "
                    "kinds, pinned with taskset, always ended); C6 from dumpsys gfxinfo of the co-running app "
                    "named in adb.gfxinfo_package",
          panel=Panel(("slowdown",), "Slowdown with competitors of the processor's own kind on its cores (C5 form)",
                      "latency / no competitors")),
    Stage("profiling_error", "study.profiling_error", "04_profiling_error.ipynb", phone=PHONE_RUNNER,
          phone_why="offline profiles (idle benchmark_model runs, op profiling) against runtime blocks under phone "
                    "competitors; block means, not single inferences",
          panel=Panel(("errors",), "Prediction error of offline (blue) and runtime (orange) latency estimates "
                      "on the dynamic trace", "MAPE (%), 95% CI")),
    Stage("frame_reuse", "study.frame_reuse", "05_frame_reuse.ipynb",
          phone_why="per-frame reuse decisions run in Python around each inference (change detection, cached "
                    "features in PyTorch); benchmark_model only times whole-model runs on random inputs",
          panel=Panel(("c8_by_mechanism",), "Latency reduction of frame reuse at the best qualifying point "
                      "(colour: verdict; dotted: C8 threshold)", "latency reduction")),
    Stage("cross_level", "study.cross_level", "06_cross_level.ipynb", phone=PHONE_RUNNER,
          phone_why="compressed .tflite variants built on the host, timed on the phone's CPU/GPU/NPU"),
    Stage("adaptive_runtime", "study.adaptive_runtime", "07_adaptive_runtime.ipynb",
          phone_why="the runtime chooses per request in Python (its planner, pinning, sessions); a phone runs only "
                    "benchmark_model, which times blocks of one fixed configuration",
          panel=Panel(("c11_conditions",), "Adaptive runtime: p95 over the best static candidate in hindsight, per "
                      "condition (dotted: C11 bars)", "p95 ratio (95% CI)")),
    Stage("paper", "study.paper", "99_paper.ipynb", finding=False, phone_why="gathers every device's tables"),
)

BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}


def get(name: str) -> Stage:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(BY_NAME)}") from None


def names() -> tuple[str, ...]:
    """Every stage, in pipeline order."""
    return tuple(BY_NAME)


def findings() -> tuple[str, ...]:
    """The measuring stages, in order (what a reference run runs, what a device folder holds)."""
    return tuple(s.name for s in STAGES if s.finding)


def with_notebook() -> tuple[str, ...]:
    """The stages a notebook runs (``python -m study run <stage>`` through papermill)."""
    return tuple(s.name for s in STAGES if s.notebook)


def with_section() -> tuple[str, ...]:
    """The stages with a section of their own in ``params.yaml`` (every one but ``validate``)."""
    return tuple(s.name for s in STAGES if s.section)


def module_of(name: str) -> str:
    return get(name).module


def notebook_of(name: str) -> str:
    nb = get(name).notebook
    if nb is None:
        raise KeyError(f"stage {name!r} has no notebook")
    return nb


def unsupported_reason(name: str, capabilities, device_spec: str = "") -> str | None:
    """None where a device with ``capabilities`` (``study.devices.base``: ``python``, or a runner
    like ``PHONE_RUNNER``) runs stage ``name``; else why not (the stage's ``phone_why``)."""
    s = get(name)
    if "python" in capabilities or (s.phone is not None and s.phone in capabilities):
        return None
    where = f" ({device_spec})" if device_spec else ""
    return f"not measurable on a phone{where}: {s.phone_why}"


def phone_support(name: str) -> tuple[str | None, str]:
    """(how a phone runs the stage or None, and the sentence saying how / why not)."""
    s = BY_NAME.get(name)
    if s is None:
        return None, f"{name} has no phone path"
    return s.phone, s.phone_why
