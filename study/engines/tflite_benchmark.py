"""LiteRT/TFLite's ``benchmark_model`` binary on an Android phone (engine ``litert-benchmark``).

Over adb, one inference per call cannot be timed from the host (the adb round trip
would be the measurement), so this engine runs whole benchmarks *on the phone* with
the binary the user supplies (``adb.benchmark_binary``, checked by sha256) and parses
what it prints:

* timings: ``count=.. first=.. curr=.. min=.. max=.. avg=.. std=..`` (plus
  ``p5=.. median=.. p95=..`` in newer builds) for the warm-up and the regular runs,
  the initialisation time, the ``Inference timings in us`` summary line;
* delegation: ``Replacing N out of M node(s) with delegate (NAME) node, yielding P
  partitions ...`` -> delegated vs total nodes (older builds print ``Replacing N
  node(s)`` without the total);
* the per-operator profile (``--enable_op_profiling=true``): the ``Run Order`` table
  (node type, first, avg ms, %, cdf%, mem KB, times called, name ``[outputs]:node``),
  per subgraph, and the delegate-internal table.

The format follows TFLite's sources (``tools/benchmark/benchmark_model.cc``,
``benchmark_tflite_model.cc``, ``profiling/profile_summarizer.cc``,
``profile_summary_formatter.cc``, ``core/util/stats_calculator.cc``, ``core/subgraph.cc``).

Per-run latencies: the binary prints none. Its sources keep every run only inside
``StatWithPercentiles`` and report aggregates (stdout; ``--result_file_path`` writes the
same aggregates as a proto). So each benchmark call becomes ONE aggregate row with its
run count ``n``, mean, std, min, max (and p5/median/p95 where printed). ``BenchmarkSession``
is the phone's session for ``study.measure``'s harness (``AdbDevice.open_session``): one call
per block, returned as ``study.measure.Aggregate``; the harness interleaves, stops, logs and
resumes as on the host, and every row says ``aggregate=True`` / ``method``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from study.engines.base import OP_PROFILE_COLUMNS, PLACEMENT_COLUMNS, Engine, EngineUnavailable

ENGINE_NAME = "litert-benchmark"

# processor -> (backend name on the device, benchmark_model flag that selects it)
PROCESSOR_FLAGS = {"cpu": ("xnnpack", "use_xnnpack"), "gpu": ("gpu-delegate", "use_gpu"),
                   "npu": ("nnapi", "use_nnapi")}
# delegate kernel names (node types in the profile, names in the "Replacing" line) -> processor
DELEGATE_PROCESSOR = [(re.compile(r"gpu", re.I), "gpu"), (re.compile(r"nnapi|hexagon|npu|qnn|neuron|eden|dsp", re.I), "npu"),
                      (re.compile(r"xnnpack", re.I), "cpu")]

AGGREGATE_METHOD = ("benchmark_model on the phone: aggregate of n runs (the binary prints no per-run "
                    "latencies; latency_ms is the block mean)")


# =========================================================================== parsing
@dataclass
class TimingStats:
    """One ``Stat`` line of the benchmark tool, microseconds."""

    count: int = 0
    first: float = math.nan
    curr: float = math.nan
    min: float = math.nan
    max: float = math.nan
    avg: float = math.nan
    std: float = math.nan
    p5: float = math.nan
    median: float = math.nan
    p95: float = math.nan
    all_same: bool = False

    def as_ms(self) -> dict[str, float]:
        return {k: (getattr(self, k) / 1000.0 if k != "count" else self.count)
                for k in ("count", "first", "curr", "min", "max", "avg", "std", "p5", "median", "p95")}


_KV = re.compile(r"\b(count|first|curr|min|max|avg|std|p5|median|p95)=(-?[0-9.eE+-]+|nan|inf)")


def parse_stat_line(text: str) -> TimingStats | None:
    """``count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929`` (any
    order, optional percentiles; ``count=1 curr=11409`` and ``(all same)`` forms too)."""
    pairs = dict(_KV.findall(text))
    if "count" not in pairs:
        return None
    st = TimingStats(count=int(float(pairs["count"])))
    for k, v in pairs.items():
        if k != "count":
            setattr(st, k, float(v))
    st.all_same = "(all same)" in text
    if st.count >= 1 and st.all_same or (st.count == 1 and not math.isnan(st.curr) and math.isnan(st.avg)):
        # the tool prints only curr when every value is the same
        for k in ("first", "min", "max", "avg", "median", "p5", "p95"):
            if math.isnan(getattr(st, k)):
                setattr(st, k, st.curr)
        if math.isnan(st.std):
            st.std = 0.0
    return st


@dataclass
class DelegateApplication:
    """One ``Replacing N out of M node(s) with delegate (NAME) node, yielding P partitions`` line."""

    delegate: str
    delegated_nodes: int
    total_nodes: int | None
    partitions: int
    subgraph: int | None = None

    @property
    def processor(self) -> str:
        return delegate_processor(self.delegate) or "?"


_REPLACING = re.compile(
    r"Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \(([^)]*)\) node, yielding (\d+) partitions?"
    r"(?: for (?:subgraph (\d+)|the whole graph))?")


def delegate_processor(name: str) -> str | None:
    for pat, proc in DELEGATE_PROCESSOR:
        if pat.search(name or ""):
            return proc
    return None


@dataclass
class ProfileRow:
    """One row of a ``Run Order`` table."""

    section: str          # 'init' (Profiling Info for Benchmark Initialization) or 'run'
    subgraph: int         # 0 = primary graph; -1 = delegate internal table
    node_type: str
    first_ms: float
    avg_ms: float
    pct: float
    cdf_pct: float
    mem_kb: float
    times_called: int
    name: str
    start_ms: float = math.nan

    @property
    def node_index(self) -> int | None:
        """The interpreter's node index (``[outputs]:12``), None for delegate-internal ops."""
        if self.name.startswith("Delegate/"):
            return None
        m = re.search(r":(\d+)\s*$", self.name)
        return int(m.group(1)) if m else None

    @property
    def is_delegate_kernel(self) -> bool:
        return "delegate" in self.node_type.lower() and not self.name.startswith("Delegate/")

    @property
    def inside_delegate(self) -> bool:
        return self.name.startswith("Delegate/") or self.subgraph == -1


@dataclass
class BenchmarkOutput:
    """Everything parsed from one ``benchmark_model`` run."""

    text: str = ""
    params: dict[str, str] = field(default_factory=dict)       # "Num threads: [4]" echo lines
    created_delegates: list[str] = field(default_factory=list)  # "Created TensorFlow Lite ... delegate for GPU."
    delegations: list[DelegateApplication] = field(default_factory=list)
    gpu_backend: str | None = None                              # OpenCL / OpenGL
    model_size_mb: float = math.nan
    init_ms: float = math.nan                                   # "Initialized session in X ms."
    warmup: TimingStats | None = None
    runs: TimingStats | None = None
    summary_us: dict[str, float] = field(default_factory=dict)  # Init / First inference / Warmup (avg) / Inference (avg)
    memory_mb: dict[str, float] = field(default_factory=dict)
    profile: list[ProfileRow] = field(default_factory=list)
    profile_runs: TimingStats | None = None                     # "Timings (microseconds)" of the regular-run profile
    unsupported_ops: dict[str, str] = field(default_factory=dict)  # "Following operations are not supported by ..."
    delegate_split: tuple[int, int] | None = None                # "N operations will run on the GPU, and the remaining M ... CPU"
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.runs is not None and self.runs.count > 0

    def delegation_for(self, processor: str) -> DelegateApplication | None:
        hits = [d for d in self.delegations if d.processor == processor]
        return hits[0] if hits else None

    def total_nodes(self) -> int | None:
        """Nodes of the primary graph before any delegate (the first ``out of M``)."""
        for d in self.delegations:
            if d.total_nodes is not None and (d.subgraph in (None, 0)):
                return d.total_nodes
        return None


_LEVEL = r"(?:INFO|WARNING|WARN|ERROR|VERBOSE|DEBUG|FATAL)"
# "INFO: " (TFLITE_LOG to stderr) or a logcat line "05-31 10:38:42.583 22206 22206 I tflite  : "
_STRIP = re.compile(rf"^(?:{_LEVEL}: |\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+ [VDIWEF] [^:]*: )")
_IS_ERROR = re.compile(r"^(?:(?:ERROR|FATAL): |\d\d-\d\d \S+\s+\d+\s+\d+ [EF] )")
_TITLE = re.compile(r"^=+ (.+?) =+$")


def _clean(line: str) -> str:
    return _STRIP.sub("", line.rstrip("\r\n"))


def _num(tok: str) -> float:
    tok = tok.strip().rstrip("%")
    try:
        return float(tok)
    except ValueError:
        return math.nan


def _header_columns(line: str) -> list[str]:
    return [c.strip().lower() for c in re.findall(r"\[([^\]]+)\]", line)]


def _split_row(line: str, columns: list[str]) -> list[str] | None:
    """Fields of a table row: tab-separated as the tool writes it, else by a regex that
    allows spaces inside the node type and the name (text copied from a terminal)."""
    fields = [f.strip() for f in line.split("\t")]
    while fields and fields[0] == "":
        fields.pop(0)
    if len(fields) == len(columns):
        return fields
    if len(fields) == len(columns) - 1 and columns[-1] == "name":
        return fields + [""]
    k = len(columns) - 2 if columns[-1] == "name" else len(columns) - 1
    num = r"-?(?:\d+(?:\.\d*)?|nan|inf)%?"
    pat = rf"^\s*(.+?)\s+((?:{num}\s+){{{k - 1}}}{num})(?:\s+(.*?))?\s*$"
    m = re.match(pat, line)
    if not m:
        return None
    nums = m.group(2).split()
    out = [m.group(1).strip()] + nums
    if columns[-1] == "name":
        out.append((m.group(3) or "").strip())
    return out


@dataclass
class _ParseState:
    """Where ``parse_benchmark_output`` is in the console output."""
    section: str | None = None      # None | 'init' | 'run': the op-profile section
    subgraph: int | None = 0
    table: str | None = None        # the current profile table's title
    columns: list[str] = field(default_factory=list)
    in_profile_totals: bool = False
    in_unsupported: bool = False    # inside a delegate's list of unsupported operators
    stat_lines: list[TimingStats] = field(default_factory=list)


def parse_benchmark_output(text: str) -> BenchmarkOutput:
    """Parse the console output of ``benchmark_model`` (stdout and stderr merged)."""
    out = BenchmarkOutput(text=text)
    st = _ParseState()
    for orig in text.splitlines():
        raw = _clean(orig)
        line = raw.strip()
        if not line:
            st.table = None
            continue
        if _profile_line(st, out, raw, line) or _unsupported_line(st, out, line) or _delegate_line(out, line):
            continue
        _summary_line(st, out, orig, line)
    # the first Stat line is the warm-up, the second the regular runs (benchmark_model.cc order)
    if len(st.stat_lines) >= 2:
        out.warmup, out.runs = st.stat_lines[0], st.stat_lines[1]
    elif len(st.stat_lines) == 1:
        out.warmup = st.stat_lines[0]
    return out


def _profile_line(st: _ParseState, out: BenchmarkOutput, raw: str, line: str) -> bool:
    """The op-profile sections (``--enable_op_profiling``): their titles, subgraphs, the Run
    Order table's rows and the totals line. True where the line was one of them."""
    if line.startswith("Profiling Info for Benchmark Initialization"):
        st.section, st.subgraph, st.table = "init", 0, None
        return True
    if line.startswith("Operator-wise Profiling Info for Regular Benchmark Runs"):
        st.section, st.subgraph, st.table = "run", 0, None
        return True
    if re.match(r"^Primary graph \(name: [^)]*\)", line) and st.section:
        st.subgraph = 0
        return True
    m = re.match(r"^Subgraph \(index: (\d+), name: [^)]*\) (?:profile|summary):?$", line)
    if m and st.section:
        st.subgraph = int(m.group(1))
        return True
    if line.startswith("Delegate internal:") and st.section:
        st.subgraph = -1
        return True
    m = _TITLE.match(line)
    if m and m.group(1) == "Run Order" and st.section is None:
        st.section, st.subgraph = "run", 0  # older builds print the table without a section title
    if m and st.section:
        st.table, st.columns = m.group(1), []
        return True
    if st.table is not None and st.section and "[" in line and not st.columns:
        st.columns = _header_columns(line)
        return True
    if line.startswith("Timings (microseconds):") and st.section:
        stats = parse_stat_line(line)
        if st.section == "run" and st.subgraph in (0, None) and stats is not None:
            out.profile_runs = stats
        st.table = None
        st.in_profile_totals = True
        return True
    if st.table == "Run Order" and st.columns and st.section:
        fields = _split_row(raw, st.columns)
        if fields is not None:
            out.profile.append(_profile_row(st, dict(zip(st.columns, fields))))
        return True
    # other tables (Top by Computation Time, Summary by node type) repeat the run order
    return st.table is not None and bool(st.section)


def _profile_row(st: _ParseState, rec: dict[str, str]) -> ProfileRow:
    return ProfileRow(
        section=st.section, subgraph=st.subgraph, node_type=rec.get("node type", ""),
        start_ms=_num(rec.get("start", "nan")), first_ms=_num(rec.get("first", "nan")),
        avg_ms=_num(rec.get("avg ms", "nan")), pct=_num(rec.get("%", "nan")),
        cdf_pct=_num(rec.get("cdf%", "nan")), mem_kb=_num(rec.get("mem kb", "nan")),
        times_called=int(_num(rec.get("times called", "0")) if rec.get("times called") else 0),
        name=rec.get("name", ""))


def _unsupported_line(st: _ParseState, out: BenchmarkOutput, line: str) -> bool:
    """A delegate's list of the operators it does not support, and its split line."""
    if re.search(r"(?:Following|Next) operations are not supported by", line):
        st.in_unsupported = True
        return True
    if not st.in_unsupported:
        return False
    m = re.search(r"(\d+|No) operations will run on the \w+, and (?:the remaining|all) (\d+)(?: operations)? will run "
                  r"on the CPU", line)
    if m:
        out.delegate_split = (0 if m.group(1) == "No" else int(m.group(1)), int(m.group(2)))
        st.in_unsupported = False
        return True
    m = re.match(r"^([A-Z][A-Z0-9_]*(?::[A-Za-z0-9_]+)?): ?(.*)$", line)
    if m:
        out.unsupported_ops[m.group(1)] = m.group(2).strip()
        return True
    st.in_unsupported = False
    return False


def _delegate_line(out: BenchmarkOutput, line: str) -> bool:
    """Delegates applied and created, the GPU backend initialized."""
    m = _REPLACING.search(line)
    if m:
        out.delegations.append(DelegateApplication(
            delegate=m.group(3), delegated_nodes=int(m.group(1)),
            total_nodes=int(m.group(2)) if m.group(2) else None, partitions=int(m.group(4)),
            subgraph=int(m.group(5)) if m.group(5) else None))
        return True
    m = re.search(r"Created TensorFlow Lite (.*?delegate.*?)\.?$", line)
    if m:
        out.created_delegates.append(m.group(1))
        return True
    m = re.search(r"Initialized (OpenCL|OpenGL|Vulkan|Metal|WebGPU)[-\w ]*API", line)
    if m:
        out.gpu_backend = m.group(1)
        return True
    return False


def _summary_line(st: _ParseState, out: BenchmarkOutput, orig: str, line: str) -> None:
    """Sizes, times, memory, the timing stat lines, the echoed parameters, errors and warnings."""
    m = re.match(r"^The input model file size \(MB\): ([0-9.eE+-]+)", line)
    if m:
        out.model_size_mb = float(m.group(1))
        return
    m = re.match(r"^Initialized session in ([0-9.eE+-]+)\s*ms", line)
    if m:
        out.init_ms = float(m.group(1))
        return
    if line.startswith("Inference timings in us:") or line.startswith("Average inference timings in us:"):
        for key, val in re.findall(r"(Init|First inference|Warmup \(avg\)|Warmup|Inference \(avg\)|Inference): "
                                   r"([0-9.eE+-]+)", line):
            out.summary_us[key] = float(val)
        return
    m = re.match(r"^Memory footprint delta from the start of the tool \(MB\): init=([0-9.]+) overall=([0-9.]+)", line)
    if m:
        out.memory_mb.update(init=float(m.group(1)), overall=float(m.group(2)))
        return
    m = re.match(r"^Overall peak memory footprint \(MB\) via periodic monitoring: ([0-9.]+)", line)
    if m:
        out.memory_mb["peak"] = float(m.group(1))
        return
    if re.match(r"^(?:count=|curr=)", line) and not st.in_profile_totals:
        stats = parse_stat_line(line)
        if stats is not None:
            st.stat_lines.append(stats)
        return
    m = re.match(r"^([A-Z][A-Za-z0-9 ()/_.-]*?): \[(.*)\]$", line)
    if m:
        out.params[m.group(1)] = m.group(2)
        return
    if _IS_ERROR.match(orig) or re.match(r"^(?:Failed|Error|Unconsumed cmdline flags|Could not|Aborted)", line) \
            or re.search(r"\b(?:Segmentation fault|not found|No such file|Permission denied|FATAL)\b", line):
        out.errors.append(line)
        return
    if re.match(r"^WARN(?:ING)?: ", orig):
        out.warnings.append(line)


# =========================================================================== tables
def samples_frame(result: BenchmarkOutput, columns: dict[str, Any] | None = None) -> pd.DataFrame:
    """One aggregate row for the regular runs of ``result`` (empty frame if it has none)."""
    if not result.ok:
        return pd.DataFrame()
    ms = result.runs.as_ms()
    row = dict(columns or {})
    row.update(n=int(result.runs.count), latency_ms=ms["avg"], latency_std_ms=ms["std"], latency_min_ms=ms["min"],
               latency_max_ms=ms["max"], latency_first_ms=ms["first"], latency_last_ms=ms["curr"],
               latency_p5_ms=ms["p5"], latency_median_ms=ms["median"], latency_p95_ms=ms["p95"],
               warmup_n=int(result.warmup.count) if result.warmup else 0,
               warmup_mean_ms=result.warmup.avg / 1000.0 if result.warmup else math.nan,
               first_inference_ms=result.summary_us.get("First inference", math.nan) / 1000.0,
               init_ms=result.init_ms, aggregate=True, method=AGGREGATE_METHOD)
    return pd.DataFrame([row])


def delegation_frame(result: BenchmarkOutput, model: str, processor: str) -> pd.DataFrame:
    """Delegated vs total nodes, one row per delegate application (or one row saying none)."""
    cols = ["model", "engine", "processor", "delegate", "delegate_processor", "delegated_nodes", "total_nodes",
            "partitions", "share_delegated", "subgraph"]
    rows = []
    total0 = result.total_nodes()
    for d in result.delegations:
        total = d.total_nodes if d.total_nodes is not None else total0
        rows.append(dict(model=model, engine=ENGINE_NAME, processor=processor, delegate=d.delegate,
                         delegate_processor=d.processor, delegated_nodes=d.delegated_nodes, total_nodes=total,
                         partitions=d.partitions, share_delegated=(d.delegated_nodes / total) if total else math.nan,
                         subgraph=d.subgraph if d.subgraph is not None else 0))
    if not rows:
        rows.append(dict(model=model, engine=ENGINE_NAME, processor=processor, delegate="none",
                         delegate_processor="", delegated_nodes=0, total_nodes=total0, partitions=0,
                         share_delegated=0.0 if total0 else math.nan, subgraph=0))
    return pd.DataFrame(rows, columns=cols)


def op_profile_frame(result: BenchmarkOutput, model: str, processor: str, section: str = "run") -> pd.DataFrame:
    """The Run Order table as ``OP_PROFILE_COLUMNS`` (+ subgraph, first_ms, pct, times_called)."""
    n = result.profile_runs.count if result.profile_runs else (result.runs.count if result.runs else 0)
    rows = []
    for r in result.profile:
        if r.section != section:
            continue
        proc = delegate_processor(r.node_type) if r.is_delegate_kernel else None
        if r.inside_delegate:
            where = f"inside {delegate_processor(r.name) or processor} delegate"
            placed = delegate_processor(r.node_type + r.name) or processor
        elif proc:
            placed, where = proc, "delegate kernel (one partition)"
        else:
            placed, where = "cpu", "TFLite CPU kernel (not delegated)"
        idx = r.node_index
        rows.append(dict(model=model, engine=ENGINE_NAME, processor=processor, op_index=-1 if idx is None else idx,
                         op_type=r.node_type.split("/")[0], op_name=r.name, placed_on=placed, time_ms=r.avg_ms, n=n,
                         method=f"benchmark_model --enable_op_profiling (avg over runs; {where})",
                         subgraph=r.subgraph, first_ms=r.first_ms, pct=r.pct, times_called=r.times_called))
    return pd.DataFrame(rows, columns=OP_PROFILE_COLUMNS + ["subgraph", "first_ms", "pct", "times_called"])


def placement_frame(result: BenchmarkOutput, model: str, processor: str, graph_ops: Sequence[Any] | None) -> pd.DataFrame:
    """Per-operator placement from a profiled run with the CPU fallback on TFLite's own kernels
    (``--use_xnnpack=false``): every operator the delegate did not take appears in the
    profile under its own node index; the others were taken by the delegate.

    ``graph_ops``: the model's operators (``tflite_graph.graph_ops``), read on the host.
    """
    target = result.delegation_for(processor)
    fallback = {r.node_index for r in result.profile
                if r.section == "run" and r.subgraph == 0 and not r.is_delegate_kernel and not r.inside_delegate
                and r.node_index is not None}
    delegate_name = target.delegate if target else "none"
    method = ("benchmark_model on the phone: operators in the op profile under their own node index ran on "
              "TFLite CPU kernels; the rest went to the delegate (delegate log line gives the count)")
    rows = []
    ops = list(graph_ops or [])
    if not ops:  # no host-side graph: only what the profile shows
        ops = [type("Op", (), {"index": r.node_index, "op_type": r.node_type})() for r in result.profile
               if r.section == "run" and r.subgraph == 0 and r.node_index is not None and not r.is_delegate_kernel]
    consistent = ""
    if target is not None:
        expected = len(ops) - len(fallback & {o.index for o in ops})
        if expected != target.delegated_nodes:
            consistent = (f"; count check: {target.delegated_nodes} nodes delegated per the log line, "
                          f"{expected} inferred from the profile")
    on, off = ("xnnpack", "cpu-builtin") if processor == "cpu" else (processor, "cpu-fallback")
    for o in ops:
        taken = target is not None and o.index not in fallback and bool(result.profile)
        if taken:
            placed, why = on, ""
        else:
            placed = off
            why = (f"not taken by {delegate_name}" if target is not None else
                   f"no {processor} delegate applied (no 'Replacing ... with delegate' line)")
            if target is not None and not result.profile:
                why = "op profile missing: cannot attribute operators"
        rows.append(dict(model=model, engine=ENGINE_NAME, processor=processor, op_index=o.index, op_type=o.op_type,
                         op_name=f"{o.index}:{o.op_type}", placed_on=placed, delegated=bool(taken),
                         partition=-1, method=method + consistent, reason=why))
    df = pd.DataFrame(rows, columns=PLACEMENT_COLUMNS)
    df.attrs["delegation"] = dataclasses.asdict(target) if target else None
    return df


# =========================================================================== command line
def benchmark_flags(processor: str, threads: int, num_runs: int, warmup: int, *, op_profiling: bool = False,
                    cpu_fallback: str = "xnnpack", max_secs: float | None = None,
                    nnapi_accelerator: str = "", supported: Iterable[str] | None = None,
                    extra: dict[str, Any] | None = None) -> list[str]:
    """The benchmark_model flags (without ``--graph``) for one configuration. Flags the
    binary does not know (``supported``, from its ``--help``) are left out, except the
    one that selects the processor (its absence is an error)."""
    if processor not in PROCESSOR_FLAGS:
        raise EngineUnavailable(f"{ENGINE_NAME} has no {processor!r} processor; known: {sorted(PROCESSOR_FLAGS)}")
    if num_runs < 1 or warmup < 0 or threads < 1:
        raise ValueError("num_runs >= 1, warmup >= 0, threads >= 1 expected")
    sup = set(supported) if supported is not None else None
    flags: dict[str, Any] = {
        "num_threads": threads, "num_runs": num_runs, "warmup_runs": warmup,
        # exact counts: without these the tool adds runs until 1 s (0.5 s warm-up) has passed
        "min_secs": 0, "warmup_min_secs": 0,
    }
    if max_secs is not None:
        flags["max_secs"] = max(1, int(max_secs))
    select = PROCESSOR_FLAGS[processor][1]
    if processor == "cpu":
        flags["use_xnnpack"] = "false" if cpu_fallback == "builtin" else "true"
    else:
        flags[select] = "true"
        if cpu_fallback == "builtin":
            flags["use_xnnpack"] = "false"
        if processor == "npu":
            flags["disable_nnapi_cpu"] = "true"
            if nnapi_accelerator:
                flags["nnapi_accelerator_name"] = nnapi_accelerator
    if op_profiling:
        flags["enable_op_profiling"] = "true"
        flags["max_profiling_buffer_entries"] = 16384
    flags.update(extra or {})
    if sup is not None:
        if select not in sup and processor != "cpu":
            raise EngineUnavailable(f"this benchmark_model has no --{select} flag (built without that delegate)")
        flags = {k: v for k, v in flags.items() if k in sup or k == select}
    return [f"--{k}={v}" for k, v in flags.items()]


def supported_flags(help_text: str) -> set[str]:
    """Flag names listed by ``benchmark_model --help``."""
    return set(re.findall(r"--([a-z][a-z0-9_]*)(?:=|\s)", help_text))


def cpu_mask(cores: Iterable[int]) -> str:
    """``taskset`` mask in hex (no 0x), as toybox's taskset takes it: [4,5,6,7] -> 'f0'."""
    m = 0
    for c in cores:
        if int(c) < 0:
            raise ValueError(f"bad core {c}")
        m |= 1 << int(c)
    if m == 0:
        raise ValueError("empty core set")
    return format(m, "x")


# =========================================================================== engine
class TFLiteBenchmarkEngine(Engine):
    """``benchmark_model`` on a phone (``study.devices.adb.AdbDevice``). Bind it to the device:
    ``TFLiteBenchmarkEngine(device)`` or ``device.benchmark_engine()``."""

    name = ENGINE_NAME
    processor_backends = {p: b for p, (b, _) in PROCESSOR_FLAGS.items()}

    def __init__(self, device=None):
        self.device = device

    def _phone(self, device=None):
        dev = device or self.device
        if dev is None or getattr(dev, "kind", None) != "adb":
            where = getattr(dev, "spec", "no device")
            raise EngineUnavailable(f"{self.name} runs LiteRT's benchmark_model on an Android phone over adb "
                                    f"(device: {where})")
        return dev

    def version(self) -> str:
        dev = self.device
        if dev is not None and getattr(dev, "kind", None) == "adb":
            sha = dev.settings.benchmark_sha256
            return f"benchmark_model sha256:{sha[:12]}" if sha else "benchmark_model (unconfigured)"
        return "benchmark_model"

    def availability(self, device, processor: str, model=None) -> str | None:
        if getattr(device, "kind", None) != "adb":
            return (f"{self.name} runs LiteRT's benchmark_model on an Android phone over adb; "
                    f"{getattr(device, 'spec', device)} is not a phone")
        return super().availability(device, processor, model)

    def model_reason(self, model) -> str | None:
        return None if model.has("tflite") else f"model {model.name} has no .tflite file"

    def open(self, model, processor: str, threads: int = 1, cores: Sequence[int] | None = None, **options):
        """A ``BenchmarkSession``: one inference per call cannot be timed over adb (the round trip
        would dominate), so its blocks are timed on the phone and returned as aggregates."""
        return BenchmarkSession(self._phone(options.get("device")), model, processor, threads, cores,
                                bool(options.get("op_profiling", False)))

    # -- one benchmark call ---------------------------------------------------
    def run(self, model, processor: str, threads: int = 1, cores: Sequence[int] | None = None,
            num_runs: int = 50, warmup: int = 1, op_profiling: bool = False, cpu_fallback: str = "xnnpack",
            device=None) -> BenchmarkOutput:
        dev = self._phone(device)
        if not model.has("tflite"):
            raise EngineUnavailable(self.model_reason(model))
        return dev.run_benchmark(model.path("tflite"), processor, threads=threads, cores=cores, num_runs=num_runs,
                                 warmup=warmup, op_profiling=op_profiling, cpu_fallback=cpu_fallback)

    def benchmark(self, model, processor: str, threads: int = 1, core_mask: Sequence[int] | str | None = None,
                  num_runs: int = 50, warmup: int = 1, op_profiling: bool = False, device=None) -> pd.DataFrame:
        """One aggregate row (see module docstring); ``attrs['result']`` keeps the parsed output."""
        dev = self._phone(device)
        cores = dev.core_set(core_mask) if isinstance(core_mask, str) else core_mask
        res = self.run(model, processor, threads, cores, num_runs, warmup, op_profiling, device=dev)
        df = samples_frame(res, dict(model=model.name, engine=self.name, engine_version=self.version(),
                                     processor=processor, threads=threads,
                                     cores=",".join(map(str, cores)) if cores else "",
                                     **_delegation_columns(res, processor)))
        df.attrs["result"] = res
        return df

    def placement(self, model, processor: str, threads: int = 1, device=None) -> pd.DataFrame:
        from study.engines import tflite_graph as tg

        # CPU: XNNPACK on, its operators vanish into the delegate; accelerators: the CPU fallback on
        # TFLite's own kernels, so every operator the delegate did not take shows under its node index
        res = self.run(model, processor, threads, None, num_runs=1, warmup=0, op_profiling=True,
                       cpu_fallback="xnnpack" if processor == "cpu" else "builtin", device=device)
        if not res.ok:
            raise EngineUnavailable(f"{self.name} on {processor}: benchmark failed: {'; '.join(res.errors)[:300]}")
        return placement_frame(res, model.name, processor, tg.graph_ops(model.path("tflite")))

    def op_profile(self, model, processor: str, threads: int = 1, runs: int = 10, device=None) -> pd.DataFrame:
        res = self.run(model, processor, threads, None, num_runs=runs, warmup=1, op_profiling=True, device=device)
        if not res.ok:
            raise EngineUnavailable(f"{self.name} on {processor}: benchmark failed: {'; '.join(res.errors)[:300]}")
        return op_profile_frame(res, model.name, processor)


def _delegation_columns(res: BenchmarkOutput, processor: str) -> dict[str, Any]:
    d = res.delegation_for(processor)  # cpu: XNNPACK
    total = d.total_nodes if d is not None and d.total_nodes is not None else res.total_nodes()
    return dict(delegate=d.delegate if d else "none", delegated_nodes=d.delegated_nodes if d else 0,
                total_nodes=total if total is not None else -1, partitions=d.partitions if d else 0)


# =========================================================================== the harness's session
# the dataset columns of one call (study.measure.Aggregate.row), in this order
ROW_KEYS = ("n", "latency_ms", "latency_std_ms", "latency_min_ms", "latency_max_ms", "latency_first_ms",
            "latency_last_ms", "latency_p5_ms", "latency_median_ms", "latency_p95_ms", "warmup_n",
            "first_inference_ms", "init_ms", "delegate", "delegated_nodes", "total_nodes", "partitions",
            "gpu_backend", "aggregate", "method")


class BenchmarkSession:
    """One configuration on the phone for ``study.measure.Harness`` (``AdbDevice.open_session``):
    each block is ONE ``benchmark_model`` call (``runs`` timed runs after ``warmup`` untimed ones,
    the model loaded anew, pinned to ``cores`` with taskset), returned as its aggregate: the
    binary prints no per-run latencies, so the harness stops on the aggregates."""

    def __init__(self, device, model, processor: str, threads: int, cores: Sequence[int] | None = None,
                 op_profiling: bool = False):
        self.device, self.model, self.processor, self.threads = device, model, processor, threads
        self.cores = tuple(cores) if cores else None
        self.op_profiling = op_profiling

    def call(self, runs: int, warmup: int, extra_flags: dict[str, Any] | None = None) -> BenchmarkOutput:
        """One call, parsed; EngineUnavailable where it printed no timings."""
        extra = {"extra_flags": extra_flags} if extra_flags else {}
        res = self.device.run_benchmark(self.model.path("tflite"), self.processor, threads=self.threads,
                                        cores=self.cores, num_runs=runs, warmup=warmup,
                                        op_profiling=self.op_profiling, **extra)
        if not res.ok:
            raise EngineUnavailable("benchmark_model produced no timings: "
                                    + ("; ".join(res.errors) or res.text[-300:]).strip()[:400])
        return res

    def run_block(self, runs: int, warmup: int):
        from study.measure import Aggregate

        res = self.call(runs, warmup)
        full = {**samples_frame(res).iloc[0].to_dict(), **_delegation_columns(res, self.processor),
                "gpu_backend": res.gpu_backend}
        log = {"warmup_mean_ms": full.get("warmup_mean_ms"), "errors": res.errors, "warnings": res.warnings}
        if self.op_profiling:
            log["op_profile"] = op_profile_frame(res, getattr(self.model, "name", "?"), self.processor).to_dict("records")
        return Aggregate(row={k: full.get(k) for k in ROW_KEYS}, log=log)

    def close(self) -> None:
        pass


def op_profiles(log, configs: list, settings, env: dict[str, Any] | None = None) -> pd.DataFrame:
    """Per-operator profiles the harness logged for sessions with ``op_profiling``."""
    h = settings.hash(env)
    by_key = {c.key: c for c in configs}
    rows = []
    for r in log.records("aggregate"):
        if r.get("settings_hash") == h and r.get("config") in by_key and r.get("op_profile"):
            for op in r["op_profile"]:
                rows.append({**by_key[r["config"]].columns, "block": r["block"], **op})
    return pd.DataFrame(rows)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(chunk), b""):
            h.update(b)
    return h.hexdigest()


__all__ = ["AGGREGATE_METHOD", "BenchmarkOutput", "BenchmarkSession", "DelegateApplication", "ENGINE_NAME",
           "ProfileRow", "ROW_KEYS", "TFLiteBenchmarkEngine", "TimingStats", "benchmark_flags", "cpu_mask",
           "delegation_frame", "file_sha256", "op_profile_frame", "op_profiles", "parse_benchmark_output",
           "parse_stat_line", "placement_frame", "samples_frame", "supported_flags"]
