"""Shared fixtures: a tiny model exported to .tflite and .onnx, a fake clock."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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
