"""Shared fixtures and helpers: a tiny model exported to .tflite and .onnx, a fake clock, the
``needs_models`` marker (``has_models``), ``has_cuda``, a finding's context for a tiny
end-to-end run (``tiny_context``), the liveness of child processes
(``alive``, ``cmdline``, ``wait_gone``), commands run with the virtual environment's tools
first on PATH (``run_in_venv``), and a copy of the repository as a fresh git repository
(``copy_repo``). Test modules import the helpers (``from conftest import copy_repo, run_in_venv``)."""
from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
VENV_BIN = Path(sys.executable).parent


def has_models() -> bool:
    """The models stage's output is there (built by ``pytest_configure`` on a fresh clone)."""
    from study import paths

    return paths.MODEL_MANIFEST.exists()


#: a test that runs on the real model files (skipped where ``has_models()`` is False)
needs_models = pytest.mark.needs_models


@functools.lru_cache(maxsize=None)
def has_cuda() -> bool:
    """torch imports and sees a CUDA GPU."""
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that is not us counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_gone(pids, timeout: float = 6.0) -> list[int]:
    """Pids still alive after ``timeout``; those that are competitor processes are killed (by
    pid) so that a failing test leaves nothing behind."""
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [p for p in left if alive(p)]
        time.sleep(0.05)
    for pid in left:
        if "study.competitors" in cmdline(pid):
            os.kill(pid, signal.SIGKILL)
    return left


def tiny_context(stage: str, root: Path, section: dict, harness: dict | None = None):
    """A context for a small end-to-end run of ``stage``: the repository's common params (the
    harness replaced by ``harness`` where given) and ``section`` checked against the stage
    module's ``PARAMS``, its data and figures under ``root``."""
    import importlib

    from study import stages
    from study.common import context
    from study.config import check_section, load_params, validate_common

    common = validate_common(load_params())
    if harness is not None:
        common["harness"] = harness
    own = check_section(stage, section, importlib.import_module(stages.module_of(stage)).PARAMS)
    ctx = context(stage, {**common, **own})
    ctx.data_root, ctx.figures_root = root / "data", root / "figures"
    return ctx


def run_in_venv(cmd, cwd, timeout: float = 300, check: bool = False, **env) -> subprocess.CompletedProcess:
    """``cmd`` in ``cwd`` with this virtual environment's ``bin`` (dvc, python) first on PATH;
    ``check``: a failure raises with the tail of its output."""
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **env)
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-4000:]}\n"
                             f"{r.stderr[-4000:]}")
    return r


def copy_repo(dst: Path, skip: tuple[str, ...] = ()) -> Path:
    """The tracked and not-ignored files (but those under ``skip`` and bytecode) copied to
    ``dst`` without ``dvc.lock``, committed as a fresh git repository."""
    from study import paths

    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=paths.ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for f in filter(None, files):
        src = paths.ROOT / f
        if src.is_file() and not f.startswith(skip) and "__pycache__" not in f:
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    (dst / "dvc.lock").unlink(missing_ok=True)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "copy"]):
        subprocess.run(cmd, cwd=dst, check=True, capture_output=True)
    return dst


def pytest_configure(config):
    """The findings' end-to-end tests run on the real model files: on a fresh clone (CI), build
    them once with the models stage's own command before the tests are collected, so that no
    such test is skipped for want of them. HETERO_NO_MODELS=1 skips the build."""
    from study import paths

    if paths.MODEL_MANIFEST.exists() or os.environ.get("HETERO_NO_MODELS"):
        return
    print("conftest: building the models (python -m study models), about 2 minutes", file=sys.stderr)
    for cmd in (["validate"], ["models"]):
        subprocess.run([sys.executable, "-m", "study", *cmd], check=True, cwd=paths.ROOT,
                       stdout=subprocess.DEVNULL)


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_models") and not has_models():
        pytest.skip("needs the models stage's output (data/models)")


class TinyNet:
    """conv-bn-relu, a depthwise conv, a pad, a mean and a linear layer: a few operator kinds."""

    @staticmethod
    def module():
        import torch
        from torch import nn

        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
        ).eval()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A ModelSpec with .tflite and .onnx files of TinyNet (absolute paths)."""
    import litert_torch
    import torch

    from study.models import ModelSpec

    d = tmp_path_factory.mktemp("tiny")
    m = TinyNet.module()
    x = torch.rand(1, 3, 16, 16)
    litert_torch.convert(m, (x,)).export(str(d / "tiny.tflite"))
    torch.onnx.export(m, (x,), str(d / "tiny.onnx"), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["output"])
    return ModelSpec(name="tiny", source="user", task="classification",
                     files={"tflite": str(d / "tiny.tflite"), "onnx": str(d / "tiny.onnx")})


class FakeClock:
    """perf_counter_ns stand-in: each call advances by the next scripted step (ns)."""

    def __init__(self, latencies_ms):
        self.latencies = list(latencies_ms)
        self.t = 0
        self.calls = 0
        self.i = 0

    def __call__(self):
        # the harness reads the clock twice per sample: before and after run()
        self.calls += 1
        if self.calls % 2 == 0:
            self.t += int(self.latencies[self.i % len(self.latencies)] * 1e6)
            self.i += 1
        return self.t


@pytest.fixture
def fake_clock():
    return FakeClock
