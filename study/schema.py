"""The parameter schema: every key ``params.yaml`` may hold, with its type and its range or
choices. A leaf module (standard library only): devices, engines, models and findings import
it without pulling in the loader (``study.config``), which reads ``params.yaml``, applies
profile overrides and adds the checks that need the machine (files, models, core groups).

Layout::

    device, profile, seed                       # top-level scalars
    harness: {quick|full|reference: HARNESS}    # study.measure.HarnessSettings per profile
    models: MODELS + {quick|full|reference: partial MODELS}
    adb: ADB
    <stage>: STAGES[stage] + {quick|full|reference: partial STAGES[stage]}

Every leaf is a ``Field``: numbers have a finite range (NaN and infinities are refused),
booleans are never taken for numbers, strings have choices or a pattern, lists an item
type, a length and, where it matters, distinct items. ``Field.names`` tags strings that
must name something that exists (a model, a core group, a file); ``study.config`` checks
those against the machine. Unknown keys are refused at every level.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

PROFILES = ("quick", "full", "reference")
PROCESSORS = ("cpu", "gpu", "npu")
ENGINES = ("litert", "onnxruntime", "torch")
CLIPS = ("carphone", "bikes", "bigbuckbunny")
ZOO_MODELS = ("resnet50", "vgg16", "mobilenet_v2", "fast_style_transfer", "yolo_det", "transformer_enc")
MEDIAPIPE_TASKS = {
    "face_detection_short_range": "face_detection",
    "face_detection_full_range_sparse": "face_detection",
    "selfie_segmentation": "segmentation",
    "selfie_segmentation_landscape": "segmentation",
    "face_landmark": "landmarks",
    "face_landmark_with_attention": "landmarks",
    "hand_landmark_lite": "landmarks",
    "hand_landmark_full": "landmarks",
    "pose_detection": "detection",
    "pose_landmark_full": "landmarks",
    "palm_detection_lite": "detection",
    "palm_detection_full": "detection",
    "iris_landmark": "landmarks",
    "hand_recrop": "landmarks",
}
MODEL_FORMATS = ("tflite", "onnx")
# contention
SUTS = ("cpu/litert", "cpu/onnxruntime", "cpu/torch", "gpu/litert", "gpu/torch")
COMPETITOR_KINDS = ("cpu", "memory", "gpu")
PLACEMENTS = ("same", "cross")
RENDERS = ("cpu", "gpu")
# mulayer_overhead
MULAYER_MODELS = ("fast_style_transfer", "resnet50", "mobilenet_v2", "yolo_det", "vgg16", "transformer_enc")
PAIRS = ("cpu+gpu", "cpu+cpu")
GRANULARITIES = ("operator", "branch", "frame")
FRAME_POLICIES = ("alternate", "balanced")
# profiling_error
PHASE_KINDS = ("idle", "cpu", "memory", "burst", "gpu")
# frame_reuse / cross_level
REUSE_MODELS = ("face_detection_short_range", "selfie_segmentation", "mobilenet_v2", "resnet50", "fast_style_transfer")
CROSS_LEVEL_MODELS = ZOO_MODELS + ("face_detection_short_range", "selfie_segmentation")
QUANT = ("fp16", "int8_dynamic", "int8_static")

# ---------------------------------------------------------------------------- string patterns
DEVICE_SPEC = r"local|adb(:[A-Za-z0-9][A-Za-z0-9._:-]{0,63})?"
# the names study.devices.local.split_core_groups gives (the same rule on phones)
CORE_GROUP = r"all|g0|g1|big|little|mid[1-9]"
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"          # model names, device folder names
# host paths: no shell or control characters, no '..' component (a relative path stays in the repository)
PATH = r"(?!.*(^|/)\.\.(/|$))[A-Za-z0-9_./][A-Za-z0-9_./ +@=,-]{0,499}"
CANDIDATE = rf"({'|'.join(ENGINES)})/({'|'.join(PROCESSORS)})/({CORE_GROUP})"
ANDROID_PACKAGE = r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+"
SHA256 = r"[0-9a-fA-F]{64}"
HOST_PORT = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252}):[0-9]{1,5}"
REMOTE_DIR = r"(/[A-Za-z0-9_.-]+)+"
TITLE = r"[^\x00-\x1f\x7f<>]{1,200}"                 # printable text, no HTML
MAX_STR = 500


class ParamError(ValueError):
    """A parameter that is unknown, missing, of the wrong type or out of range."""


_MISSING = object()


def _short(value: Any, width: int = 60) -> str:
    """``repr`` cut to ``width`` characters: one short line whatever the value."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _type_name(types: tuple[type, ...]) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _coerce(name: str, value: Any, types: tuple[type, ...]) -> Any:
    """``value`` as one of ``types``: an int is a float where a float is expected; a boolean is
    never a number (nor a number a boolean); ``None`` (an empty YAML value) is nothing."""
    if isinstance(value, bool):
        if bool not in types:
            raise ParamError(f"{name}: expected {_type_name(types)}, got the boolean {value!r}")
        return value
    if float in types and isinstance(value, int) and int not in types:
        value = float(value)
    if not isinstance(value, types):
        got = "nothing (an empty value)" if value is None else f"{type(value).__name__} {_short(value)}"
        raise ParamError(f"{name}: expected {_type_name(types)}, got {got}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamError(f"{name}: {value!r} is not a finite number")
    return value


@dataclass(frozen=True)
class Field:
    """One leaf. For a list, ``item`` is the type of its items and ``choices``, ``min``/``max``
    and ``pattern`` apply to each item; ``min_len``/``max_len`` bound its length (for a
    string: its number of characters)."""

    type: type | tuple[type, ...]
    default: Any = _MISSING
    choices: Sequence[Any] | None = None      # allowed values (for lists: allowed items)
    min: float | None = None
    max: float | None = None
    help: str = ""
    check: Callable[[Any], str | None] | None = None  # returns an error text or None
    item: type | tuple[type, ...] | None = None        # list items
    min_len: int | None = None                          # lists: default 1; strings: default 1
    max_len: int | None = None
    unique: bool = True                                  # lists: no duplicates
    pattern: str | None = None                           # strings / string items: full match
    min_open: bool = False                               # min itself excluded
    max_open: bool = False
    names: str | None = None                             # what a string names: model, core_group, user_model, file, folder

    @property
    def types(self) -> tuple[type, ...]:
        return self.type if isinstance(self.type, tuple) else (self.type,)

    def _scalar(self, name: str, v: Any, types: tuple[type, ...], *, item: bool = False) -> Any:
        v = _coerce(name, v, types)
        if self.choices is not None and v not in self.choices:
            raise ParamError(f"{name}: {_short(v)} is not allowed; choose from {', '.join(map(str, self.choices))}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if self.min is not None and (v < self.min or (self.min_open and v == self.min)):
                raise ParamError(f"{name}: {v!r} is below the minimum ({'>' if self.min_open else '>='} {self.min})")
            if self.max is not None and (v > self.max or (self.max_open and v == self.max)):
                raise ParamError(f"{name}: {v!r} is above the maximum ({'<' if self.max_open else '<='} {self.max})")
        if isinstance(v, str):
            longest = MAX_STR if item or self.max_len is None else self.max_len
            if len(v) > longest:
                raise ParamError(f"{name}: {len(v)} characters; at most {longest} expected")
            if not v:
                if item or self.min_len != 0:
                    raise ParamError(f"{name}: empty string")
            elif self.pattern is not None and not re.fullmatch(self.pattern, v):
                raise ParamError(f"{name}: {_short(v)} is not a valid {(self.names or 'value').replace('_', ' ')}"
                                 f"{self._expected()}")
        return v

    def _expected(self) -> str:
        return {"core_group": " (a core group: all, g0, g1, big, little or midN)",
                "device": " ('local', 'adb' or 'adb:SERIAL')",
                "model": " (a model name: letters, digits, '_', '.', '-')",
                "file": " (an absolute path or one inside the repository, without shell or control characters)",
                "folder": " (an absolute path or one inside the repository, without shell or control characters)",
                "user_model": " (a .tflite or .onnx path under data/user_models/)",
                "candidate": " (engine/processor/core_group, e.g. litert/cpu/g0)"}.get(self.names or "", "")

    def validate(self, name: str, value: Any) -> Any:
        if list in self.types and isinstance(value, list):
            items = self.item if self.item is not None else (str,)
            items = items if isinstance(items, tuple) else (items,)
            lo = 1 if self.min_len is None else self.min_len
            if len(value) < lo:
                raise ParamError(f"{name}: {'an empty list' if not value else f'{len(value)} item(s)'}; "
                                 f"at least {lo} expected")
            if self.max_len is not None and len(value) > self.max_len:
                raise ParamError(f"{name}: {len(value)} items; at most {self.max_len} expected")
            value = [self._scalar(f"{name}[{i}]", v, items, item=True) for i, v in enumerate(value)]
            if self.unique and len({repr(v) for v in value}) != len(value):
                dup = sorted({repr(v) for v in value if sum(repr(w) == repr(v) for w in value) > 1})
                raise ParamError(f"{name}: duplicate values {', '.join(dup)}")
        else:
            value = self._scalar(name, value, self.types)
        if self.check is not None:
            err = self.check(value)
            if err:
                raise ParamError(f"{name}: {err}")
        return value

    def has_domain(self) -> bool:
        """A type with a range, choices or a pattern (booleans are their own choice)."""
        types = self.item if list in self.types and self.item is not None else self.types
        types = types if isinstance(types, tuple) else (types,)
        if types == (bool,):
            return True
        if self.choices is not None:
            return True
        if all(t in (int, float) for t in types):
            return self.min is not None and self.max is not None
        if str in types:
            return self.pattern is not None
        return False


def check_section(where: str, section: Any, schema: dict[str, Field], *, partial: bool = False,
                  allow: Sequence[str] = ()) -> dict[str, Any]:
    """Values of ``section`` checked against ``schema``, defaults filled in (``partial``: only
    the keys present, as in a profile override). Keys in ``allow`` are left to the caller."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ParamError(f"{where}: expected a mapping of keys, got {type(section).__name__} {_short(section)}")
    unknown = [k for k in section if k not in schema and k not in allow]
    if unknown:
        raise ParamError(f"{where}.{unknown[0]}: unknown key; known: {', '.join(sorted(schema))}")
    out = {}
    for name, field in schema.items():
        if name in section:
            out[name] = field.validate(f"{where}.{name}", section[name])
        elif partial:
            continue
        elif field.default is _MISSING:
            raise ParamError(f"{where}.{name}: missing")
        else:
            out[name] = list(field.default) if isinstance(field.default, list) else field.default  # never the schema's own
    return out


# ============================================================================ the schema
def _names(choices=None, pattern=NAME, names="model", **kw) -> Field:
    return Field(list, kw.pop("default", _MISSING), choices=choices, item=str, pattern=pattern, names=names, **kw)


def _core_group(default="all", **kw) -> Field:
    return Field(str, default, pattern=CORE_GROUP, names="core_group", **kw)


def _seconds(default, lo, hi, **kw) -> Field:
    return Field(float, default, min=lo, max=hi, **kw)


def _n_boot(default, lo=100) -> Field:
    return Field(int, default, min=lo, max=100000, help="bootstrap resamples")


def _runs() -> Field:
    return Field(int, 1, min=1, max=100, help="independent runs (fresh processes) of the claims' deciding "
                                              "measurement, pooled over runs (study.replicate)")


def _low_high(default, item, lo, hi, help: str, *, positive: bool = True) -> Field:
    def check(v) -> str | None:
        if v[0] > v[1]:
            return "low must not exceed high"
        return None
    return Field(list, default, item=item, min=lo, max=hi, min_open=positive, min_len=2, max_len=2, unique=False,
                 check=check, help=f"[low, high]: {help}")


def _candidates(help: str) -> Field:
    return _names(pattern=CANDIDATE, names="candidate",
                  default=["litert/cpu/g0", "litert/cpu/g1", "litert/cpu/all", "litert/gpu/all", "torch/gpu/all"],
                  help=help)


def _scenario(seconds: tuple[float, float], what: str, seed_draws: str, phase_seconds: list[float]) -> dict[str, Field]:
    """The fields of a dynamic contention scenario (finding 4's generator, which the
    adaptive runtime replays): its length, seed, phases and competitors."""
    return {
        "scenario_seconds": _seconds(seconds[0], seconds[1], 3600.0, help=f"length of the {what}"),
        "scenario_seed": Field(int, 0, min=0, max=2**32 - 1, help=f"with `seed`, draws {seed_draws}"),
        "phase_kinds": Field(list, list(PHASE_KINDS), choices=PHASE_KINDS, item=str),
        "phase_seconds": _low_high(phase_seconds, (int, float), 0.0, 3600.0, "phase length range (s)"),
        "burst_seconds": _low_high([0.3, 1.2], (int, float), 0.0, 3600.0, "on/off period range in bursts (s)"),
        "cpu_competitors": _low_high([1, 2], int, 0, 64, "CPU competitors per cpu/burst phase"),
        "memory_competitors": _low_high([1, 1], int, 0, 64, "memory competitors per memory phase"),
        "gpu_competitors": _low_high([1, 1], int, 0, 64, "GPU competitors per gpu phase"),
        "competitor_groups": _names(pattern=CORE_GROUP, names="core_group", default=["g0", "g1", "all"],
                                    help="core groups CPU/memory competitors are pinned to (drawn per phase)"),
    }


COMMON: dict[str, Field] = {
    "device": Field(str, "local", pattern=DEVICE_SPEC, names="device", help="local | adb:SERIAL"),
    "profile": Field(str, "quick", choices=PROFILES),
    "seed": Field(int, 0, min=0, max=2**32 - 1, help="order of configurations, inputs, scenarios"),
}
COMMON_KEYS = ("device", "profile", "seed", "harness")

HARNESS: dict[str, Field] = {
    "warmup": Field(int, 5, min=0, max=10000, help="untimed inferences at the start of every block"),
    "min_samples": Field(int, 30, min=1, max=1_000_000),
    "max_samples": Field(int, 300, min=1, max=1_000_000),
    "max_seconds": _seconds(60.0, 0.0, 86400.0, min_open=True, help="timed seconds per configuration"),
    "rel_ci_halfwidth": Field(float, 0.02, min=0.0, max=1.0, min_open=True, max_open=True),
    "confidence": Field(float, 0.95, min=0.5, max=1.0, min_open=True, max_open=True),
    "block_size": Field(int, 10, min=1, max=100000),
    "cooldown_s": _seconds(0.0, 0.0, 3600.0, help="sleep after each block"),
    "seed": Field(int, 0, min=0, max=2**32 - 1),
    "max_open_sessions": Field(int, 6, min=1, max=1000),
    "below_floors": Field(bool, False),
}


def _harness_check(where: str, section: dict[str, Any]) -> None:
    if section["max_samples"] < section["min_samples"]:
        raise ParamError(f"{where}.max_samples: {section['max_samples']} is below min_samples ({section['min_samples']})")


MODELS: dict[str, Field] = {
    "zoo": Field(list, list(ZOO_MODELS), choices=ZOO_MODELS, item=str, help="zoo architectures to build and export"),
    "mediapipe": Field(list, ["face_detection_short_range", "selfie_segmentation"], choices=tuple(MEDIAPIPE_TASKS),
                       item=str, min_len=0, help="trained .tflite models copied from the mediapipe wheel"),
    "user": Field(list, [], item=str, min_len=0,
                  pattern=r"(?!.*(^|/)\.\.(/|$))data/user_models/[A-Za-z0-9_.-][A-Za-z0-9_./-]{0,199}\.(tflite|onnx)",
                  names="user_model", help="your own .tflite/.onnx files under data/user_models/"),
    "formats": Field(list, list(MODEL_FORMATS), choices=MODEL_FORMATS, item=str,
                     help="at least one: an empty list would build no zoo file"),
    "weights_seed": Field(int, 0, min=0, max=2**32 - 1, help="weights of the untrained zoo models are a function of this seed"),
}

ADB: dict[str, Field] = {
    "server": Field(str, "127.0.0.1:5037", pattern=HOST_PORT, help="adb server host:port (another host's server for a fleet)",
                    check=lambda v: None if 0 < int(v.rpartition(":")[2]) < 65536 else "port out of 1..65535"),
    "benchmark_binary": Field(str, "", min_len=0, pattern=PATH, names="file",
                              help="path on this host to LiteRT's benchmark_model built for the phone's ABI"),
    "benchmark_sha256": Field(str, "", min_len=0, pattern=SHA256, names="sha256",
                              help="its sha256, checked before anything runs"),
    "remote_dir": Field(str, "/data/local/tmp/hetero-pitfalls", pattern=REMOTE_DIR, names="phone folder",
                        check=lambda v: None if ".." not in v.split("/") and "." not in v.split("/")
                        else "an absolute path on the phone, without '.' or '..'",
                        help="working folder on the phone (binary, models, pid file)"),
    "timeout_s": _seconds(30.0, 1.0, 3600.0, help="timeout of every adb call (shell, push, pull)"),
    "run_timeout_s": _seconds(600.0, 5.0, 7200.0, help="timeout of one benchmark_model run"),
    "competitor_max_s": _seconds(3600.0, 10.0, 86400.0,
                                 help="competitors on the phone end themselves after this long (a host crash safety net)"),
    "gfxinfo_package": Field(str, "", min_len=0, pattern=ANDROID_PACKAGE, names="Android package",
                             help="package of the co-running app whose frame drops are read (dumpsys gfxinfo)"),
    "nnapi_accelerator": Field(str, "", min_len=0, pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", names="accelerator name",
                               help="--nnapi_accelerator_name (empty: NNAPI chooses)"),
    "fixed_performance_mode": Field(bool, False, help="cmd power set-fixed-performance-mode-enabled true during runs"),
}

RIGOR: dict[str, Field] = {
    "models": _names(default=["mobilenet_v2", "transformer_enc"],
                     help="models for the sustained run and the between-run benchmark"),
    "engines": Field(list, ["litert"], choices=ENGINES, item=str),
    "processors": Field(list, ["cpu", "gpu"], choices=PROCESSORS, item=str),
    "core_group": _core_group(help="CPU core group of every configuration (a column of every row)"),
    "sustained_seconds": _seconds(12.0, 1.0, 86400.0, help="length of the continuous run per configuration"),
    "burst_seconds": _seconds(2.0, 0.1, 3600.0, help="the burst window at the start of the run"),
    "sensor_interval_s": _seconds(1.0, 0.05, 600.0),
    "between_runs": Field(int, 6, min=2, max=1000, help="independent processes of the between-run benchmark"),
    "samples_per_run": Field(int, 20, min=5, max=100000),
    "coverage_models": _names(default=["mobilenet_v2", "fast_style_transfer", "transformer_enc"],
                              help="models whose configurations the coverage check measures twice"),
    "coverage_engines": Field(list, ["litert", "onnxruntime"], choices=ENGINES, item=str),
    "coverage_core_groups": _names(pattern=CORE_GROUP, names="core_group", default=["all", "g0"],
                                   help="core groups crossed with the coverage configurations"),
    "target_rel_halfwidth": Field(float, 0.02, min=0.001, max=0.5,
                                  help="interval half-width the run plan is computed for"),
    "material_change": Field(float, 0.03, min=0.0, max=1.0,
                             help="relative burst/sustained difference that counts as material"),
}

OPERATOR_SUPPORT: dict[str, Field] = {
    "models": _names(default=["resnet50", "vgg16", "mobilenet_v2", "fast_style_transfer", "yolo_det", "transformer_enc",
                              "face_detection_short_range", "selfie_segmentation", "face_landmark",
                              "hand_landmark_lite", "pose_detection"],
                     help="models of the manifest (zoo + trained mediapipe models)"),
    "engines": Field(list, list(ENGINES), choices=ENGINES, item=str),
    "processors": Field(list, list(PROCESSORS), choices=PROCESSORS, item=str),
    "core_group": _core_group(help="CPU core group of every configuration"),
    "profile_repeats": Field(int, 2, min=1, max=100,
                             help="independent repeats of each per-operator profile (CI of latency shares)"),
    "profile_runs": Field(int, 2, min=1, max=10000, help="timed runs per operator in one repeat (median)"),
    "whole_model": Field(bool, True, help="time the whole model on each available processor with the harness"),
}


def _input_size(v) -> str | None:
    return None if v == 0 or (v >= 32 and v % 32 == 0) else "0 (standard size) or a multiple of 32 expected"


MULAYER_OVERHEAD: dict[str, Field] = {
    "models": Field(list, ["fast_style_transfer", "resnet50", "yolo_det", "mobilenet_v2"], choices=MULAYER_MODELS,
                    item=str, help="zoo models with a PyTorch definition"),
    "pairs": Field(list, ["cpu+gpu", "cpu+cpu"], choices=PAIRS, item=str,
                   help="processor pairs: CPU+GPU (needs CUDA) and two disjoint CPU core groups"),
    "cpu_groups": _names(pattern=CORE_GROUP, names="core_group", default=["g0", "g1"], min_len=2, max_len=2,
                         help="the two core groups of the cpu+cpu pair (a = this process, b = the worker)"),
    "gpu_cpu_group": _core_group(help="core group of the CPU side of the cpu+gpu pair"),
    "granularities": Field(list, list(GRANULARITIES), choices=GRANULARITIES, item=str),
    "ratios": Field(list, [0.25, 0.5, 0.75], item=float, min=0.0, max=1.0,
                    help="swept shares of output channels on processor b (0 and 1 are always added)"),
    "input_size": Field(int, 128, min=0, max=1024, check=_input_size,
                        help="square input side for every model; 0 = the model's standard input"),
    "profile_runs": Field(int, 3, min=1, max=100, help="runs of the per-layer profile that predicts r*"),
    "frames_per_run": Field(int, 4, min=2, max=256, help="frames in one timed call at frame level"),
    "frame_policies": Field(list, list(FRAME_POLICIES), choices=FRAME_POLICIES, item=str),
    "gpu_tf32": Field(bool, False, help="allow TF32 on the GPU (off: full float32 on both processors)"),
    "worker_timeout_s": _seconds(300.0, 1.0, 86400.0, help="longest wait for one answer of the worker"),
    "spin_us": Field(float, 100.0, min=0.0, max=100000.0,
                     help="cpu+cpu pair: each side polls the pipe this long before sleeping (0: sleep at once)"),
    "idle_threshold": Field(float, 0.5, min=0.0, max=1.0,
                            help="C4: branch level 'leaves a processor idle' if its idle share exceeds this"),
    "n_boot": _n_boot(2000, 200),
    "max_samples": Field(int, 0, min=0, max=100000,
                         help="cap on the harness's max_samples for this stage's many configurations (0: no cap); "
                              "the effective settings are in the fingerprint and the samples' settings hash"),
    "runs": _runs(),
}


def _zero_included(v) -> str | None:
    return None if 0 in v else "must include 0 (the baseline without competitors)"


CONTENTION: dict[str, Field] = {
    # contention
    "models": _names(default=["mobilenet_v2"], help="models measured under competitors"),
    "suts": Field(list, ["cpu/litert", "gpu/litert", "gpu/torch"], choices=SUTS, item=str,
                  help="systems under test, processor/engine (absent ones are reported with their reason)"),
    "kinds": Field(list, list(COMPETITOR_KINDS), choices=COMPETITOR_KINDS, item=str, help="competitor kinds"),
    "n_competitors": Field(list, [0, 1, 2, 3], item=int, min=0, max=8, check=_zero_included),
    "core_placements": Field(list, ["same", "cross"], choices=PLACEMENTS, item=str,
                             help="CPU-side competitors on the inference's core group (same) or the other (cross)"),
    "inference_core_group": Field(str, "auto", pattern=f"auto|{CORE_GROUP}", names="core_group",
                                  help="core group of the measured configurations; auto: big, else g0"),
    "rounds": Field(int, 3, min=1, max=50, help="visits of each condition"),
    "samples_per_visit": Field(int, 8, min=1, max=1000, help="timed calls per configuration and visit"),
    "visit_warmup": Field(int, 2, min=0, max=100,
                          help="untimed calls per configuration at each visit (sessions stay warm across visits)"),
    "visit_max_seconds": _seconds(3.0, 0.05, 3600.0, help="timed seconds per configuration and visit"),
    "ramp_s": _seconds(0.3, 0.0, 30.0, help="wait after the competitors report ready"),
    "memory_mib": Field(int, 0, min=0, max=8192, help="memory competitor buffer (MiB); 0 = twice the LLC, 64..512"),
    # co-running app
    "corun_models": _names(default=["mobilenet_v2"], help="models run beside the app"),
    "corun_suts": Field(list, ["cpu/litert", "gpu/litert", "gpu/torch"], choices=SUTS, item=str),
    "corun_core_group": _core_group(help="core group of the inference beside the app (dedicated: all)"),
    "app_core_group": _core_group(help="core group the app may run on"),
    "fps": Field(list, [30, 60], item=(int, float), min=1, max=240, help="frame budgets of the app"),
    "renders": Field(list, ["cpu", "gpu"], choices=RENDERS, item=str, help="where the app draws"),
    "clip": Field(str, "bigbuckbunny", choices=CLIPS),
    "canvas": Field(list, [1280, 720], item=int, min=16, max=8192, min_len=2, max_len=2, unique=False,
                    help="width, height of the app's canvas"),
    "corun_seconds": _seconds(3.0, 0.5, 600.0, help="recorded seconds per app run"),
    "app_warmup_s": _seconds(0.5, 0.0, 30.0),
    "corun_rounds": Field(int, 2, min=1, max=50),
    # claims
    "claim_fps": Field((int, float), 30, min=1, max=240, help="frame budget of the C6 claim row (one of fps)"),
    "c6_threshold_pp": Field(float, 5.0, min=0.0, max=100.0,
                             help="C6: missed-share increase (percentage points) that counts as material"),
    "n_boot": _n_boot(2000, 200),
    "runs": _runs(),
}

PROFILING_ERROR: dict[str, Field] = {
    "models": _names(default=["mobilenet_v2"], help="models run in the scenario"),
    "candidates": _candidates("engine/processor/core_group a scheduler chooses between"),
    **_scenario((75.0, 5.0), "dynamic scenario", "the schedule and the per-step order", [4.0, 9.0]),
    "sensor_interval_s": _seconds(2.0, 0.1, 600.0, help="sensor reads between phase changes"),
    "op_runs": Field(int, 5, min=1, max=1000, help="timed runs per operator (median) for the operator sum"),
    "window": Field(int, 8, min=1, max=10000, help="sliding window of the runtime profiler (observations)"),
    "ewma_alpha": Field(float, 0.3, min=0.001, max=1.0, help="EWMA weight of the newest observation"),
    "block_seconds": _seconds(3.0, 0.01, 3600.0, help="block length of the block bootstrap (scenario seconds)"),
    "n_boot": _n_boot(1000),
    "c9_material": Field(float, 0.05, min=0.0, max=1.0,
                         help="C9: the best single candidate must be this much slower than switching per context"),
    "runs": _runs(),
}

# a stationary competitor load: none, or kind+count@core group joined by '+' (cpu1@g0, memory1@all+cpu2@g1)
LOAD = rf"none|((cpu|memory|gpu)[0-9]{{1,2}}@({CORE_GROUP}))(\+(cpu|memory|gpu)[0-9]{{1,2}}@({CORE_GROUP}))*"

ADAPTIVE_RUNTIME: dict[str, Field] = {
    "models": _names(default=["mobilenet_v2"], help="models served (the first decides C11)"),
    "candidates": _candidates("engine/processor/core_group the runtime chooses between (absent ones are placed)"),
    "runs": Field(int, 3, min=1, max=100, help="independent runs, each a fresh process"),
    "stationary": Field(list, ["none", "cpu1@g0", "cpu1@g1"], item=str, pattern=LOAD,
                        help="stationary conditions: competitor loads on for a whole condition"),
    "stationary_seconds": _seconds(5.0, 1.0, 3600.0, help="length of each stationary condition"),
    **_scenario((20.0, 2.0), "dynamic scenario (finding 4's generator)", "the dynamic schedule", [2.0, 5.0]),
    "offline_requests": Field(int, 15, min=1, max=10000, help="idle requests per candidate of the offline profile"),
    "window": Field(int, 16, min=1, max=10000, help="window of the runtime's estimators and change detection"),
    "ewma_alpha": Field(float, 0.3, min=0.001, max=1.0, help="EWMA weight of the newest observation"),
    "estimator": Field(str, "window_mean", choices=("ewma", "window_median", "window_mean", "window_p90"),
                       help="the estimate the runtime chooses on"),
    "change_threshold": Field(float, 0.3, min=0.01, max=10.0, help="relative deviation that signals a change"),
    "confirm": Field(int, 3, min=1, max=1000, help="consecutive deviating observations that confirm a change"),
    "probe_every": Field(int, 50, min=2, max=100000, help="one exploration probe per this many requests"),
    "cooldown": Field(int, 10, min=0, max=100000, help="requests between two re-plans"),
    "switch_margin": Field(float, 0.05, min=0.0, max=1.0, help="hysteresis: a challenger must be this much faster"),
    "frame_budget_ms": Field(float, 33.3, min=0.1, max=1e6, help="deadline of a request (missed-deadline share)"),
    "stationary_margin": Field(float, 0.02, min=0.0, max=1.0,
                               help="C11: the p95 excess over the best static allowed in a stationary condition"),
    "block_seconds": _seconds(1.0, 0.01, 3600.0, help="block length of the block bootstrap (condition seconds)"),
    "n_boot": _n_boot(2000),
    "split_models": _names(choices=MULAYER_MODELS, default=["mobilenet_v2", "yolo_det"], min_len=0,
                           help="models whose co-execution split is predicted and checked against the grid"),
    "split_ratios": Field(list, [0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0], item=float, min=0.0, max=1.0,
                          help="the grid of splits (share on the second processor)"),
    "split_input_size": Field(int, 128, min=0, max=1024, check=_input_size,
                              help="square input side of the split models (0 = each model's standard input)"),
    "split_runs": Field(int, 7, min=1, max=10000, help="interleaved rounds timing every split"),
    "profile_runs": Field(int, 3, min=1, max=1000, help="per-layer profile runs (r = 0 and r = 1)"),
    "calib_runs": Field(int, 3, min=1, max=1000, help="runs at r* that measure the overhead per split layer"),
}

FRAME_REUSE: dict[str, Field] = {
    "models": Field(list, ["face_detection_short_range", "selfie_segmentation", "mobilenet_v2"], choices=REUSE_MODELS,
                    item=str, help="trained MediaPipe models (LiteRT) and zoo models (PyTorch)"),
    "clips": Field(list, list(CLIPS), choices=CLIPS, item=str),
    "face_clips": Field(list, ["carphone"], choices=CLIPS, item=str,
                        help="clips the face detector runs on (clips with a face)"),
    "processors": Field(list, ["cpu", "gpu"], choices=("cpu", "gpu"), item=str),
    "frames": Field(int, 32, min=4, max=10000, help="first N frames of each clip"),
    "frame_thresholds": Field(list, [2.0, 4.0, 8.0], item=float, min=0.0, max=255.0, min_len=0,
                              help="frame level: reuse when the frame's mean absolute difference is <= this"),
    "region_thresholds": Field(list, [4.0, 8.0, 16.0], item=float, min=0.0, max=255.0, min_len=0,
                               help="region level: recompute tiles whose window changed by more than this"),
    "tile": Field(int, 32, min=4, max=256, help="tile size (input pixels) of region-level reuse"),
    "warmup_frames": Field(int, 2, min=0, max=100, help="untimed frames before each trace"),
    "memory_frames": Field(int, 6, min=0, max=100, help="frames replayed (untimed) to measure transient peak memory"),
    "min_reduction": Field(float, 0.2, min=0.0, max=1.0, help="C8: mean latency reduction the CI must exceed"),
    "floor_det_iou": Field(float, 0.8, min=0.0, max=1.0),
    "floor_seg_miou": Field(float, 0.9, min=0.0, max=1.0),
    "floor_psnr_db": Field(float, 30.0, min=0.0, max=200.0),
    "floor_top1": Field(float, 0.9, min=0.0, max=1.0),
    "claim_models": Field(list, ["face_detection_short_range", "selfie_segmentation"], choices=REUSE_MODELS, item=str,
                          help="models whose points decide C8 (trained: fidelity is accuracy)"),
    "n_boot": _n_boot(1000),
    "boot_block": Field(int, 4, min=1, max=1000, help="block length (frames) of the circular block bootstrap"),
    "runs": _runs(),
}

CROSS_LEVEL: dict[str, Field] = {
    "models": Field(list, ["mobilenet_v2", "face_detection_short_range", "selfie_segmentation"],
                    choices=CROSS_LEVEL_MODELS, item=str,
                    help="zoo models (untrained: agreement) and trained MediaPipe models"),
    "engines": Field(list, list(ENGINES), choices=ENGINES, item=str),
    "processors": Field(list, ["cpu", "gpu"], choices=PROCESSORS, item=str, help="npu: phones (NNAPI through benchmark_model)"),
    "core_group": _core_group(help="CPU core group of every configuration"),
    "quant_variants": Field(list, list(QUANT), choices=QUANT, item=str, min_len=0),
    "prune_strengths": Field(list, [0.5], item=float, min=0.0, max=1.0, min_open=True, max_open=True, min_len=0,
                             help="structured pruning: share of the (inner) channels removed"),
    "lowrank_ratios": Field(list, [0.5], item=float, min=0.0, max=1.0, min_open=True, min_len=0,
                            help="low rank: rank / full rank"),
    "prune_multiple": Field(int, 8, min=1, max=64, help="kept channels rounded to a multiple of this"),
    "clips": Field(list, ["bikes", "carphone"], choices=CLIPS, item=str,
                   help="clips whose frames feed the zoo models (calibration and fidelity)"),
    "face_clips": Field(list, ["carphone"], choices=CLIPS, item=str,
                        help="clips for the trained MediaPipe models (a face / a person)"),
    "calib_frames": Field(int, 4, min=1, max=1000, help="frames calibrating int8 ranges"),
    "fidelity_frames": Field(int, 6, min=2, max=1000, help="frames the fidelity is measured on (others than calibration)"),
    "frame_stride": Field(int, 3, min=1, max=100, help="take every n-th frame of a clip"),
    "floor_agreement": Field(float, 0.9, min=0.0, max=1.0, help="zoo models: mean output agreement floor"),
    "floor_det_iou": Field(float, 0.8, min=0.0, max=1.0, help="face detection: mean IoU floor"),
    "floor_seg_miou": Field(float, 0.9, min=0.0, max=1.0, help="segmentation: mean mIoU floor"),
    "frontend_engine": Field(str, "litert", choices=ENGINES, help="frontend-only choice: the fixed backend's engine"),
    "frontend_processor": Field(str, "cpu", choices=PROCESSORS,
                                help="frontend-only choice: the fixed backend's processor"),
    "primary_model": Field(str, "mobilenet_v2", choices=CROSS_LEVEL_MODELS,
                           help="the model whose C10 row stands for the claim"),
    "c10_material": Field(float, 0.05, min=0.0, max=0.5,
                          help="C10: the joint choice must be at least this much faster (ratio < 1 - this)"),
    "coexec_models": Field(list, ["mobilenet_v2"], choices=ZOO_MODELS, item=str, min_len=0,
                           help="zoo models for the CPU+GPU precision pairings (finding 2's engine)"),
    "coexec_profile_runs": Field(int, 3, min=1, max=100, help="runs of the engine's per-layer profile (split ratio)"),
    "gpu_op_placement": Field(bool, False, help="LiteRT on a GPU: also place every operator alone (one compile "
                                                "per operator: slow); else the whole model's is_fully_accelerated()"),
    "torch_cpu_fp16": Field(bool, False, help="also time PyTorch fp16 on the CPU (slow kernels)"),
    "int8_reduce_range": Field(bool, True, help="PyTorch int8: 7-bit activations (safe on CPUs without VNNI)"),
    "n_boot": _n_boot(1000),
    "keep_variants": Field(bool, False, help="keep the built variant files after the run"),
    "runs": _runs(),
}

PAPER_TITLE = "Heterogeneous mobile processors: potentials and pitfalls, reproduced"
PAPER: dict[str, Field] = {
    "devices": _names(default=[], min_len=0, names="device folder", pattern=r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}",
                      help="device folders to include (label, device slug or folder name); [] = all found"),
    "include_reference": Field(bool, True, help="include the committed reference datasets (data/reference/)"),
    "include_peers": Field(bool, True, help="include every peer's data under peers/<name>/"),
    "peer_dirs": _names(default=[], min_len=0, pattern=PATH, names="folder",
                        help="further folders with peers' data (a device folder or a folder of them)"),
    "alpha": Field(float, 0.05, min=0.001, max=0.5, help="family-wise error rate of the Holm correction"),
    "report_title": Field(str, PAPER_TITLE, pattern=TITLE, names="title (printable, no '<' or '>')"),
    "finding_figures": Field(bool, True, help="embed this machine's figures of every finding in the report"),
}

# every section of params.yaml but the top-level scalars and the harness
STAGES: dict[str, dict[str, Field]] = {
    "models": MODELS,
    "rigor": RIGOR,
    "operator_support": OPERATOR_SUPPORT,
    "mulayer_overhead": MULAYER_OVERHEAD,
    "contention": CONTENTION,
    "profiling_error": PROFILING_ERROR,
    "frame_reuse": FRAME_REUSE,
    "cross_level": CROSS_LEVEL,
    "adaptive_runtime": ADAPTIVE_RUNTIME,
    "paper": PAPER,
}
TOP_KEYS = (*COMMON, "harness", "adb", *STAGES)


def leaves() -> dict[str, Field]:
    """Every leaf of the schema by its dotted name (``<stage>.<profile>.<key>`` for overrides)."""
    out = {f"{k}": f for k, f in COMMON.items()}
    for p in PROFILES:
        out.update({f"harness.{p}.{k}": f for k, f in HARNESS.items()})
    out.update({f"adb.{k}": f for k, f in ADB.items()})
    for stage, schema in STAGES.items():
        out.update({f"{stage}.{k}": f for k, f in schema.items()})
        for p in PROFILES:
            out.update({f"{stage}.{p}.{k}": f for k, f in schema.items()})
    return out


def check_tree(params: Any) -> dict[str, Any]:
    """Every key and leaf of a whole ``params.yaml`` against the schema (types, ranges,
    choices, patterns; nothing that needs the machine). Returns the tree with numbers
    coerced (ints where floats are expected); raises ``ParamError`` naming the first bad key."""
    if not isinstance(params, dict):
        raise ParamError(f"params.yaml: expected a mapping of sections at the top level, got {type(params).__name__}")
    unknown = [k for k in params if k not in TOP_KEYS]
    if unknown:
        raise ParamError(f"{unknown[0]}: unknown top-level key; known: {', '.join(TOP_KEYS)}")
    for k in ("device", "profile", "seed", "harness"):
        if k not in params:
            raise ParamError(f"{k}: missing top-level key")
    out = {k: f.validate(k, params[k]) for k, f in COMMON.items()}
    harness = params["harness"]
    if not isinstance(harness, dict):
        raise ParamError(f"harness: expected a mapping of profiles, got {type(harness).__name__} {_short(harness)}")
    bad = [k for k in harness if k not in PROFILES]
    if bad:
        raise ParamError(f"harness.{bad[0]}: unknown profile; known: {', '.join(PROFILES)}")
    if out["profile"] not in harness:
        raise ParamError(f"harness.{out['profile']}: missing (the settings of the chosen profile)")
    out["harness"] = {}
    for p, section in harness.items():
        out["harness"][p] = check_section(f"harness.{p}", section, HARNESS)
        _harness_check(f"harness.{p}", out["harness"][p])
    out["adb"] = check_section("adb", params.get("adb"), ADB)
    for stage, schema in STAGES.items():
        section = params.get(stage)
        base = check_section(stage, section, schema, partial=True, allow=PROFILES)
        for p in PROFILES:
            if section is not None and p in section:
                base[p] = check_section(f"{stage}.{p}", section[p], schema, partial=True)
        out[stage] = base
    return out


def stage_section(stage: str, tree: dict[str, Any], profile: str) -> dict[str, Any]:
    """A stage's section of a checked tree with ``profile``'s overrides applied and defaults filled in."""
    section = tree.get(stage) or {}
    merged = {k: v for k, v in section.items() if k not in PROFILES}
    merged.update(section.get(profile) or {})
    return check_section(stage, merged, STAGES[stage])
