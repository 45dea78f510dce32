"""The ``adb`` device: an Android phone reached through an adb server (adbutils).

Spec ``adb:SERIAL`` (or plain ``adb`` when exactly one phone is attached). The adb
server is ``adb.server`` in ``params.yaml`` (``host:port``, default ``127.0.0.1:5037``;
another host's server for a fleet), or ``ANDROID_ADB_SERVER_HOST``/``..._PORT``.

What it reads from the phone:

* ``getprop``: model, SoC (``ro.soc.model`` / ``ro.board.platform`` / ``ro.hardware``),
  Android version, ABI, build fingerprint;
* CPU: clusters from ``/sys/devices/system/cpu/cpufreq/policy*`` (related CPUs, maximum
  and minimum frequency, governor) -> core groups ``big`` / ``mid1..`` / ``little`` + ``all``
  (the same rule as the local device: clusters by maximum frequency);
* GPU: ``ro.hardware.egl``, the GLES line of ``dumpsys SurfaceFlinger``, Adreno's
  ``/sys/class/kgsl/kgsl-3d0`` or Mali's ``/sys/class/misc/mali0``, GPU devfreq;
* NPU: NNAPI HAL services (``service list`` / ``lshal``), the Android API level, the
  benchmark binary's delegates (``--help``), with the reason when absent;
* sensors around every sample block: per-cluster ``scaling_cur_freq`` and governor, GPU
  clock (kgsl / devfreq), every readable ``/sys/class/thermal`` zone, battery temperature;
  each explicitly ``unavailable`` with the reason where not readable.

Every adb call has a timeout (``adb.timeout_s``; a benchmark run ``adb.run_timeout_s``, also
enforced on the phone with ``timeout``). A phone that goes away mid-call raises
``AdbDisconnected`` (a ``DeviceError``) naming what was running; callers append each
measurement to their raw log as it is taken, so nothing measured is lost. Every path and
name passed to the phone's shell is quoted with ``shlex.quote``.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import re
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd

from study.schema import ADB, check_section
from study.devices.base import BENCHMARK_MODEL, Device, DeviceError, Processor, now_iso, unavailable
from study.devices.local import split_core_groups

q = shlex.quote
MARK = "@@hetero-pitfalls@@"
COMPETITOR_TAG = "hetero-pitfalls-competitor"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


# =========================================================================== settings
ADB_PARAMS = ADB   # the schema of params.yaml's adb section (study.schema)


@dataclass(frozen=True)
class AdbSettings:
    server: str = "127.0.0.1:5037"
    benchmark_binary: str = ""
    benchmark_sha256: str = ""
    remote_dir: str = "/data/local/tmp/hetero-pitfalls"
    timeout_s: float = 30.0
    run_timeout_s: float = 600.0
    competitor_max_s: float = 3600.0
    gfxinfo_package: str = ""
    nnapi_accelerator: str = ""
    fixed_performance_mode: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any] | None = None) -> "AdbSettings":
        """From the ``adb`` section of ``params`` (or of ``params.yaml``). The server:
        ``HETERO_ADB_SERVER`` (host:port, a per-process override: tests, fleet hosts) before
        ``adb.server``, before ``ANDROID_ADB_SERVER_HOST``/``ANDROID_ADB_SERVER_PORT``
        (adb's own variables), before ``127.0.0.1:5037``."""
        if params is None:  # the file as it is (validate checks it; here only the adb section counts)
            import yaml

            from study.paths import PARAMS

            try:
                params = yaml.safe_load(PARAMS.read_text())
            except (OSError, yaml.YAMLError):
                params = {}
            params = params if isinstance(params, dict) else {}
        section = dict(params.get("adb") or {})
        if os.environ.get("HETERO_ADB_SERVER"):
            section["server"] = os.environ["HETERO_ADB_SERVER"]
        elif "server" not in section and (os.environ.get("ANDROID_ADB_SERVER_HOST") or
                                          os.environ.get("ANDROID_ADB_SERVER_PORT")):
            section["server"] = (f"{os.environ.get('ANDROID_ADB_SERVER_HOST', '127.0.0.1')}:"
                                 f"{os.environ.get('ANDROID_ADB_SERVER_PORT', '5037')}")
        return cls(**check_section("adb", section, ADB_PARAMS))


def check_adb_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validate the ``adb`` section; on an ``adb`` device also the benchmark binary (it must
    exist and match its sha256: a mismatch stops everything before anything is measured)."""
    section = check_section("adb", dict(params.get("adb") or {}), ADB_PARAMS)
    if str(params.get("device", "")).startswith("adb"):
        AdbSettings(**section).verified_binary()
    return section


def parse_server(text: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"adb server {text!r}: expected host:port, e.g. 127.0.0.1:5037")
    return host.strip("[]"), int(port)


class AdbDeviceError(DeviceError):
    """A phone that cannot be reached or used; ``disconnected`` if it went away."""

    disconnected = False


class AdbDisconnected(AdbDeviceError):
    disconnected = True


class AdbTimeoutError(AdbDeviceError):
    pass


class BenchmarkBinaryError(AdbDeviceError):
    """The benchmark binary is missing, or its sha256 differs from ``adb.benchmark_sha256``."""


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def _verified_binary(self: AdbSettings) -> Path:
    if not self.benchmark_binary:
        raise BenchmarkBinaryError("no benchmark binary: set adb.benchmark_binary to LiteRT's benchmark_model for the "
                                   "phone's ABI (e.g. android_aarch64_benchmark_model) and adb.benchmark_sha256 to its "
                                   "sha256 (docs/phones.md)")
    p = Path(self.benchmark_binary).expanduser()
    if not p.is_absolute():
        from study.paths import ROOT

        p = ROOT / p
    if not p.is_file():
        raise BenchmarkBinaryError(f"benchmark binary {p} does not exist (adb.benchmark_binary)")
    if not self.benchmark_sha256:
        raise BenchmarkBinaryError(f"adb.benchmark_sha256 is empty: give the sha256 of {p} "
                                   f"(`sha256sum {p}`); nothing runs unverified")
    got = file_sha256(p)
    if got != self.benchmark_sha256.lower():
        raise BenchmarkBinaryError(f"benchmark binary {p} has sha256 {got}, but adb.benchmark_sha256 is "
                                   f"{self.benchmark_sha256.lower()}: refusing to run it (nothing was measured)")
    return p


AdbSettings.verified_binary = _verified_binary  # type: ignore[attr-defined]


# =========================================================================== parsers (pure)
_GETPROP = re.compile(r"^\[([^\]]+)\]: \[(.*)\]$")


def parse_getprop(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = _GETPROP.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def parse_cpu_list(text: str) -> list[int]:
    """``0-3,6`` -> [0, 1, 2, 3, 6] (sysfs cpulist); also space-separated lists."""
    cpus: set[int] = set()
    for part in re.split(r"[,\s]+", (text or "").strip()):
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            cpus.update(range(int(a), int(b) + 1))
        else:
            cpus.add(int(part))
    return sorted(cpus)


def parse_marked(text: str, missing: str = "@@missing@@") -> dict[str, str | None]:
    """Output of ``read_script``: ``MARK<path>`` lines followed by the file's content."""
    out: dict[str, str | None] = {}
    cur = None
    buf: list[str] = []
    for line in text.splitlines():
        if line.startswith(MARK):
            if cur is not None:
                out[cur] = _content(buf, missing)
            cur, buf = line[len(MARK):], []
        elif cur is not None:
            buf.append(line)
    if cur is not None:
        out[cur] = _content(buf, missing)
    return out


def _content(buf: list[str], missing: str) -> str | None:
    text = "\n".join(buf).strip()
    return None if text == missing else text


def read_script(paths: Sequence[str], missing: str = "@@missing@@") -> str:
    """One shell line that prints every file of ``paths`` after a marker line (quoted)."""
    return "; ".join(f"echo {q(MARK + p)}; cat {q(p)} 2>/dev/null || echo {q(missing)}; echo" for p in paths)


def parse_gfxinfo(text: str) -> dict[str, Any]:
    """``dumpsys gfxinfo <package> [framestats]``: the summary counters (summed over the
    package's processes) and, with framestats, the per-frame table (``frames``: one row per
    frame of the PROFILEDATA blocks, ``duration_ms`` = FrameCompleted - IntendedVsync,
    ``janky`` = longer than the frame interval; rows with non-zero Flags are skipped as
    Android's own tools do)."""
    def total(pattern: str) -> float:
        vals = [float(v) for v in re.findall(pattern, text, re.M)]
        return float(sum(vals)) if vals else math.nan

    out: dict[str, Any] = {
        "processes": len(re.findall(r"^\*\* Graphics info for pid \d+", text, re.M)),
        "total_frames": total(r"^\s*Total frames rendered: (\d+)"),
        "janky_frames": total(r"^\s*Janky frames: (\d+)"),
        "janky_frames_legacy": total(r"^\s*Janky frames \(legacy\): (\d+)"),
        "missed_vsync": total(r"^\s*Number Missed Vsync: (\d+)"),
        "slow_ui_thread": total(r"^\s*Number Slow UI thread: (\d+)"),
        "frame_deadline_missed": total(r"^\s*Number Frame deadline missed: (\d+)"),
    }
    for p in (50, 90, 95, 99):
        m = re.search(rf"^\s*{p}th percentile: (\d+)ms", text, re.M)
        out[f"p{p}_ms"] = float(m.group(1)) if m else math.nan
    tf, jf = out["total_frames"], out["janky_frames"]
    out["janky_share"] = jf / tf if tf and tf == tf and tf > 0 else math.nan
    rows = []
    for block in re.findall(r"---PROFILEDATA---\n(.*?)---PROFILEDATA---", text, re.S):
        lines = [ln.strip().rstrip(",") for ln in block.strip().splitlines() if ln.strip()]
        if not lines:
            continue
        cols = lines[0].split(",")
        for ln in lines[1:]:
            vals = ln.split(",")
            if len(vals) < len(cols):
                continue
            rec = dict(zip(cols, vals))
            try:
                flags = int(rec.get("Flags", "0"))
                start, end = int(rec["IntendedVsync"]), int(rec["FrameCompleted"])
            except (KeyError, ValueError):
                continue
            interval = int(rec.get("FrameInterval", "0") or 0) or 16_666_667
            rows.append(dict(flags=flags, intended_vsync_ns=start, duration_ms=(end - start) / 1e6,
                             frame_interval_ms=interval / 1e6, janky=(end - start) > interval))
    frames = pd.DataFrame(rows, columns=["flags", "intended_vsync_ns", "duration_ms", "frame_interval_ms", "janky"])
    valid = frames[frames["flags"] == 0] if len(frames) else frames
    out["framestats_frames"] = int(len(valid))
    out["framestats_janky"] = int(valid["janky"].sum()) if len(valid) else 0
    out["frames"] = frames
    return out


def parse_thermal_value(text: str | None) -> float | None:
    """A thermal zone's ``temp``: millidegrees on most kernels (35000), degrees on a few."""
    if text is None:
        return None
    try:
        v = float(text.split()[0])
    except (ValueError, IndexError):
        return None
    return v / 1000.0 if abs(v) >= 1000 else v


def parse_ps_tree(text: str) -> dict[int, int]:
    """``ps -A -o PID,PPID`` -> {pid: ppid}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            out[int(parts[0])] = int(parts[1])
    return out


def descendants(tree: dict[int, int], roots: Sequence[int]) -> list[int]:
    """The roots and every process below them."""
    found = [r for r in roots if r in tree]
    frontier = list(found)
    while frontier:
        kids = [p for p, pp in tree.items() if pp in frontier and p not in found]
        found += kids
        frontier = kids
    return found


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")


# =========================================================================== the adb server
def _client(settings: AdbSettings):
    import adbutils

    host, port = parse_server(settings.server)
    try:
        with socket.create_connection((host, port), timeout=min(5.0, settings.timeout_s)):
            pass
    except OSError as e:
        local = host in ("127.0.0.1", "localhost", "::1")
        hint = (f"start one with `adb -P {port} start-server` (Debian package `adb`)" if local else
                f"start it on {host} with `adb -a -P {port} nodaemon server`, or check adb.server")
        raise AdbDeviceError(f"no adb server at {host}:{port} ({e.strerror or e}); {hint}") from e
    return adbutils.AdbClient(host=host, port=port, socket_timeout=settings.timeout_s)


def list_devices(settings: AdbSettings | None = None, details: bool = True) -> pd.DataFrame:
    """Phones on the adb server: serial, state, model, SoC, Android version, ABI (properties
    only for phones in state ``device``; ``unauthorized``/``offline`` ones are listed with
    what to do)."""
    settings = settings or AdbSettings.from_params()
    client = _client(settings)
    try:
        infos = client.list(extended=True)
    except Exception as e:  # noqa: BLE001
        raise AdbDeviceError(f"adb server {settings.server} did not list devices: {e}") from e
    cols = ["serial", "state", "model", "soc", "android", "sdk", "abi", "note"]
    rows = []
    for info in infos:
        row = dict(serial=info.serial, state=info.state, model=info.tags.get("model", ""), soc="", android="",
                   sdk="", abi="", note="")
        if info.state == "device" and details:
            try:
                props = parse_getprop(client.device(info.serial).shell("getprop", timeout=settings.timeout_s))
                row.update(model=props.get("ro.product.model", row["model"]), soc=soc_name(props),
                           android=props.get("ro.build.version.release", ""),
                           sdk=props.get("ro.build.version.sdk", ""), abi=props.get("ro.product.cpu.abi", ""))
            except Exception as e:  # noqa: BLE001 - one phone failing does not hide the others
                row["note"] = f"getprop failed: {e}"
        elif info.state == "unauthorized":
            row["note"] = "accept the USB debugging prompt on the phone"
        elif info.state != "device":
            row["note"] = f"state {info.state}: reconnect the phone"
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def soc_name(props: dict[str, str]) -> str:
    for key in ("ro.soc.model", "ro.board.platform", "ro.hardware.chipname", "ro.hardware"):
        if props.get(key):
            return props[key]
    return "unknown"


# =========================================================================== the device
@dataclass
class ShellResult:
    command: str
    returncode: int
    output: str


class AdbDevice(Device):
    kind = "adb"
    capabilities = frozenset({BENCHMARK_MODEL})  # no Python on a phone: only LiteRT's benchmark_model runs there

    def __init__(self, spec: str = "adb", serial: str | None = None, settings: AdbSettings | None = None):
        super().__init__(spec)
        self.settings = settings or AdbSettings.from_params()
        self.client = _client(self.settings)
        self.serial = self._resolve(serial)
        self._dev = self.client.device(self.serial)
        self._binary_remote: str | None = None
        self._flags: set[str] | None = None
        self._models: dict[str, str] = {}
        self._features: set[str] | None = None
        self._cache: dict[str, Any] = {}
        with contextlib.suppress(AdbDeviceError):
            self.cleanup_stale_competitors()

    # -- connection -----------------------------------------------------------
    def _resolve(self, serial: str | None) -> str:
        try:
            infos = self.client.list()
        except Exception as e:  # noqa: BLE001
            raise AdbDeviceError(f"adb server {self.settings.server} did not list devices: {e}") from e
        states = {i.serial: i.state for i in infos}
        ready = [s for s, st in states.items() if st == "device"]
        if serial is None:
            if len(ready) == 1:
                return ready[0]
            if not ready:
                raise AdbDeviceError(f"device 'adb': no phone attached to the adb server {self.settings.server}"
                                     + (f" (listed but not ready: {states})" if states else "")
                                     + "; connect one with USB debugging on, or `adb connect HOST:PORT`")
            raise AdbDeviceError(f"device 'adb': {len(ready)} phones attached ({', '.join(ready)}); "
                                 "name one: device=adb:SERIAL")
        if serial not in states:
            raise AdbDeviceError(f"device 'adb:{serial}': no such phone on the adb server {self.settings.server}; "
                                 f"attached: {sorted(states) or 'none'}")
        if states[serial] != "device":
            what = {"unauthorized": "accept the USB debugging prompt on the phone",
                    "offline": "the phone is offline: reconnect it"}.get(states[serial], "reconnect it")
            raise AdbDeviceError(f"device 'adb:{serial}' is {states[serial]}: {what}")
        return serial

    def _state(self) -> str:
        try:
            for info in self.client.list():
                if info.serial == self.serial:
                    return info.state
            return "gone"
        except Exception:  # noqa: BLE001
            return "adb server unreachable"

    def _failure(self, what: str, e: BaseException) -> AdbDeviceError:
        from adbutils.errors import AdbTimeout

        state = self._state()
        for _ in range(4):  # the server may need a moment to notice a pulled cable
            if state != "device":
                break
            time.sleep(0.25)
            state = self._state()
        if state != "device":
            return AdbDisconnected(f"phone {self.serial} disconnected during {what} (state: {state}; {type(e).__name__}: "
                                   f"{e}); measurements taken before this call are in the raw log, rerun to resume")
        if isinstance(e, (AdbTimeout, socket.timeout, TimeoutError)):
            return AdbTimeoutError(f"phone {self.serial}: {what} timed out ({e})")
        return AdbDeviceError(f"phone {self.serial}: {what} failed: {type(e).__name__}: {e}")

    def features(self) -> set[str]:
        if self._features is None:
            try:
                self._features = set(self._dev.get_features().split(","))
            except Exception:  # noqa: BLE001
                self._features = set()
        return self._features

    def shell(self, command: str, timeout: float | None = None, what: str | None = None,
              check: bool = False) -> ShellResult:
        """Run ``command`` (already quoted!) in the phone's shell; output is stdout and stderr
        merged. Raises ``AdbTimeoutError`` / ``AdbDisconnected`` / ``AdbDeviceError``."""
        timeout = float(timeout or self.settings.timeout_s)
        what = what or f"`{command[:80]}`"
        try:
            r = self._dev.shell2(command, timeout=timeout, rstrip=False, v2="shell_v2" in self.features())
        except Exception as e:  # noqa: BLE001
            raise self._failure(what, e) from e
        res = ShellResult(command, int(r.returncode), r.output)
        if check and res.returncode != 0:
            raise AdbDeviceError(f"phone {self.serial}: {what} exited {res.returncode}: {res.output.strip()[-300:]}")
        return res

    def push(self, local: str | Path, remote: str, mode: int = 0o644) -> None:
        try:
            size = self._dev.sync.push(str(local), remote, mode=mode)
        except Exception as e:  # noqa: BLE001
            raise self._failure(f"push {local} -> {remote}", e) from e
        got = self.stat(remote).get("size")
        if got != size:
            raise AdbDeviceError(f"phone {self.serial}: push {local} -> {remote} incomplete ({got} of {size} bytes)")

    def pull(self, remote: str, local: str | Path) -> int:
        try:
            return int(self._dev.sync.pull(remote, str(local)))
        except Exception as e:  # noqa: BLE001
            raise self._failure(f"pull {remote}", e) from e

    def stat(self, remote: str) -> dict[str, Any]:
        try:
            st = self._dev.sync.stat(remote)
        except Exception as e:  # noqa: BLE001
            raise self._failure(f"stat {remote}", e) from e
        return {"mode": st.mode, "size": st.size, "exists": st.mtime is not None}

    def read_files(self, paths: Sequence[str]) -> dict[str, str | None]:
        if not paths:
            return {}
        out: dict[str, str | None] = {}
        for i in range(0, len(paths), 120):  # keep each command line short
            chunk = list(paths[i:i + 120])
            out.update(parse_marked(self.shell(read_script(chunk), what="reading /sys and /proc").output))
        return {p: out.get(p) for p in paths}

    def ls(self, path: str) -> list[str]:
        r = self.shell(f"ls {q(path)} 2>/dev/null", what=f"ls {path}")
        return [ln.strip() for ln in r.output.splitlines() if ln.strip()] if r.returncode == 0 else []

    # -- static facts -----------------------------------------------------------
    def props(self) -> dict[str, str]:
        if "props" not in self._cache:
            self._cache["props"] = parse_getprop(self.shell("getprop", what="getprop").output)
        return self._cache["props"]

    def clusters(self) -> list[dict[str, Any]]:
        """cpufreq policies: {policy, cpus, max_khz, min_khz, governor}."""
        if "clusters" in self._cache:
            return self._cache["clusters"]
        base = "/sys/devices/system/cpu/cpufreq"
        policies = sorted((p for p in self.ls(base) if re.fullmatch(r"policy\d+", p)), key=lambda p: int(p[6:]))
        files = [f"{base}/{p}/{f}" for p in policies for f in ("related_cpus", "cpuinfo_max_freq", "cpuinfo_min_freq",
                                                                  "scaling_governor")]
        vals = self.read_files(files + ["/sys/devices/system/cpu/online", "/sys/devices/system/cpu/possible"])
        out = []
        for p in policies:
            cpus = parse_cpu_list(vals.get(f"{base}/{p}/related_cpus") or "")
            if not cpus:
                continue
            out.append(dict(policy=p, cpus=cpus, max_khz=_int(vals.get(f"{base}/{p}/cpuinfo_max_freq")),
                            min_khz=_int(vals.get(f"{base}/{p}/cpuinfo_min_freq")),
                            governor=vals.get(f"{base}/{p}/scaling_governor")))
        self._cache["online"] = parse_cpu_list(vals.get("/sys/devices/system/cpu/online")
                                               or vals.get("/sys/devices/system/cpu/possible") or "")
        self._cache["clusters"] = out
        return out

    def online_cpus(self) -> list[int]:
        self.clusters()
        online = self._cache.get("online") or sorted({c for cl in self._cache["clusters"] for c in cl["cpus"]})
        if not online:
            n = self.shell("nproc", what="nproc").output.strip()
            online = list(range(int(n))) if n.isdigit() else [0]
        return online

    def core_groups(self) -> dict[str, list[int]]:
        online = self.online_cpus()
        limits = {c: {"max_khz": str(cl["max_khz"])} for cl in self.clusters() if cl["max_khz"] for c in cl["cpus"]}
        return split_core_groups(online, limits)

    def _gpu_facts(self) -> dict[str, Any]:
        if "gpu" in self._cache:
            return self._cache["gpu"]
        props = self.props()
        info: dict[str, Any] = {"egl": props.get("ro.hardware.egl", ""), "vulkan": props.get("ro.hardware.vulkan", "")}
        sf = self.shell("dumpsys SurfaceFlinger 2>/dev/null", what="dumpsys SurfaceFlinger", timeout=self.settings.timeout_s)
        m = re.search(r"^\s*GLES: (.+)$", sf.output, re.M)
        if m:
            info["gles"] = m.group(1).strip()
        kgsl = "/sys/class/kgsl/kgsl-3d0"
        mali = "/sys/class/misc/mali0/device"
        vals = self.read_files([f"{kgsl}/gpu_model", f"{kgsl}/max_gpuclk", f"{mali}/gpuinfo"])
        devfreq = [d for d in self.ls("/sys/class/devfreq") if re.search(r"gpu|mali|kgsl|g3d|sgpu|3d0", d, re.I)]
        info.update(kgsl_model=vals.get(f"{kgsl}/gpu_model"), mali_info=vals.get(f"{mali}/gpuinfo"),
                    max_mhz=(_int(vals.get(f"{kgsl}/max_gpuclk")) or 0) / 1e6 or None, devfreq=devfreq)
        info["driver"] = "kgsl" if info["kgsl_model"] else ("mali" if info["mali_info"] else "")
        info["name"] = (info.get("gles", "").split(",")[1].strip() if info.get("gles", "").count(",") >= 1 else "") \
            or info["kgsl_model"] or info["mali_info"] or info["egl"] or "unknown GPU"
        self._cache["gpu"] = info
        return info

    def _nnapi_facts(self) -> dict[str, Any]:
        if "nnapi" in self._cache:
            return self._cache["nnapi"]
        props = self.props()
        sdk = _int(props.get("ro.build.version.sdk")) or 0
        hals: list[str] = []
        r = self.shell("service list 2>/dev/null", what="service list")
        hals += [m.group(1) for m in re.finditer(r"android\.hardware\.neuralnetworks\.IDevice/([\w.-]+)", r.output)]
        r = self.shell("lshal list -i 2>/dev/null", what="lshal")
        hals += [m.group(1) for m in re.finditer(r"android\.hardware\.neuralnetworks@[\d.]+::IDevice/([\w.-]+)", r.output)]
        hals += [f"(binary) {n}" for n in self.ls("/vendor/bin/hw") if "neuralnetworks" in n]
        hals = sorted(set(hals))
        info = {"sdk": sdk, "hal_devices": hals,
                "hints": {k: props[k] for k in ("ro.hardware", "ro.board.platform", "ro.hardware.chipname",
                                                 "ro.soc.model", "ro.soc.manufacturer") if props.get(k)}}
        self._cache["nnapi"] = info
        return info

    # -- the benchmark binary ----------------------------------------------------
    @property
    def remote_dir(self) -> str:
        return self.settings.remote_dir.rstrip("/")

    def binary_flags(self) -> set[str] | None:
        """Flags of the pushed benchmark binary (``--help``), ``None`` if no binary is configured."""
        if self._flags is None:
            if not self.settings.benchmark_binary:
                return None
            remote = self.ensure_binary()
            r = self.shell(f"{q(remote)} --help 2>&1", what="benchmark_model --help")
            from study.engines.tflite_benchmark import supported_flags

            flags = supported_flags(r.output)
            if not flags:
                raise BenchmarkBinaryError(f"{remote} --help listed no flags (exit {r.returncode}): "
                                           f"{r.output.strip()[-300:]} - is it built for {self.props().get('ro.product.cpu.abi')}?")
            if "enable_op_profiling" not in flags and "use_profiler" in flags:
                raise BenchmarkBinaryError("adb.benchmark_binary is LiteRT's CompiledModel benchmark (litert/tools); the "
                                           "study parses the interpreter benchmark_model (tflite/tools/benchmark, "
                                           "e.g. android_aarch64_benchmark_model): docs/phones.md")
            self._flags = flags
        return self._flags

    def ensure_binary(self) -> str:
        """Verify the local binary's sha256 (``BenchmarkBinaryError`` on mismatch, before
        anything runs), push it if the phone's copy differs, return its remote path."""
        if self._binary_remote is not None:
            return self._binary_remote
        local = self.settings.verified_binary()
        remote = f"{self.remote_dir}/benchmark_model"
        self.shell(f"mkdir -p {q(self.remote_dir)} {q(self.remote_dir + '/models')}", what="mkdir", check=True)
        if self.remote_sha256(remote) != self.settings.benchmark_sha256.lower():
            self.push(local, remote, mode=0o755)
            self.shell(f"chmod 755 {q(remote)}", what="chmod", check=True)
            got = self.remote_sha256(remote)
            if got is not None and got != self.settings.benchmark_sha256.lower():
                raise BenchmarkBinaryError(f"the binary on the phone has sha256 {got} after the push; expected "
                                           f"{self.settings.benchmark_sha256}")
        self._binary_remote = remote
        return remote

    def remote_sha256(self, remote: str) -> str | None:
        r = self.shell(f"sha256sum {q(remote)} 2>/dev/null", what=f"sha256sum {remote}")
        m = re.match(r"^([0-9a-f]{64})\b", r.output.strip())
        return m.group(1) if r.returncode == 0 and m else None

    def ensure_model(self, local: str | Path) -> str:
        """Push a model file (once per content), return its path on the phone."""
        local = Path(local)
        sha = file_sha256(local)
        key = f"{local}:{sha}"
        if key in self._models:
            return self._models[key]
        remote = f"{self.remote_dir}/models/{local.name}"
        self.shell(f"mkdir -p {q(self.remote_dir + '/models')}", what="mkdir", check=True)
        if self.remote_sha256(remote) != sha:
            self.push(local, remote)
        self._models[key] = remote
        return remote

    def run_benchmark(self, model_path: str | Path, processor: str, threads: int = 1,
                      cores: Sequence[int] | None = None, num_runs: int = 50, warmup: int = 1,
                      op_profiling: bool = False, cpu_fallback: str = "xnnpack",
                      extra_flags: dict[str, Any] | None = None):
        """One ``benchmark_model`` run on the phone, parsed (``BenchmarkOutput``; its
        ``command`` and ``exit_code`` attributes say what ran)."""
        from study.engines.base import EngineUnavailable
        from study.engines.tflite_benchmark import benchmark_flags, cpu_mask, parse_benchmark_output

        binary = self.ensure_binary()
        flags = benchmark_flags(processor, threads, num_runs, warmup, op_profiling=op_profiling,
                                cpu_fallback=cpu_fallback, max_secs=self.settings.run_timeout_s - 5,
                                nnapi_accelerator=self.settings.nnapi_accelerator, supported=self.binary_flags(),
                                extra=extra_flags)
        model = self.ensure_model(model_path)
        prefix = []
        if self._has("timeout"):
            prefix += ["timeout", "-k", "5", str(int(self.settings.run_timeout_s))]
        if cores:
            bad = sorted(set(cores) - set(self.online_cpus()))
            if bad:
                raise ValueError(f"cores {bad} are not online on {self.serial} (online: {self.online_cpus()})")
            prefix += ["taskset", cpu_mask(cores)]
        argv = prefix + [binary, f"--graph={model}"] + flags
        cmd = f"cd {q(self.remote_dir)} && " + " ".join(q(a) for a in argv) + " 2>&1"
        with self._performance_mode():
            r = self.shell(cmd, timeout=self.settings.run_timeout_s + 15,
                           what=f"benchmark_model {Path(model_path).name} on {processor}")
        res = parse_benchmark_output(r.output)
        res.command, res.exit_code = cmd, r.returncode  # type: ignore[attr-defined]
        if r.returncode != 0 and not res.ok:
            why = "; ".join(res.errors) or r.output.strip()[-300:]
            raise EngineUnavailable(f"benchmark_model on {processor} failed (exit {r.returncode}): {why[:500]}")
        return res

    def benchmark_engine(self):
        from study.engines.tflite_benchmark import TFLiteBenchmarkEngine

        return TFLiteBenchmarkEngine(self)

    def engine(self, name: str):
        """LiteRT's models run as benchmark_model here; any other engine is returned as is (its
        availability on this device says why it cannot run: no Python on a phone)."""
        from study.engines import get_engine
        from study.engines.tflite_benchmark import ENGINE_NAME

        return self.benchmark_engine() if name in ("litert", ENGINE_NAME) else get_engine(name)

    def open_session(self, engine, model, processor: str, threads: int, cores=None, seed: int = 0):
        """A ``benchmark_model`` session (``BenchmarkSession``): each block is one call of the tool
        pinned to ``cores`` with taskset, which returns the block's aggregate (n, mean, std)."""
        from study.engines.tflite_benchmark import BenchmarkSession

        return BenchmarkSession(self, model, processor, threads, cores)

    def _has(self, tool: str) -> bool:
        key = f"has:{tool}"
        if key not in self._cache:
            r = self.shell(f"command -v {q(tool)} 2>/dev/null", what=f"command -v {tool}")
            self._cache[key] = r.returncode == 0 and bool(r.output.strip())
        return self._cache[key]

    @contextlib.contextmanager
    def _performance_mode(self) -> Iterator[None]:
        if not self.settings.fixed_performance_mode:
            yield
            return
        on = self.shell("cmd power set-fixed-performance-mode-enabled true 2>&1", what="fixed performance mode")
        self._cache["fixed_performance_mode"] = "on" if on.returncode == 0 else f"refused: {on.output.strip()[:200]}"
        try:
            yield
        finally:
            if on.returncode == 0:
                with contextlib.suppress(AdbDeviceError):
                    self.shell("cmd power set-fixed-performance-mode-enabled false", what="fixed performance mode off")

    # -- the Device interface ------------------------------------------------------
    @functools.cache
    def processors(self) -> list[Processor]:
        props = self.props()
        flags = None
        binary_why = None
        try:
            flags = self.binary_flags()
        except AdbDeviceError as e:
            if getattr(e, "disconnected", False):
                raise
            binary_why = str(e)
        if flags is None and binary_why is None:
            binary_why = "no benchmark binary configured (adb.benchmark_binary)"

        def flag_reason(flag: str, what: str) -> str | None:
            if binary_why:
                return binary_why
            return None if flag in flags else f"this benchmark_model has no --{flag} ({what} delegate not built in)"

        groups = self.core_groups()
        cpu = Processor(
            name="cpu", available=True,
            info={"model": soc_name(props), "abi": props.get("ro.product.cpu.abi"), "clusters": self.clusters(),
                  "online_cpus": self.online_cpus(), "core_groups": groups},
            backends={"xnnpack": flag_reason("use_xnnpack", "XNNPACK"), "tflite-cpu": binary_why},
        )
        g = self._gpu_facts()
        gpu_present = bool(g.get("gles") or g.get("driver") or g.get("egl"))
        gpu = Processor(
            name="gpu", available=gpu_present,
            reason="" if gpu_present else "no GPU found (no GLES renderer in dumpsys SurfaceFlinger, no ro.hardware.egl, "
                                          "no kgsl/mali sysfs)",
            info=g, backends={"gpu-delegate": flag_reason("use_gpu", "GPU")},
        )
        nn = self._nnapi_facts()
        devices = [d for d in nn["hal_devices"] if "reference" not in d]
        if nn["sdk"] and nn["sdk"] < 27:
            npu_why = f"NNAPI needs Android 8.1 (API 27); this phone has API {nn['sdk']}"
        elif not devices:
            npu_why = ("no NNAPI accelerator HAL found (service list / lshal / /vendor/bin/hw); NNAPI would run on its "
                       "CPU reference implementation, which the study disables (--disable_nnapi_cpu=true)")
        else:
            npu_why = ""
        npu = Processor(name="npu", available=not npu_why, reason=npu_why,
                        info={**nn, "accelerator": self.settings.nnapi_accelerator or "NNAPI's choice"},
                        backends={"nnapi": npu_why or flag_reason("use_nnapi", "NNAPI")})
        return [cpu, gpu, npu]

    def read_sensors(self) -> dict[str, Any]:
        clusters = self.clusters()
        zones = self._thermal_zones()
        gpu = self._gpu_facts()
        base = "/sys/devices/system/cpu/cpufreq"
        paths = [f"{base}/{c['policy']}/{f}" for c in clusters for f in ("scaling_cur_freq", "scaling_governor")]
        paths += [f"/sys/class/thermal/{z}/temp" for z in zones]
        gpu_paths = []
        if gpu.get("driver") == "kgsl":
            gpu_paths = ["/sys/class/kgsl/kgsl-3d0/gpuclk", "/sys/class/kgsl/kgsl-3d0/gpu_busy_percentage",
                         "/sys/class/kgsl/kgsl-3d0/temp"]
        gpu_paths += [f"/sys/class/devfreq/{d}/{f}" for d in gpu.get("devfreq", []) for f in ("cur_freq", "governor")]
        vals = self.read_files(paths + gpu_paths)
        out: dict[str, Any] = {"time": now_iso()}
        gov, mhz = {}, {}
        for c in clusters:
            g = vals.get(f"{base}/{c['policy']}/scaling_governor")
            f = _int(vals.get(f"{base}/{c['policy']}/scaling_cur_freq"))
            if g:
                gov[c["policy"]] = g
            if f is not None:
                for cpu in c["cpus"]:
                    mhz[str(cpu)] = f / 1000.0
        out["cpu_governor"] = gov or unavailable("no readable scaling_governor under /sys/devices/system/cpu/cpufreq")
        out["cpu_freq"] = ({"source": "cpufreq scaling_cur_freq (per policy)", "mhz": mhz} if mhz else
                           unavailable("no readable scaling_cur_freq (cpufreq not exposed to the shell user)"))
        temps = {}
        for z, typ in zones.items():
            t = parse_thermal_value(vals.get(f"/sys/class/thermal/{z}/temp"))
            if t is not None:
                temps[f"{z}:{typ}"] = t
        out["thermal"] = temps or unavailable("no readable /sys/class/thermal zone (SELinux denies the shell user)")
        out["gpu"] = self._gpu_reading(gpu, vals)
        out["battery"] = self._battery()
        return out

    def _thermal_zones(self) -> dict[str, str]:
        if "zones" not in self._cache:
            names = sorted((z for z in self.ls("/sys/class/thermal") if z.startswith("thermal_zone")),
                           key=lambda z: int(re.sub(r"\D", "", z) or 0))
            types = self.read_files([f"/sys/class/thermal/{z}/type" for z in names])
            self._cache["zones"] = {z: (types.get(f"/sys/class/thermal/{z}/type") or "?") for z in names}
        return self._cache["zones"]

    def _gpu_reading(self, gpu: dict[str, Any], vals: dict[str, str | None]) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": gpu.get("name")}
        if gpu.get("driver") == "kgsl":
            hz = _int(vals.get("/sys/class/kgsl/kgsl-3d0/gpuclk"))
            if hz:
                entry["clocks.sm"] = hz / 1e6
            busy = vals.get("/sys/class/kgsl/kgsl-3d0/gpu_busy_percentage")
            if busy:
                entry["utilization.gpu"] = busy.replace("%", "").strip()
            t = parse_thermal_value(vals.get("/sys/class/kgsl/kgsl-3d0/temp"))
            if t is not None:
                entry["temperature.gpu"] = t
        for d in gpu.get("devfreq", []):
            hz = _int(vals.get(f"/sys/class/devfreq/{d}/cur_freq"))
            if hz:
                entry.setdefault("clocks.sm", hz / 1e6)
                entry.setdefault("devfreq", {})[d] = {"mhz": hz / 1e6,
                                                      "governor": vals.get(f"/sys/class/devfreq/{d}/governor")}
        if len(entry) == 1:
            return unavailable("no readable GPU clock (kgsl gpuclk / devfreq cur_freq) for the shell user")
        entry["source"] = gpu.get("driver") or "devfreq"
        # 'gpus' with nvidia-smi's key names so study.measure.sensor_summary fills gpu_sm_mhz / gpu_temp_c
        return {"source": entry["source"], "gpus": [entry]}

    def _battery(self) -> dict[str, Any]:
        r = self.shell("dumpsys battery 2>/dev/null", what="dumpsys battery")
        vals = dict(re.findall(r"^\s*([A-Za-z ]+): (.+)$", r.output, re.M))
        if "temperature" not in vals:
            return unavailable("dumpsys battery printed no temperature")
        out = {"temperature_c": _int(vals.get("temperature"), 0) / 10.0, "level": _int(vals.get("level")),
               "status": vals.get("status"), "powered": [k for k in ("AC powered", "USB powered", "Wireless powered")
                                                         if vals.get(k, "").strip() == "true"]}
        return out

    def fingerprint(self) -> dict[str, Any]:
        from study.devices.local import git_commit, library_versions

        props = self.props()
        procs = self.processors()
        kernel = self.shell("uname -r", what="uname").output.strip()
        phone_time = self.shell("date +%s", what="date").output.strip()
        try:
            server_version = self.client.server_version()
        except Exception:  # noqa: BLE001
            server_version = None
        return {
            "device": self.spec,
            "device_id": self.id,
            "device_slug": self.slug(),
            "kind": self.kind,
            "serial": self.serial,
            "adb_server": self.settings.server,
            "adb_server_version": server_version,
            "date": now_iso(),
            "phone_epoch_s": int(phone_time) if phone_time.isdigit() else phone_time,
            "model": props.get("ro.product.model"),
            "manufacturer": props.get("ro.product.manufacturer"),
            "soc": soc_name(props),
            "soc_manufacturer": props.get("ro.soc.manufacturer"),
            "board_platform": props.get("ro.board.platform"),
            "hardware": props.get("ro.hardware"),
            "android": props.get("ro.build.version.release"),
            "sdk": props.get("ro.build.version.sdk"),
            "build": props.get("ro.build.fingerprint"),
            "abi": props.get("ro.product.cpu.abi"),
            "abilist": props.get("ro.product.cpu.abilist"),
            "kernel": kernel,
            "os": f"Android {props.get('ro.build.version.release', '?')} (API {props.get('ro.build.version.sdk', '?')})",
            "cpu_model": soc_name(props),
            "logical_cpus": len(self.online_cpus()),
            "core_groups": self.core_groups(),
            "processors": [p.as_row() for p in procs],
            "benchmark_binary": {"path": self.settings.benchmark_binary, "sha256": self.settings.benchmark_sha256,
                                 "remote": self._binary_remote, "flags": sorted(self._flags or [])},
            "fixed_performance_mode": self._cache.get("fixed_performance_mode",
                                                      "requested" if self.settings.fixed_performance_mode else "off"),
            "libraries": library_versions(),
            "study_commit": git_commit(),
        }

    def slug(self) -> str:
        props = self.props()
        parts = [_slug(props.get("ro.product.model", "")) or "phone", _slug(soc_name(props)),
                 f"android{_slug(props.get('ro.build.version.release', ''))}"]
        return "_".join(p for p in parts if p)

    # -- co-running app ------------------------------------------------------------
    def gfxinfo_reset(self, package: str | None = None) -> None:
        pkg = self._package(package)
        self.shell(f"dumpsys gfxinfo {q(pkg)} reset", what=f"dumpsys gfxinfo {pkg} reset", check=True)

    def gfxinfo(self, package: str | None = None) -> dict[str, Any]:
        """Frame statistics of ``package`` since the last reset (``parse_gfxinfo``)."""
        pkg = self._package(package)
        r = self.shell(f"dumpsys gfxinfo {q(pkg)} framestats", what=f"dumpsys gfxinfo {pkg}", check=True)
        out = parse_gfxinfo(r.output)
        if out["processes"] == 0:
            raise AdbDeviceError(f"phone {self.serial}: no process of {pkg} is rendering (start the app first)")
        out["package"] = pkg
        return out

    @contextlib.contextmanager
    def frame_drops(self, package: str | None = None) -> Iterator[dict[str, Any]]:
        """``with phone.frame_drops(pkg) as fd: ...`` -> ``fd`` holds the gfxinfo counters of
        the block (reset before, read after)."""
        result: dict[str, Any] = {}
        self.gfxinfo_reset(package)
        yield result
        result.update(self.gfxinfo(package))

    def _package(self, package: str | None) -> str:
        pkg = package or self.settings.gfxinfo_package
        if not pkg:
            raise AdbDeviceError("no co-running app: set adb.gfxinfo_package (e.g. org.videolan.vlc)")
        return pkg

    # -- competitors -----------------------------------------------------------------
    def competitor_pool(self, **options: Any) -> "AdbCompetitorPool":
        return AdbCompetitorPool(self, **options)

    @property
    def pid_file(self) -> str:
        return f"{self.remote_dir}/competitors.pids"

    def cleanup_stale_competitors(self) -> list[int]:
        """End competitors a crashed earlier run left (pids in the phone's pid file whose
        command line still carries the competitor tag)."""
        r = self.shell(f"cat {q(self.pid_file)} 2>/dev/null", what="reading the competitor pid file")
        pids = [int(p) for p in r.output.split() if p.isdigit()]
        if not pids:
            return []
        cmdlines = self.read_files([f"/proc/{p}/cmdline" for p in pids])
        stale = [p for p in pids if COMPETITOR_TAG in (cmdlines.get(f"/proc/{p}/cmdline") or "").replace("\0", " ")]
        if stale:
            kill_tree(self, stale)
        self.shell(f"rm -f {q(self.pid_file)}", what="removing the competitor pid file")
        return stale


def _int(text: str | None, default: int | None = None) -> int | None:
    try:
        return int(str(text).strip().split()[0])
    except (ValueError, IndexError, AttributeError):
        return default


# =========================================================================== competitors on the phone
COMPETITOR_KINDS = ("cpu", "memory", "gpu")
COMPETITOR_SCRIPTS = {
    # a shell busy loop: one core's worth of integer work, no memory traffic
    "cpu": "trap '' HUP; while :; do :; done",
    # dd from /dev/zero to /dev/null in 4 MiB blocks: the kernel fills a 4 MiB buffer per block
    # (memory writes well beyond the caches), little arithmetic
    "memory": "trap '' HUP; while :; do dd if=/dev/zero of=/dev/null bs=4194304 count=64 2>/dev/null; done",
}


class CompetitorError(AdbDeviceError):
    pass


def kill_tree(phone: AdbDevice, pids: Sequence[int]) -> list[int]:
    """SIGKILL ``pids`` and every process below them; return those still alive after."""
    tree = parse_ps_tree(phone.shell("ps -A -o PID,PPID 2>/dev/null", what="ps").output)
    targets = sorted(set(descendants(tree, list(pids))) | set(pids))
    phone.shell("kill -9 " + " ".join(q(str(p)) for p in targets) + " 2>/dev/null", what="killing competitors")
    tree = parse_ps_tree(phone.shell("ps -A -o PID,PPID 2>/dev/null", what="ps").output)
    if tree:
        return [p for p in targets if p in tree]
    # no usable ps (old toolbox): ask the kernel, pid by pid
    return [p for p in targets
            if phone.shell(f"kill -0 {q(str(p))} 2>/dev/null", what="checking a competitor").returncode == 0]


class AdbCompetitorPool:
    """Competitor processes on the phone, started and always ended (the same methods as
    ``study.competitors.CompetitorPool``). Each is ``timeout MAX sh -c SCRIPT <tag>``
    (pinned with ``taskset`` when ``cores`` are given), its pid kept on the host and in
    the phone's pid file; ``stop`` kills it and its children and checks they are gone.
    Kinds: ``cpu`` (busy loop), ``memory`` (dd), ``gpu`` (benchmark_model on the GPU in a
    loop, needs the benchmark binary and ``gpu_model``)."""

    def __init__(self, phone: AdbDevice, gpu_model: str | Path | None = None):
        self.phone = phone
        self.gpu_model = gpu_model
        self._procs: dict[int, tuple[str, tuple[int, ...] | None]] = {}

    def __enter__(self) -> "AdbCompetitorPool":
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()

    def reasons(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {"cpu": None, "memory": None}
        gpu = next((p for p in self.phone.processors() if p.name == "gpu"), None)
        if gpu is None or not gpu.available:
            out["gpu"] = "no GPU on this phone"
        elif gpu.backend_reason("gpu-delegate"):
            out["gpu"] = f"a GPU competitor runs benchmark_model on the GPU: {gpu.backend_reason('gpu-delegate')}"
        elif self.gpu_model is None:
            out["gpu"] = "no model for the GPU competitor (gpu_model)"
        else:
            out["gpu"] = None
        return out

    def _script(self, kind: str) -> str:
        if kind in COMPETITOR_SCRIPTS:
            return COMPETITOR_SCRIPTS[kind]
        binary = self.phone.ensure_binary()
        model = self.phone.ensure_model(self.gpu_model)
        bench = " ".join(q(a) for a in [binary, f"--graph={model}", "--use_gpu=true", "--num_runs=100000",
                                        "--warmup_runs=0", "--min_secs=0", "--warmup_min_secs=0"])
        return f"trap '' HUP; while :; do {bench} >/dev/null 2>&1; done"

    def start(self, kind: str, n: int = 1, cores: Sequence[int] | None = None) -> list[int]:
        from study.engines.tflite_benchmark import cpu_mask

        if kind not in COMPETITOR_KINDS:
            raise ValueError(f"unknown competitor kind {kind!r}; known: {list(COMPETITOR_KINDS)}")
        if n < 0:
            raise ValueError("n must be >= 0")
        if n == 0:
            return []
        why = self.reasons().get(kind)
        if why:
            raise CompetitorError(f"{kind} competitors unavailable on {self.phone.serial}: {why}")
        script = self._script(kind)
        argv = []
        if cores:
            argv += ["taskset", cpu_mask(cores)]
        argv += ["timeout", str(int(self.phone.settings.competitor_max_s)), "sh", "-c", script, COMPETITOR_TAG]
        line = " ".join(q(a) for a in argv) + " </dev/null >/dev/null 2>&1 & echo $!"
        started: list[int] = []
        try:
            self.phone.shell(f"mkdir -p {q(self.phone.remote_dir)}", what="mkdir", check=True)
            for _ in range(n):
                r = self.phone.shell(line, what=f"starting a {kind} competitor")
                pid = _int(r.output.strip().splitlines()[-1] if r.output.strip() else "")
                if not pid:
                    raise CompetitorError(f"{kind} competitor did not start: {r.output.strip()[-200:]}")
                started.append(pid)
                self._procs[pid] = (kind, tuple(cores) if cores else None)
                self.phone.shell(f"echo {q(str(pid))} >> {q(self.phone.pid_file)}", what="recording a competitor pid")
        except BaseException:
            with contextlib.suppress(Exception):
                self.stop(started)
            raise
        return started

    def stop(self, pids: Sequence[int] | None = None) -> None:
        targets = list(self._procs) if pids is None else [p for p in pids if p in self._procs]
        if not targets:
            return
        survivors = kill_tree(self.phone, targets)
        for p in targets:
            self._procs.pop(p, None)
        keep = " ".join(q(str(p)) for p in self._procs) or "''"
        with contextlib.suppress(AdbDeviceError):
            self.phone.shell(f"echo {keep} > {q(self.phone.pid_file)}", what="updating the competitor pid file")
        if survivors:
            raise CompetitorError(f"competitors {survivors} on {self.phone.serial} survived SIGKILL")

    def stop_all(self) -> None:
        self.stop(None)

    def pids(self, kind: str | None = None) -> list[int]:
        alive = set(parse_ps_tree(self.phone.shell("ps -A -o PID,PPID 2>/dev/null", what="ps").output))
        return [p for p, (k, _) in self._procs.items() if (kind is None or k == kind) and p in alive]

    def running(self) -> dict[str, int]:
        out = {k: 0 for k in COMPETITOR_KINDS}
        for p in self.pids():
            out[self._procs[p][0]] += 1
        return out

    def describe(self) -> list[dict[str, Any]]:
        alive = set(self.pids())
        return [{"pid": p, "kind": k, "alive": p in alive, "cores": list(c) if c else None}
                for p, (k, c) in self._procs.items()]


@contextlib.contextmanager
def competitors(phone: AdbDevice, kind: str, n: int, cores: Sequence[int] | None = None,
                **options: Any) -> Iterator[AdbCompetitorPool]:
    with AdbCompetitorPool(phone, **options) as pool:
        if n:
            pool.start(kind, n, cores)
        yield pool


__all__ = ["ADB_PARAMS", "AdbCompetitorPool", "AdbDevice", "AdbDeviceError", "AdbDisconnected", "AdbSettings",
           "AdbTimeoutError", "BenchmarkBinaryError", "CompetitorError", "check_adb_params", "competitors",
           "list_devices", "parse_gfxinfo", "parse_getprop", "parse_server"]
