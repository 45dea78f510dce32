"""Phone device without a phone: parsers on benchmark_model / dumpsys text in the tools'
formats (tests/data, see its README), flags, settings, and the harness (``study.measure``) on
benchmark_model sessions of a scripted device."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from study.devices import DeviceError, get_device
from study.devices import adb as A
from study.engines import OP_PROFILE_COLUMNS, PLACEMENT_COLUMNS, EngineUnavailable
from study.engines import tflite_benchmark as TB
from study.engines.tflite_graph import OpInfo
from study.measure import Config, Harness, HarnessSettings, RawLog

DATA = Path(__file__).resolve().parent / "data"


def fixture(name: str) -> TB.BenchmarkOutput:
    return TB.parse_benchmark_output((DATA / name).read_text())


# --------------------------------------------------------------------------- benchmark_model output
def test_cpu_xnnpack_profile_newer_build():
    r = fixture("benchmark_cpu_xnnpack_profile.txt")
    assert r.ok and r.runs.count == 20 and r.warmup.count == 3
    assert r.runs.avg == pytest.approx(10393.6) and r.runs.std == 289 and r.runs.median == 10311 and r.runs.p95 == 11002
    assert r.runs.first == 10391 and r.runs.curr == 10256 and r.runs.min == 10102 and r.runs.max == 11467
    assert r.init_ms == pytest.approx(41.214)
    assert r.summary_us == {"Init": 41214, "First inference": 11873, "Warmup (avg)": 10978.3, "Inference (avg)": 10393.6}
    (d,) = r.delegations
    assert (d.delegate, d.delegated_nodes, d.total_nodes, d.partitions, d.subgraph) == ("TfLiteXNNPackDelegate", 71, 74, 3, 0)
    assert d.processor == "cpu" and r.total_nodes() == 74
    assert r.params["Num threads"] == "4" and r.memory_mb == {"init": pytest.approx(9.52344), "overall": pytest.approx(12.7031)}
    init = [p for p in r.profile if p.section == "init"]
    run = [p for p in r.profile if p.section == "run"]
    assert [p.node_type for p in init] == ["ModifyGraphWithDelegate", "AllocateTensors"]
    assert len(run) == 9  # the Top-by-time and by-type tables are not counted twice
    conv = next(p for p in run if p.node_type == "Convolution (NHWC, QC8) DWConv")
    assert conv.inside_delegate and conv.node_index is None and conv.times_called == 13 and conv.avg_ms == 0.051
    soft = next(p for p in run if p.node_type == "SOFTMAX")
    assert soft.node_index == 73 and not soft.inside_delegate and soft.avg_ms == 0.005
    assert r.profile_runs.count == 20 and r.profile_runs.avg == pytest.approx(2031.7)
    assert not r.errors


def test_gpu_partial_delegation_and_fallback_profile():
    r = fixture("benchmark_gpu_partial_profile.txt")
    assert r.ok and r.runs.count == 10 and math.isnan(r.runs.median)  # older build: no percentiles
    assert r.warmup.count == 1 and r.warmup.avg == 21907  # "count=1 curr=21907"
    assert r.gpu_backend == "OpenCL" and r.init_ms == pytest.approx(1483.62)
    assert r.unsupported_ops == {"ARG_MAX": "Operation is not supported.", "CAST": "Not supported Cast case.",
                                 "RESIZE_NEAREST_NEIGHBOR": "Max version supported: 3. Requested version 4."}
    assert r.delegate_split == (63, 3)
    d = r.delegation_for("gpu")
    assert (d.delegated_nodes, d.total_nodes, d.partitions) == (63, 66, 2)
    assert not r.errors  # the unsupported-operator report is not a failure
    kernels = [p for p in r.profile if p.is_delegate_kernel]
    assert [p.node_index for p in kernels] == [66, 67]
    assert sorted(p.node_index for p in r.profile if not p.is_delegate_kernel) == [40, 41, 65]


def test_nnapi_table_copied_with_spaces():
    r = fixture("benchmark_nnapi_spaces.txt")
    assert r.ok and r.runs.count == 5 and r.runs.p5 == 6402
    d = r.delegation_for("npu")
    assert d.delegate == "TfLiteNnapiDelegate" and (d.delegated_nodes, d.total_nodes) == (64, 66)
    rows = [(p.node_type, p.avg_ms, p.pct, p.node_index) for p in r.profile]
    assert rows == [("TfLiteNnapiDelegate", 4.011, 62.037, 64), ("RESIZE_NEAREST_NEIGHBOR", 0.058, 0.899, 38),
                    ("TfLiteNnapiDelegate", 2.396, 37.064, 65)]


def test_legacy_readme_format():
    r = fixture("benchmark_legacy_readme.txt")
    assert r.ok and r.runs.count == 50 and r.runs.avg == 79732 and r.warmup.count == 7
    assert r.summary_us == {"Warmup": 83235, "Init": 38467, "Inference": 79760.9}
    assert r.init_ms == pytest.approx(38.467)
    run = [p for p in r.profile if p.section == "run"]
    assert len(run) == 6 and run[0].start_ms == 0.0 and run[1].start_ms == pytest.approx(4.27)
    assert run[2].node_type == "CONV_2D" and run[2].avg_ms == pytest.approx(6.107)
    old = TB.parse_benchmark_output("INFO: Replacing 31 node(s) with delegate (TfLiteGpuDelegateV2) node, "
                                    "yielding 1 partitions.\n")
    (d,) = old.delegations
    assert d.delegated_nodes == 31 and d.total_nodes is None and d.partitions == 1


def test_failed_delegate_is_not_ok_and_keeps_the_reason():
    r = fixture("benchmark_gpu_failed.txt")
    assert not r.ok and r.runs is None
    assert "Failed to apply GPU delegate." in r.errors and "Benchmarking failed." in r.errors
    assert r.delegate_split == (0, 41) and set(r.unsupported_ops) == {"BATCH_MATMUL", "GELU"}
    assert TB.samples_frame(r).empty


def test_logcat_prefixed_lines():
    text = ("05-31 10:38:42.583 22206 22206 I tflite  : Num threads: [4]\n"
            "05-31 10:38:43.001 22206 22206 I tflite  : Replacing 10 out of 12 node(s) with delegate "
            "(TfLiteGpuDelegateV2) node, yielding 2 partitions for the whole graph.\n"
            "05-31 10:38:44.100 22206 22206 I tflite  : count=3 first=10 curr=12 min=10 max=13 avg=11.5 std=1\n"
            "05-31 10:38:45.100 22206 22206 I tflite  : count=5 first=9 curr=9 min=8 max=10 avg=9 std=0.5\n"
            "05-31 10:38:45.200 22206 22206 E tflite  : Failed to invoke the interpreter\n")
    r = TB.parse_benchmark_output(text)
    assert r.params["Num threads"] == "4" and r.delegations[0].delegated_nodes == 10
    assert r.runs.count == 5 and r.warmup.count == 3 and r.errors == ["Failed to invoke the interpreter"]


@pytest.mark.parametrize("line,expect", [
    ("count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929", dict(count=50, avg=79732, std=1929)),
    ("count=1 curr=11409", dict(count=1, avg=11409, min=11409, std=0.0)),
    ("count=5 curr=100(all same)", dict(count=5, avg=100, max=100, std=0.0)),
    ("count=20 first=1 curr=2 min=1 max=3 avg=2 std=1 p5=1 median=2 p95=3", dict(median=2, p95=3)),
])
def test_stat_lines(line, expect):
    st = TB.parse_stat_line(line)
    for k, v in expect.items():
        assert getattr(st, k) == v
    assert TB.parse_stat_line("no numbers here") is None
    assert TB.parse_stat_line("count=0").count == 0


# --------------------------------------------------------------------------- tables in the study's schema
def test_samples_frame_is_one_honest_aggregate_row():
    df = TB.samples_frame(fixture("benchmark_cpu_xnnpack_profile.txt"), {"model": "m", "processor": "cpu"})
    assert len(df) == 1
    row = df.iloc[0]
    assert row["n"] == 20 and row["latency_ms"] == pytest.approx(10.3936) and row["latency_std_ms"] == pytest.approx(0.289)
    assert row["latency_median_ms"] == pytest.approx(10.311) and row["aggregate"] and "aggregate" in row["method"]
    assert row["warmup_n"] == 3 and row["init_ms"] == pytest.approx(41.214)


def test_op_profile_frame_columns_and_places():
    df = TB.op_profile_frame(fixture("benchmark_gpu_partial_profile.txt"), "seg", "gpu")
    assert list(df.columns[:len(OP_PROFILE_COLUMNS)]) == OP_PROFILE_COLUMNS
    assert set(df.loc[df["op_type"] == "TfLiteGpuDelegateV2", "placed_on"]) == {"gpu"}
    assert set(df.loc[df["op_type"] != "TfLiteGpuDelegateV2", "placed_on"]) == {"cpu"}
    assert df.loc[df["op_type"] == "ARG_MAX", "op_index"].item() == 65 and (df["n"] == 10).all()
    cpu = TB.op_profile_frame(fixture("benchmark_cpu_xnnpack_profile.txt"), "mnv2", "cpu")
    inside = cpu[cpu["op_name"].str.startswith("Delegate/")]
    assert len(inside) == 6 and (inside["op_index"] == -1).all() and (inside["placed_on"] == "cpu").all()
    assert cpu.loc[cpu["op_type"] == "Convolution (NHWC, QC8) DWConv", "times_called"].item() == 13


def test_placement_frame_from_profile_node_indices():
    r = fixture("benchmark_gpu_partial_profile.txt")
    types = {40: "RESIZE_NEAREST_NEIGHBOR", 41: "CAST", 65: "ARG_MAX"}
    ops = [OpInfo(i, types.get(i, "CONV_2D"), (), ()) for i in range(66)]
    df = TB.placement_frame(r, "seg", "gpu", ops)
    assert list(df.columns) == PLACEMENT_COLUMNS and len(df) == 66
    assert df["delegated"].sum() == 63
    fb = df[~df["delegated"]]
    assert sorted(fb["op_index"]) == [40, 41, 65] and set(fb["placed_on"]) == {"cpu-fallback"}
    assert all("TfLiteGpuDelegateV2" in why for why in fb["reason"])
    assert "count check" not in df["method"].iloc[0]  # 63 from the log line == 66 - 3 from the profile
    wrong = TB.placement_frame(r, "seg", "gpu", ops[:60])
    assert "count check" in wrong["method"].iloc[0]
    cpu = TB.placement_frame(fixture("benchmark_cpu_xnnpack_profile.txt"), "mnv2", "cpu",
                             [OpInfo(i, "CONV_2D", (), ()) for i in range(74)])
    assert cpu["placed_on"].value_counts().to_dict() == {"xnnpack": 71, "cpu-builtin": 3}
    assert sorted(cpu.loc[~cpu["delegated"], "op_index"]) == [0, 72, 73]
    assert "count check" not in cpu["method"].iloc[0]


def test_delegation_frame():
    df = TB.delegation_frame(fixture("benchmark_nnapi_spaces.txt"), "deeplab", "npu")
    row = df.iloc[0]
    assert (row["delegated_nodes"], row["total_nodes"], row["partitions"]) == (64, 66, 2)
    assert row["share_delegated"] == pytest.approx(64 / 66) and row["delegate_processor"] == "npu"
    none = TB.delegation_frame(fixture("benchmark_legacy_readme.txt"), "m", "cpu")
    assert none.iloc[0]["delegate"] == "none" and none.iloc[0]["delegated_nodes"] == 0


# --------------------------------------------------------------------------- command line
def test_benchmark_flags_per_processor():
    sup = TB.supported_flags((DATA / "benchmark_help.txt").read_text())
    assert {"num_runs", "use_gpu", "use_nnapi", "use_xnnpack", "enable_op_profiling", "graph"} <= sup
    cpu = TB.benchmark_flags("cpu", 4, 20, 3, supported=sup)
    assert "--use_xnnpack=true" in cpu and "--num_threads=4" in cpu and "--min_secs=0" in cpu and "--warmup_runs=3" in cpu
    gpu = TB.benchmark_flags("gpu", 1, 10, 1, op_profiling=True, cpu_fallback="builtin", supported=sup)
    assert "--use_gpu=true" in gpu and "--use_xnnpack=false" in gpu and "--enable_op_profiling=true" in gpu
    npu = TB.benchmark_flags("npu", 1, 10, 1, nnapi_accelerator="qti-dsp", supported=sup)
    assert "--use_nnapi=true" in npu and "--nnapi_accelerator_name=qti-dsp" in npu and "--disable_nnapi_cpu=true" in npu
    # a flag this build lacks is left out; the processor's own flag missing is an error
    assert all(not f.startswith("--max_secs") for f in TB.benchmark_flags("cpu", 1, 5, 0, supported={"num_runs"}))
    with pytest.raises(EngineUnavailable, match="no --use_gpu"):
        TB.benchmark_flags("gpu", 1, 5, 0, supported={"num_runs"})
    with pytest.raises(EngineUnavailable):
        TB.benchmark_flags("tpu", 1, 5, 0)
    with pytest.raises(ValueError):
        TB.benchmark_flags("cpu", 0, 5, 0)


def test_cpu_mask():
    assert TB.cpu_mask([4, 5, 6, 7]) == "f0" and TB.cpu_mask([0]) == "1" and TB.cpu_mask([7]) == "80"
    with pytest.raises(ValueError):
        TB.cpu_mask([])


# --------------------------------------------------------------------------- dumpsys and sysfs
def test_gfxinfo_framestats():
    g = A.parse_gfxinfo((DATA / "gfxinfo_framestats.txt").read_text())
    assert g["processes"] == 1 and g["total_frames"] == 1423 and g["janky_frames"] == 1297
    assert g["janky_share"] == pytest.approx(1297 / 1423) and g["janky_frames_legacy"] == 1310
    assert g["p90_ms"] == 61 and g["missed_vsync"] == 612
    frames = g["frames"]
    assert len(frames) == 4 and g["framestats_frames"] == 3  # the Flags=1 frame is skipped
    assert frames["duration_ms"].iloc[0] == pytest.approx(40.439) and bool(frames["janky"].iloc[0])
    assert g["framestats_janky"] == 2
    empty = A.parse_gfxinfo("No process found for: com.nope\n")
    assert empty["processes"] == 0 and math.isnan(empty["janky_share"])


def test_small_parsers():
    assert A.parse_getprop("[ro.product.model]: [Pixel 7]\n[ro.x]: []\njunk") == {"ro.product.model": "Pixel 7", "ro.x": ""}
    assert A.parse_cpu_list("0-3,6\n") == [0, 1, 2, 3, 6] and A.parse_cpu_list("4 5 6") == [4, 5, 6]
    assert A.parse_thermal_value("38200") == 38.2 and A.parse_thermal_value("41") == 41 and A.parse_thermal_value("x") is None
    tree = A.parse_ps_tree("  PID  PPID\n  100 1\n  101 100\n  102 101\n  200 1\n")
    assert sorted(A.descendants(tree, [100])) == [100, 101, 102] and A.descendants(tree, [999]) == []
    assert A.soc_name({"ro.board.platform": "msmnile", "ro.hardware": "qcom"}) == "msmnile"


def test_read_script_survives_hostile_paths(tmp_path):
    """The marker script reads files whose names hold spaces, quotes, ; and $(): through the
    stand-in's shell, nothing else runs."""
    from adb_standin import FakePhone, FakeShell

    phone = FakePhone(tmp_path / "root")
    evil = "/data/local/tmp/a b'c;touch PWNED;$(touch PWNED2)\".txt"
    phone.write(evil, "hello\n")
    out, err, rc = FakeShell(phone).run(A.read_script([evil, "/sys/devices/system/cpu/online", "/nope"]))
    got = A.parse_marked(out.decode())
    assert got == {evil: "hello", "/sys/devices/system/cpu/online": "0-7", "/nope": None}
    assert {argv[0] for argv in phone.executed} <= {"echo", "cat"}
    assert not list(phone.root.rglob("PWNED*"))


# --------------------------------------------------------------------------- settings
def test_settings_validation(tmp_path, monkeypatch):
    monkeypatch.delenv("HETERO_ADB_SERVER", raising=False)
    s = A.AdbSettings.from_params({"adb": {"server": "10.0.0.5:5038"}})
    assert A.parse_server(s.server) == ("10.0.0.5", 5038)
    monkeypatch.setenv("HETERO_ADB_SERVER", "127.0.0.1:6000")
    assert A.AdbSettings.from_params({"adb": {"server": "10.0.0.5:5038"}}).server == "127.0.0.1:6000"
    from study.config import ParamError

    monkeypatch.delenv("HETERO_ADB_SERVER")
    for bad in ({"server": "nohost"}, {"benchmark_sha256": "xyz"}, {"remote_dir": "relative/dir"}, {"timeout_s": 0},
                {"unknown": 1}):
        with pytest.raises(ParamError):
            A.AdbSettings.from_params({"adb": bad})


def test_binary_sha256_is_checked_before_anything(tmp_path):
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF fake")
    good = A.file_sha256(binary)
    assert A.AdbSettings(benchmark_binary=str(binary), benchmark_sha256=good).verified_binary() == binary
    with pytest.raises(A.BenchmarkBinaryError, match="refusing to run it"):
        A.AdbSettings(benchmark_binary=str(binary), benchmark_sha256="0" * 64).verified_binary()
    with pytest.raises(A.BenchmarkBinaryError, match="sha256 is empty"):
        A.AdbSettings(benchmark_binary=str(binary)).verified_binary()
    with pytest.raises(A.BenchmarkBinaryError, match="does not exist"):
        A.AdbSettings(benchmark_binary=str(tmp_path / "nope"), benchmark_sha256=good).verified_binary()
    with pytest.raises(A.BenchmarkBinaryError, match="no benchmark binary"):
        A.check_adb_params({"device": "adb:X", "adb": {}})
    assert A.check_adb_params({"device": "local", "adb": {}})["server"] == "127.0.0.1:5037"
    assert issubclass(A.BenchmarkBinaryError, DeviceError)


def test_engine_refuses_the_local_device():
    eng = TB.TFLiteBenchmarkEngine()
    local = get_device("local")
    assert "Android phone" in eng.availability(local, "cpu")
    with pytest.raises(EngineUnavailable, match="Android phone"):
        eng.open(None, "cpu")
    with pytest.raises(EngineUnavailable, match="Android phone"):
        eng.benchmark(None, "cpu", device=local)


# --------------------------------------------------------------------------- the phone measuring loop
class ScriptedPhone:
    """run_benchmark returns benchmark_model text; disconnects on a chosen call."""

    kind = "adb"

    def __init__(self, disconnect_on: int | None = None, fail_processor: str | None = None):
        self.calls = []
        self.disconnect_on = disconnect_on
        self.fail_processor = fail_processor

    def read_sensors(self):
        return {"cpu_freq": {"mhz": {"0": 1800.0, "1": 1800.0}}, "cpu_governor": {"policy0": "schedutil"},
                "thermal": {"tz0:cpu": 40.0}, "gpu": {"gpus": [{"clocks.sm": 585.0}]}}

    def run_benchmark(self, path, processor, threads=1, cores=None, num_runs=50, warmup=1, op_profiling=False,
                      cpu_fallback="xnnpack"):
        self.calls.append((processor, num_runs, warmup, cores))
        if self.disconnect_on == len(self.calls):
            raise A.AdbDisconnected("phone X disconnected during benchmark_model")
        if processor == self.fail_processor:
            raise EngineUnavailable("benchmark_model on gpu failed (exit 1): Failed to apply GPU delegate.")
        base = {"cpu": 10000, "gpu": 4000}[processor]
        name = {"cpu": "TfLiteXNNPackDelegate", "gpu": "TfLiteGpuDelegateV2"}[processor]
        return TB.parse_benchmark_output(
            f"INFO: Replacing 5 out of 6 node(s) with delegate ({name}) node, yielding 1 partitions.\n"
            f"count={warmup} curr={base * 2}\n"
            f"count={num_runs} first={base} curr={base} min={base - 50} max={base + 50} avg={base} std=20\n")


class _Model:
    name = "m"

    def path(self, fmt):
        return "/x/m.tflite"


def _config(phone, columns, processor, cores=None, op_profiling=False, model=None):
    return Config(columns=columns, cores=cores, opener=lambda: TB.BenchmarkSession(
        phone, model or _Model(), processor, 1, cores, op_profiling))


def _configs(phone):
    return [_config(phone, {"model": "m", "processor": p}, p, (4, 5) if p == "cpu" else None) for p in ("cpu", "gpu")]


def measure(phone, configs, log, settings):
    """study.measure's harness on the phone's sessions (what study.phone.measure runs)."""
    return Harness(settings, log, phone, progress=False).run(configs)


def _settings(**kw):
    base = dict(warmup=2, min_samples=10, max_samples=20, max_seconds=100.0, rel_ci_halfwidth=0.05, block_size=5, seed=3)
    base.update(kw)
    return HarnessSettings(**base)


def test_measure_blocks_stop_and_tidy_rows(tmp_path):
    log = RawLog(tmp_path / "raw.jsonl")
    phone = ScriptedPhone()
    df = measure(phone, _configs(phone), log, _settings())
    # sd 20 us on 10 ms: the CI of the mean is narrow as soon as min_samples (10 runs = 2 blocks) are in
    assert len(df) == 4 and set(df["stop_reason"]) == {"ci_width_mean(aggregates)"}
    assert (df["n"] == 5).all() and df["aggregate"].all() and (df.groupby("processor")["n"].sum() == 10).all()
    assert df.loc[df["processor"] == "cpu", "latency_ms"].iloc[0] == pytest.approx(10.0)
    assert df["cpu_mhz_mean_before"].iloc[0] == 1800.0 and df["temp_max_c_after"].iloc[0] == 40.0
    assert df["gpu_sm_mhz_before"].iloc[0] == 585.0 and set(df["cores"]) == {"4,5", ""}
    assert all(c[2] == 2 for c in phone.calls) and {c[1] for c in phone.calls} == {5}
    assert (df["delegated_nodes"] == 5).all() and (df["total_nodes"] == 6).all()
    assert sorted(df.loc[df["processor"] == "cpu", "sample"]) == [0, 5]
    from study.measure import SAMPLE_COLUMNS
    assert set(SAMPLE_COLUMNS) <= set(df.columns)  # the host harness's columns, plus n / aggregate
    # a rerun resumes: nothing left to do
    again = measure(phone, _configs(phone), log, _settings())
    assert len(phone.calls) == 4 and len(again) == 4


def test_measure_max_samples_caps_the_last_block(tmp_path):
    log = RawLog(tmp_path / "raw.jsonl")
    phone = ScriptedPhone()
    s = _settings(min_samples=12, max_samples=12, rel_ci_halfwidth=0.0001)
    df = measure(phone, _configs(phone)[:1], log, s)
    assert df["n"].tolist() == [5, 5, 2] and set(df["stop_reason"]) == {"max_samples"}


def test_measure_failure_is_recorded_and_disconnect_keeps_data(tmp_path):
    log = RawLog(tmp_path / "raw.jsonl")
    failing = ScriptedPhone(fail_processor="gpu")
    df = measure(failing, _configs(failing), log, _settings())
    assert set(df["processor"]) == {"cpu"} and "Failed to apply GPU delegate" in next(iter(df.attrs["failed"].values()))
    log2 = RawLog(tmp_path / "raw2.jsonl")
    phone = ScriptedPhone(disconnect_on=3)
    with pytest.raises(A.AdbDisconnected, match="disconnected"):
        measure(phone, _configs(phone), log2, _settings())
    kept = log2.records("aggregate")
    assert len(kept) == 2  # the two blocks measured before the cable came out
    # the next run resumes: two more blocks, not four
    phone2 = ScriptedPhone()
    df2 = measure(phone2, _configs(phone2), log2, _settings())
    assert len(phone2.calls) == 2 and len(df2) == 4


def test_op_profiles_are_logged_per_block(tmp_path):
    class ProfilingPhone(ScriptedPhone):
        def run_benchmark(self, *a, **k):
            return fixture("benchmark_gpu_partial_profile.txt")

    profiling = ProfilingPhone()
    cfg = [_config(profiling, {"model": "seg", "processor": "gpu"}, "gpu", op_profiling=True)]
    log = RawLog(tmp_path / "raw.jsonl")
    measure(profiling, cfg, log, _settings(min_samples=10, max_samples=10))
    ops = TB.op_profiles(log, cfg, _settings(min_samples=10, max_samples=10))
    assert set(OP_PROFILE_COLUMNS) <= set(ops.columns) and len(ops) == 5 and isinstance(ops, pd.DataFrame)
