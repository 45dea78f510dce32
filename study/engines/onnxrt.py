"""ONNX Runtime: CPU execution provider everywhere, CUDA where its provider exists.

Placement and per-operator time both come from ONNX Runtime's own profiler
(``enable_profiling``): every node event names the execution provider that ran it
and its duration. With the CUDA provider, nodes left on the CPU provider are the
fallbacks.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from study.engines.base import OP_PROFILE_COLUMNS, PLACEMENT_COLUMNS, Engine, Session, seeded_inputs

PROVIDERS = {"cpu": ["CPUExecutionProvider"], "gpu": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(bool)": np.bool_}


def _session(path: str, processor: str, threads: int, profile_prefix: str | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(path, so, providers=PROVIDERS[processor])


@dataclass
class OrtSession(Session):
    sess: Any = None
    feeds: dict = field(default_factory=dict)

    def run(self) -> None:
        self.sess.run(None, self.feeds)  # returns host numpy arrays: synchronous

    def outputs(self) -> list[np.ndarray]:
        return list(self.sess.run(None, self.feeds))

    def set_inputs(self, arrays: list[np.ndarray]) -> None:
        self.feeds = {i.name: a for i, a in zip(self.sess.get_inputs(), arrays)}


def _input_sig(sess) -> list[tuple[tuple[int, ...], Any]]:
    return [(tuple(d if isinstance(d, int) else 1 for d in i.shape), ORT_DTYPES.get(i.type, np.float32))
            for i in sess.get_inputs()]


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"
    processor_backends = {"cpu": "ort-cpu", "gpu": "ort-cuda"}
    model_form, model_form_text = "onnx", ".onnx file (trained .tflite-only model)"
    package = "onnxruntime"

    def open(self, model, processor: str, threads: int = 1, **options) -> OrtSession:
        self.require_model(model)
        sess = _session(str(model.path("onnx")), processor, threads)
        s = OrtSession(engine=self.name, processor=processor, model=model.name, threads=threads, sess=sess,
                       info={"providers": sess.get_providers()})
        s.set_inputs(seeded_inputs(_input_sig(sess), options.get("seed", 0)))
        return s

    def _profiled_events(self, model, processor: str, threads: int, runs: int) -> list[dict[str, Any]]:
        with tempfile.TemporaryDirectory() as d:
            sess = _session(str(model.path("onnx")), processor, threads, profile_prefix=os.path.join(d, "ort"))
            feeds = {i.name: a for i, a in zip(sess.get_inputs(), seeded_inputs(_input_sig(sess)))}
            for _ in range(runs):
                sess.run(None, feeds)
            prof = sess.end_profiling()
            with open(prof) as f:
                events = json.load(f)
        return [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]

    def placement(self, model, processor: str, threads: int = 1) -> pd.DataFrame:
        events = self._profiled_events(model, processor, threads, runs=1)
        rows, seen = [], {}
        for e in events:
            node = e["name"][: -len("_kernel_time")]
            if node in seen:
                continue
            provider = e.get("args", {}).get("provider", "?")
            on_target = provider == PROVIDERS[processor][0]
            seen[node] = len(rows)
            rows.append(dict(model=model.name, engine=self.name, processor=processor, op_index=len(rows),
                             op_type=e.get("args", {}).get("op_name", "?"), op_name=node, placed_on=provider,
                             delegated=on_target, partition=-1,
                             method="ONNX Runtime profiler (node provider)",
                             reason="" if on_target else f"assigned to {provider}"))
        return pd.DataFrame(rows, columns=PLACEMENT_COLUMNS)

    def op_profile(self, model, processor: str, threads: int = 1, runs: int = 10) -> pd.DataFrame:
        events = self._profiled_events(model, processor, threads, runs=runs + 1)
        by_node: dict[str, list[float]] = {}
        meta: dict[str, tuple[str, str]] = {}
        order: list[str] = []
        for e in events:
            node = e["name"][: -len("_kernel_time")]
            if node not in by_node:
                by_node[node], order = [], order + [node]
                meta[node] = (e.get("args", {}).get("op_name", "?"), e.get("args", {}).get("provider", "?"))
            by_node[node].append(e["dur"] / 1000.0)
        rows = []
        for i, node in enumerate(order):
            ts = by_node[node][1:] or by_node[node]  # first run is warm-up
            rows.append(dict(model=model.name, engine=self.name, processor=processor, op_index=i,
                             op_type=meta[node][0], op_name=node, placed_on=meta[node][1],
                             time_ms=float(np.median(ts)), n=len(ts), method="ONNX Runtime profiler"))
        return pd.DataFrame(rows, columns=OP_PROFILE_COLUMNS)
