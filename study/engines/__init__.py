"""Engines: LiteRT, ONNX Runtime, PyTorch, behind one interface (``study.engines.base``)."""
from __future__ import annotations

from study.engines.base import (OP_PROFILE_COLUMNS, PLACEMENT_COLUMNS, Engine, EngineUnavailable, Session,
                                seeded_inputs)

ENGINE_NAMES = ("litert", "onnxruntime", "torch")
PHONE_ENGINES = ("litert-benchmark",)  # benchmark_model on an adb phone (study.engines.tflite_benchmark)


def get_engine(name: str) -> Engine:
    if name == "litert":
        from study.engines.litert import LiteRTEngine

        return LiteRTEngine()
    if name == "onnxruntime":
        from study.engines.onnxrt import OnnxRuntimeEngine

        return OnnxRuntimeEngine()
    if name == "torch":
        from study.engines.torch_engine import TorchEngine

        return TorchEngine()
    if name == "litert-benchmark":
        from study.engines.tflite_benchmark import TFLiteBenchmarkEngine

        return TFLiteBenchmarkEngine()
    raise ValueError(f"unknown engine {name!r}; known: {list(ENGINE_NAMES + PHONE_ENGINES)}")


__all__ = ["ENGINE_NAMES", "PHONE_ENGINES", "Engine", "EngineUnavailable", "OP_PROFILE_COLUMNS", "PLACEMENT_COLUMNS", "Session",
           "get_engine", "seeded_inputs"]
