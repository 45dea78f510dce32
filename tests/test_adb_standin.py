"""End to end through adbutils and the REAL adb server, with the loopback stand-in for the
phone's side of the adb protocol (tests/adb_standin.py): facts, sensors, push/shell/pull,
quoting of hostile names, benchmark runs, competitors always ended, timeouts, a mid-run
disconnect that keeps what was measured."""
from __future__ import annotations

import shlex
import shutil
import time
from pathlib import Path

import pytest

from study.devices import adb as A
from study.engines import OP_PROFILE_COLUMNS, PLACEMENT_COLUMNS
from study.engines import tflite_benchmark as TB
from study.measure import Config, Harness, HarnessSettings, RawLog, sensor_summary
from study.models import ModelSpec
from study.paths import ASSETS

pytestmark = pytest.mark.skipif(shutil.which("adb") is None,
                                reason="needs Debian's adb package (scripts/setup.sh --test installs it)")
EVIL = "we ird'name; touch PWNED; $(touch PWNED2) `touch PWNED3` \"q\""
# what the device code may run on the phone; an injected name would add 'touch'
ALLOWED = {"echo", "cat", "ls", "getprop", "mkdir", "rm", "chmod", "sha256sum", "uname", "date", "taskset", "timeout",
           "kill", "ps", "cd", "dumpsys", "service", "lshal", "command", "nproc", "<sync>", "&", "cmd"}


def commands(phone) -> set[str]:
    return {argv[0] if not argv[0].startswith("/") else "<binary>" for argv in phone.executed}


def no_injection(phone, *dirs: Path) -> None:
    assert commands(phone) <= ALLOWED | {"<binary>"}, commands(phone) - ALLOWED
    for d in (phone.root, *dirs):
        assert not list(Path(d).rglob("PWNED*")), "a hostile name ran a command"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from adb_standin import AdbServer

    srv = AdbServer(tmp_path_factory.mktemp("adbhome"))
    yield srv
    srv.stop()


def _phone(server, tmp: Path, **settings):
    from adb_standin import AdbStandin, FakePhone, fake_benchmark_binary

    phone = FakePhone(tmp / "root")
    st = AdbStandin(phone).start()
    serial = server.connect(st)
    binary = fake_benchmark_binary(tmp / "benchmark_model")
    s = A.AdbSettings(server=server.address, benchmark_binary=str(binary),
                      benchmark_sha256=A.file_sha256(binary), **settings)
    return phone, st, serial, s


@pytest.fixture(scope="module")
def rig(server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("phone")
    phone, st, serial, s = _phone(server, tmp)
    dev = A.AdbDevice(f"adb:{serial}", serial, s)
    yield dict(phone=phone, standin=st, serial=serial, settings=s, device=dev, tmp=tmp)
    st.close()
    server.adb("disconnect", serial)


def model_spec(tmp: Path, name: str = "probe") -> ModelSpec:
    path = tmp / f"{name}.tflite"
    shutil.copy(ASSETS / "probe.tflite", path)
    return ModelSpec(name=name, source="user", task="test", files={"tflite": str(path)})


# --------------------------------------------------------------------------- facts and sensors
def test_facts_and_sensors_through_the_real_server(rig):
    dev, phone = rig["device"], rig["phone"]
    procs = {p.name: p for p in dev.processors()}
    assert procs["cpu"].available and procs["cpu"].backend_reason("xnnpack") is None
    assert procs["gpu"].available and procs["gpu"].info["name"] == "Adreno (TM) 640"
    assert procs["gpu"].backend_reason("gpu-delegate") is None
    assert procs["npu"].available and "qti-dsp" in procs["npu"].info["hal_devices"]
    assert dev.core_groups() == {"big": [7], "mid1": [4, 5, 6], "little": [0, 1, 2, 3], "all": list(range(8))}
    s = dev.read_sensors()
    assert s["cpu_freq"]["mhz"]["7"] == pytest.approx(1420.8) and s["cpu_governor"]["policy0"] == "schedutil"
    assert s["thermal"]["thermal_zone0:cpu-0-0-usr"] == pytest.approx(38.2) and s["battery"]["temperature_c"] == 31.2
    summ = sensor_summary(s)
    assert summ["gpu_sm_mhz"] == 585.0 and summ["temp_max_c"] == pytest.approx(38.2) and summ["cpu_mhz_mean"] > 0
    fp = dev.fingerprint()
    for k in ("model", "soc", "android", "abi", "kernel", "date", "sdk", "build"):
        assert fp[k], k
    assert fp["benchmark_binary"]["sha256"] == rig["settings"].benchmark_sha256 and fp["serial"] == rig["serial"]
    assert dev.slug() == "standin-phone-7_sm8150_android12" and dev.id == f"adb:{rig['serial']}"
    df = A.list_devices(rig["settings"])
    row = df[df["serial"] == rig["serial"]].iloc[0]
    assert (row["model"], row["soc"], row["android"], row["abi"]) == ("Standin Phone 7", "SM8150", "12", "arm64-v8a")
    no_injection(phone)


def test_unreadable_sensors_are_explicit(server, tmp_path):
    phone, st, serial, s = _phone(server, tmp_path)
    try:
        shutil.rmtree(phone.host("/sys/class/thermal"))
        shutil.rmtree(phone.host("/sys/class/kgsl"))
        dev = A.AdbDevice(f"adb:{serial}", serial, s)
        r = dev.read_sensors()
        assert r["thermal"]["status"] == "unavailable" and "SELinux" in r["thermal"]["why"]
        assert r["gpu"]["status"] == "unavailable" and r["cpu_freq"]["mhz"]
    finally:
        st.close()
        server.adb("disconnect", serial)


# --------------------------------------------------------------------------- push / shell / pull, quoting
def test_push_shell_pull_with_hostile_names(rig, tmp_path):
    dev, phone = rig["device"], rig["phone"]
    local = tmp_path / f"{EVIL}.bin"
    payload = bytes(range(256)) * 1000
    local.write_bytes(payload)
    remote = f"{dev.remote_dir}/{EVIL}.bin"
    dev.shell(f"mkdir -p {shlex.quote(dev.remote_dir)}", check=True)
    dev.push(local, remote)
    assert phone.host(remote).read_bytes() == payload
    r = dev.shell(f"sha256sum {shlex.quote(remote)}", check=True)
    assert r.output.split()[0] == A.file_sha256(local)
    assert dev.pull(remote, tmp_path / "back.bin") == len(payload)
    assert (tmp_path / "back.bin").read_bytes() == payload
    no_injection(phone, tmp_path)


def test_benchmark_on_a_hostile_model_name(rig, tmp_path):
    dev, phone = rig["device"], rig["phone"]
    spec = model_spec(tmp_path, EVIL)
    eng = dev.benchmark_engine()
    df = eng.benchmark(spec, "cpu", threads=3, core_mask="mid1", num_runs=5, warmup=2)
    row = df.iloc[0]
    assert row["n"] == 5 and row["aggregate"] and row["cores"] == "4,5,6" and row["delegated_nodes"] == 2
    last = phone.benchmarks[-1]
    assert last["graph"] == f"{dev.remote_dir}/models/{EVIL}.tflite"  # arrived intact, as one argument
    assert last["flags"]["num_threads"] == "3" and last["flags"]["warmup_runs"] == "2"
    run = next(a for a in reversed(phone.executed) if a[0] == "timeout")
    assert run[run.index("taskset"):run.index("taskset") + 2] == ["taskset", "70"]  # mid1 = cpus 4-6
    assert phone.host(last["graph"]).read_bytes() == (ASSETS / "probe.tflite").read_bytes()
    no_injection(phone, tmp_path)


def test_placement_and_op_profile(rig, tmp_path):
    dev, phone = rig["device"], rig["phone"]
    phone.gpu_unsupported = {"ADD"}
    try:
        eng = dev.benchmark_engine()
        spec = model_spec(tmp_path)
        pl = eng.placement(spec, "gpu")
        assert list(pl.columns) == PLACEMENT_COLUMNS
        assert pl.set_index("op_type")["delegated"].to_dict() == {"MUL": True, "ADD": False}
        assert phone.benchmarks[-1]["flags"]["use_xnnpack"] == "false"  # fallback ops visible by node index
        prof = eng.op_profile(spec, "gpu", runs=4)
        assert list(prof.columns[:len(OP_PROFILE_COLUMNS)]) == OP_PROFILE_COLUMNS
        assert set(prof["placed_on"]) == {"gpu", "cpu"} and (prof["n"] == 4).all()
    finally:
        phone.gpu_unsupported = {"MEAN"}


def test_measure_end_to_end(rig, tmp_path):
    dev = rig["device"]
    spec = model_spec(tmp_path)
    configs = [bench_config(dev, {"model": "probe", "processor": p, "core_group": g}, spec, p,
                            threads=len(dev.core_set(g)) if p == "cpu" else 1,
                            cores=tuple(dev.core_set(g)) if p == "cpu" else None)
               for p, g in (("cpu", "big"), ("cpu", "little"), ("gpu", "all"), ("npu", "all"))]
    s = HarnessSettings(warmup=1, min_samples=6, max_samples=9, max_seconds=5.0, rel_ci_halfwidth=0.001,
                        block_size=3, seed=1)
    log = RawLog(tmp_path / "raw.jsonl")
    df = Harness(s, log, dev, progress=False).run(configs)
    assert set(df["processor"]) == {"cpu", "gpu", "npu"} and len(df) == 12
    assert (df.groupby(["processor", "core_group"])["n"].sum() == 9).all()
    assert set(df["stop_reason"]) == {"max_samples"}
    assert df["cpu_mhz_mean_before"].notna().all() and df["temp_max_c_after"].notna().all()
    assert set(df.loc[df["core_group"] == "little", "cores"]) == {"0,1,2,3"}
    assert len(log.records("aggregate")) == 12


def bench_config(dev, columns, spec, processor, threads=1, cores=None) -> Config:
    """A harness configuration on the phone's benchmark_model session (``AdbDevice.open_session``)."""
    return Config(columns=columns, cores=cores, opener=lambda: dev.open_session(dev.benchmark_engine(), spec, processor,
                                                                              threads, cores))


# --------------------------------------------------------------------------- competitors
def test_competitors_are_started_pinned_and_always_ended(rig):
    dev, phone = rig["device"], rig["phone"]
    with pytest.raises(RuntimeError, match="measurement failed"):
        with dev.competitor_pool() as pool:
            pids = pool.start("cpu", 2, cores=[4, 5])
            assert set(pids) <= set(phone.procs) and pool.running()["cpu"] == 2
            argv = phone.procs[pids[0]]["argv"]
            assert argv[:2] == ["taskset", "30"] and argv[2] == "timeout" and A.COMPETITOR_TAG in argv
            assert "while :; do :; done" in argv[argv.index("-c") + 1]
            pool.start("memory", 1)
            recorded = phone.host(dev.pid_file).read_text().split()
            assert set(map(int, recorded)) == set(pool.pids())
            raise RuntimeError("measurement failed")
    assert not phone.procs  # ended on the error path too
    assert not phone.host(dev.pid_file).read_text().split()
    with pytest.raises(A.CompetitorError, match="gpu_model"):
        with dev.competitor_pool() as pool:
            pool.start("gpu", 1)


def test_gpu_competitor_runs_the_benchmark_binary(rig, tmp_path):
    dev, phone = rig["device"], rig["phone"]
    with A.competitors(dev, "gpu", 1, gpu_model=model_spec(tmp_path).path("tflite")) as pool:
        (pid,) = pool.pids("gpu")
        script = phone.procs[pid]["argv"][-2]
        assert "--use_gpu=true" in script and "benchmark_model" in script
    assert not phone.procs


def test_stale_competitors_of_a_crashed_run_are_ended(rig):
    dev, phone = rig["device"], rig["phone"]
    pid = phone.spawn(["timeout", "3600", "sh", "-c", "while :; do :; done", A.COMPETITOR_TAG])
    other = phone.spawn(["some_app"])
    phone.write(dev.pid_file, f"{pid}\n{other}\n")
    again = A.AdbDevice(dev.spec, rig["serial"], rig["settings"])
    assert pid not in phone.procs and other in phone.procs  # only tagged processes are ended
    assert not phone.host(again.pid_file).exists()
    del phone.procs[other]


# --------------------------------------------------------------------------- co-running app
def test_frame_drops_of_a_co_running_app(rig):
    dev, phone = rig["device"], rig["phone"]
    with dev.frame_drops("org.videolan.vlc") as fd:
        pass
    assert fd["total_frames"] == 1423 and fd["janky_share"] == pytest.approx(1297 / 1423)
    with pytest.raises(A.AdbDeviceError, match="no process"):
        dev.gfxinfo("x; touch PWNED; $(touch PWNED2)")
    no_injection(phone)


# --------------------------------------------------------------------------- robustness
def test_every_call_has_a_timeout(server, tmp_path):
    phone, st, serial, s = _phone(server, tmp_path, timeout_s=1.0)
    try:
        dev = A.AdbDevice(f"adb:{serial}", serial, s)
        t0 = time.monotonic()
        with pytest.raises(A.AdbTimeoutError, match="timed out"):
            dev.shell("sleep 4")
        assert time.monotonic() - t0 < 3.9
    finally:
        st.close()
        server.adb("disconnect", serial)


def test_binary_with_the_wrong_sha256_never_runs(rig, tmp_path):
    phone = rig["phone"]
    bad = A.AdbSettings(**{**rig["settings"].__dict__, "benchmark_sha256": "0" * 64})
    dev = A.AdbDevice(f"adb:{rig['serial']}", rig["serial"], bad)
    n = len(phone.benchmarks)
    with pytest.raises(A.BenchmarkBinaryError, match="refusing to run it"):
        dev.run_benchmark(model_spec(tmp_path).path("tflite"), "cpu")
    assert len(phone.benchmarks) == n


def test_disconnect_mid_run_keeps_what_was_measured(server, tmp_path):
    phone, st, serial, s = _phone(server, tmp_path)
    try:
        dev = A.AdbDevice(f"adb:{serial}", serial, s)
        spec = model_spec(tmp_path)
        configs = [bench_config(dev, {"model": "probe", "processor": p}, spec, p) for p in ("cpu", "gpu")]
        st_ = HarnessSettings(warmup=1, min_samples=6, max_samples=6, max_seconds=5.0, rel_ci_halfwidth=0.001,
                              block_size=3, seed=2)
        phone.disconnect_on_benchmark = 3  # the cable comes out during the third benchmark_model run
        log = RawLog(tmp_path / "raw.jsonl")
        t0 = time.monotonic()
        with pytest.raises(A.AdbDisconnected, match=rf"phone {serial} disconnected during benchmark_model"):
            Harness(st_, log, dev, progress=False).run(configs)
        assert time.monotonic() - t0 < 30
        assert len(log.records("aggregate")) == 2  # both blocks taken before the disconnect are on disk
    finally:
        st.close()
        server.adb("disconnect", serial)


def test_a_stage_context_on_the_phone(rig, tmp_path):
    """What a finding does on a phone: StageContext -> latency_config (the phone's sessions) -> the
    harness -> write."""
    from study.common import context
    from study.datasets import read_fingerprint, read_table

    dev = rig["device"]
    ctx = context("operator_support", {"device": dev.spec, "profile": "quick", "seed": 1,
                                       "harness": dict(warmup=1, min_samples=4, max_samples=4, max_seconds=5.0,
                                                       rel_ci_halfwidth=0.001, block_size=4, below_floors=True)})
    ctx.__dict__["device"] = dev                      # the stand-in phone, not params.yaml's server
    ctx.__dict__["manifest"] = {"probe": model_spec(tmp_path)}
    ctx.data_root, ctx.figures_root = tmp_path / "data", tmp_path / "figures"
    configs = [ctx.latency_config("probe", "litert", p, g) for p, g in (("cpu", "big"), ("gpu", "all"))]
    assert configs[0].columns["threads"] == 1 and configs[0].cores == (7,) and configs[1].columns["threads"] == 1
    assert isinstance(configs[0].opener(), TB.BenchmarkSession)   # the device supplies the session
    log = ctx.raw_log()
    df = ctx.harness(log).run(configs)
    log.mark_complete()
    path = ctx.write(df)
    assert path == tmp_path / "data" / dev.spec / "operator_support.parquet"
    back = read_table(path)
    assert len(back) == 2 and set(back["engine"]) == {"litert-benchmark"} and set(back["device"]) == {dev.spec}
    assert read_fingerprint(path)["soc"] == "SM8150" and ctx.fingerprint["kind"] == "adb"
