"""The ``local`` device: this machine's own processors.

CPU: always (model, cores, core groups, frequencies where readable).
GPU: through PyTorch CUDA (``cuda`` backend) and through LiteRT's GPU accelerator over
Vulkan/WebGPU (``vulkan`` backend); ONNX Runtime's CUDA provider where installed.
NPU: LiteRT's NPU accelerator needs a vendor dispatch library; on a host there is none.
Each absent processor or backend carries the reason it is absent.
"""
from __future__ import annotations

import functools
import glob
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from study.devices.base import PYTHON, Device, Processor, now_iso, unavailable
from study.paths import ASSETS

PROBE_MODEL = ASSETS / "probe.tflite"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def allowed_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.M)
        if m:
            return m.group(1).strip()
    return platform.processor() or "unknown CPU"


def cpufreq_limits(cpus: list[int] | None = None) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for cpu in cpus if cpus is not None else allowed_cpus():
        base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq"
        if not os.path.isdir(base):
            continue
        out[cpu] = {
            "min_khz": _read(f"{base}/cpuinfo_min_freq"),
            "max_khz": _read(f"{base}/cpuinfo_max_freq"),
            "governor": _read(f"{base}/scaling_governor"),
        }
    return out


def split_core_groups(cpus: list[int], limits: dict[int, dict[str, Any]] | None = None) -> dict[str, list[int]]:
    """Disjoint core groups: clusters by maximum frequency where they differ
    (big.LITTLE), else the allowed CPUs split into two halves. Always with ``all``."""
    cpus = sorted(cpus)
    groups: dict[str, list[int]] = {}
    limits = limits or {}
    by_freq: dict[str, list[int]] = {}
    for c in cpus:
        f = (limits.get(c) or {}).get("max_khz")
        if f:
            by_freq.setdefault(f, []).append(c)
    if len(by_freq) > 1:
        # clusters ordered from the fastest: big, mid..., little
        ordered = sorted(by_freq.items(), key=lambda kv: -int(kv[0]))
        names = ["big"] + [f"mid{i}" for i in range(1, len(ordered) - 1)] + ["little"]
        for name, (_, members) in zip(names, ordered):
            groups[name] = members
    elif len(cpus) >= 2:
        half = len(cpus) // 2
        groups["g0"] = cpus[:half]
        groups["g1"] = cpus[half:]
    groups["all"] = cpus
    return groups


def cpu_frequencies(cpus: list[int] | None = None) -> dict[str, Any]:
    """Current frequency per CPU: cpufreq where exposed, else /proc/cpuinfo's
    'cpu MHz' (on VMs a nominal value), else unavailable."""
    cpus = cpus if cpus is not None else allowed_cpus()
    cur = {}
    for cpu in cpus:
        v = _read(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq")
        if v is not None:
            cur[str(cpu)] = int(v) / 1000.0
    if cur:
        return {"source": "cpufreq", "mhz": cur}
    text = _read("/proc/cpuinfo") or ""
    mhz = re.findall(r"^cpu MHz\s*:\s*([0-9.]+)", text, re.M)
    procs = re.findall(r"^processor\s*:\s*(\d+)", text, re.M)
    if mhz and len(mhz) == len(procs):
        allowed = set(cpus)
        vals = {p: float(m) for p, m in zip(procs, mhz) if int(p) in allowed}
        return {"source": "/proc/cpuinfo (may be nominal on VMs)", "mhz": vals}
    return unavailable("no cpufreq in /sys and no 'cpu MHz' in /proc/cpuinfo")


def thermal_zones() -> dict[str, Any]:
    zones = {}
    for z in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        t = _read(f"{z}/temp")
        if t is None:
            continue
        try:
            zones[f"{os.path.basename(z)}:{_read(f'{z}/type') or '?'}"] = int(t) / 1000.0
        except ValueError:
            continue
    return zones or unavailable("no readable /sys/class/thermal zones")


NVSMI_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.mem", "clocks.max.sm", "temperature.gpu",
                "power.draw", "utilization.gpu", "pstate", "clocks_throttle_reasons.active")


def nvidia_smi() -> dict[str, Any]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return unavailable("nvidia-smi not found (no NVIDIA driver on this host)")
    try:
        r = subprocess.run([exe, f"--query-gpu={','.join(NVSMI_FIELDS)}", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return unavailable(f"nvidia-smi failed: {e}")
    if r.returncode != 0:
        return unavailable(f"nvidia-smi exit {r.returncode}: {r.stderr.strip()[:200]}")
    gpus = []
    for line in r.stdout.strip().splitlines():
        vals = [v.strip() for v in line.split(",")]
        gpus.append(dict(zip(NVSMI_FIELDS, vals)))
    return {"gpus": gpus}


@functools.cache
def torch_cuda_status() -> tuple[str | None, dict[str, Any]]:
    """(None, info) if PyTorch sees a CUDA GPU, else (reason, {})."""
    try:
        import torch
    except Exception as e:  # pragma: no cover - torch is a dependency
        return f"PyTorch not importable: {e}", {}
    if not torch.cuda.is_available():
        built = torch.version.cuda
        why = ("PyTorch is a CPU-only build" if not built
               else f"PyTorch built for CUDA {built} but torch.cuda.is_available() is False (no GPU or driver)")
        return why, {}
    i = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(i)
    return None, {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "multiprocessors": props.multi_processor_count,
        "cuda_runtime": torch.version.cuda,
    }


_LITERT_GPU_PROBE = r"""
import sys
from ai_edge_litert.compiled_model import CompiledModel
from ai_edge_litert.hardware_accelerator import HardwareAccelerator as HA
m = CompiledModel.from_file(sys.argv[1], hardware_accel=HA.GPU)
print("LITERT_GPU_OK", m.is_fully_accelerated())
"""


@functools.cache
def litert_gpu_status() -> tuple[str | None, dict[str, Any]]:
    """Probe LiteRT's GPU accelerator in a child process (a failed WebGPU start logs
    its reason to stderr and must not take the study down)."""
    try:
        r = subprocess.run([sys.executable, "-c", _LITERT_GPU_PROBE, str(PROBE_MODEL)],
                           capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "LiteRT GPU probe timed out after 120 s", {}
    if "LITERT_GPU_OK" in r.stdout:
        adapter = re.search(r"Selected adapter: ([^\n]+)", r.stderr)
        return None, {"adapter": adapter.group(1).strip() if adapter else "unknown"}
    # keep the GPU delegate's own complaints, not the unrelated NPU/compiler-plugin noise
    lines = [re.sub(r"^.*?\] ", "", ln).strip() for ln in r.stderr.splitlines()
             if re.search(r"webgpu|gpu|adapter|vulkan", ln, re.I) and re.search(r"ERROR|Failed|No adapters", ln)]
    why = "; ".join(dict.fromkeys(lines))[:300]
    return f"LiteRT GPU accelerator unavailable: {why or 'probe failed (exit %d)' % r.returncode}", {}


@functools.cache
def ort_cuda_status() -> str | None:
    try:
        import onnxruntime as ort
    except Exception as e:  # pragma: no cover
        return f"onnxruntime not importable: {e}"
    if "CUDAExecutionProvider" in ort.get_available_providers():
        return None
    return f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (CPU build)"


def library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("torch", "ai-edge-litert", "litert-torch", "ai-edge-quantizer", "onnxruntime", "onnx", "numpy",
                 "pandas", "scipy", "statsmodels", "mediapipe", "opencv-contrib-python", "opencv-python-headless",
                 "papermill", "dvc", "adbutils"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    """The study's commit: HETERO_STUDY_COMMIT where a snapshot without .git runs (a lent
    machine gets ``git archive`` of a commit), else ``git rev-parse HEAD``."""
    from study.paths import ROOT

    if os.environ.get("HETERO_STUDY_COMMIT"):
        return os.environ["HETERO_STUDY_COMMIT"]
    try:
        r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _slug(text: str) -> str:
    text = re.sub(r"\((R|TM)\)|processor|cpu|@.*$", "", text, flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class LocalDevice(Device):
    kind = "local"
    capabilities = frozenset({PYTHON})

    def engine(self, name: str):
        """The study's engine ``name`` (LiteRT, ONNX Runtime, PyTorch), in this process."""
        from study.engines import get_engine

        return get_engine(name)

    def open_session(self, engine, model, processor: str, threads: int, cores=None, seed: int = 0):
        """An engine session whose ``run()`` the harness times, in this process (the harness pins
        it to ``cores``)."""
        engine.check(self, processor, model)
        return engine.open(model, processor, threads, seed=seed)

    def __init__(self, spec: str = "local"):
        super().__init__(spec)
        # read once, before any pinning: the groups must not shrink when the harness pins
        # this process to one of them
        self._cpus = allowed_cpus()

    def core_groups(self) -> dict[str, list[int]]:
        return split_core_groups(self._cpus, cpufreq_limits(self._cpus))

    @functools.cache
    def processors(self) -> list[Processor]:
        cpus = self._cpus
        cpu = Processor(
            name="cpu", available=True,
            info={"model": cpu_model(), "logical_cpus": len(cpus), "allowed_cpus": cpus,
                  "core_groups": self.core_groups(), "cpufreq": cpufreq_limits(self._cpus) or "not exposed",
                  "machine": platform.machine()},
            backends={"xnnpack": None, "torch-cpu": None, "ort-cpu": None},
        )
        cuda_why, cuda_info = torch_cuda_status()
        vk_why, vk_info = litert_gpu_status()
        ort_why = ort_cuda_status()
        gpu_available = cuda_why is None or vk_why is None
        gpu = Processor(
            name="gpu", available=gpu_available,
            reason="" if gpu_available else f"no GPU usable: {cuda_why}; {vk_why}",
            info={"cuda": cuda_info, "vulkan": vk_info},
            backends={"cuda": cuda_why, "vulkan": vk_why, "ort-cuda": ort_why},
        )
        npu = Processor(
            name="npu", available=False,
            reason="no NPU on a host: LiteRT's NPU accelerator needs a vendor dispatch library (phones via adb)",
            backends={"npu": "no vendor dispatch library"},
        )
        return [cpu, gpu, npu]

    def read_sensors(self) -> dict[str, Any]:
        cpus = self._cpus
        governors = {str(c): _read(f"/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor") for c in cpus}
        governors = {k: v for k, v in governors.items() if v}
        try:
            load = os.getloadavg()
        except OSError:
            load = None
        return {
            "time": now_iso(),
            "cpu_governor": governors or unavailable("no cpufreq governor in /sys (VM or container)"),
            "cpu_freq": cpu_frequencies(self._cpus),
            "thermal": thermal_zones(),
            "gpu": nvidia_smi(),
            "loadavg": load,
        }

    def fingerprint(self) -> dict[str, Any]:
        procs = self.processors()
        smi = nvidia_smi()
        return {
            "device": self.spec,
            "device_id": self.id,
            "device_slug": self.slug(),
            "kind": self.kind,
            "hostname": socket.gethostname(),
            "date": now_iso(),
            "os": platform.platform(),
            "kernel": platform.release(),
            "python": sys.version.split()[0],
            "cpu_model": cpu_model(),
            "logical_cpus": len(self._cpus),
            "core_groups": self.core_groups(),
            "processors": [p.as_row() for p in procs],
            "nvidia_smi": smi,
            "libraries": library_versions(),
            "study_commit": git_commit(),
        }

    def slug(self) -> str:
        parts = [_slug(cpu_model()) or "cpu", f"{len(self._cpus)}c"]
        _, cuda = torch_cuda_status()
        if cuda.get("name"):
            parts.append(_slug(cuda["name"]))
        return "_".join(parts)

