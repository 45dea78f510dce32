"""PyTorch eager: CPU, and CUDA where PyTorch sees a GPU.

Only models with a PyTorch definition (the zoo) run here. ``run()`` ends with
``torch.cuda.synchronize()`` on the GPU. Per-operator time and placement come from
``torch.profiler`` (aten operators, self time on the CPU or on the device).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from study.engines.base import OP_PROFILE_COLUMNS, PLACEMENT_COLUMNS, Engine, Session


def torch_device(processor: str) -> str:
    return {"cpu": "cpu", "gpu": "cuda"}[processor]


@dataclass
class TorchSession(Session):
    module: Any = None
    x: Any = None
    device: str = "cpu"

    def run(self) -> None:
        import torch

        # the intra-op pool is process-wide: another session may have changed it since open()
        if self.device == "cpu" and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            self.module(self.x)
        if self.device == "cuda":
            torch.cuda.synchronize()

    def outputs(self) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            y = self.module(self.x)
        ys = y if isinstance(y, (tuple, list)) else [y]
        return [t.detach().float().cpu().numpy() for t in ys]

    def set_inputs(self, arrays: list[np.ndarray]) -> None:
        import torch

        self.x = torch.from_numpy(np.ascontiguousarray(arrays[0])).to(self.device)


class TorchEngine(Engine):
    name = "torch"
    processor_backends = {"cpu": "torch-cpu", "gpu": "cuda"}
    model_form, model_form_text = "torch", "PyTorch definition (.tflite-only)"
    package = "torch"

    def load_module(self, model, processor: str):
        from study.models.zoo import build

        self.require_model(model)
        return build(model.torch_zoo, model.seed).to(torch_device(processor))

    def open(self, model, processor: str, threads: int = 1, **options) -> TorchSession:
        import torch

        from study.models.zoo import example_input

        torch.set_num_threads(threads)
        dev = torch_device(processor)
        module = self.load_module(model, processor)
        s = TorchSession(engine=self.name, processor=processor, model=model.name, threads=threads, module=module,
                         device=dev, info={"torch": torch.__version__, "device": dev})
        s.set_inputs([example_input(model.torch_zoo, options.get("seed", model.seed)).numpy()])
        return s

    def _profile_runs(self, model, processor: str, threads: int, runs: int) -> list[list[dict[str, Any]]]:
        """Top-level aten operator calls of each profiled inference, in execution order."""
        from torch.profiler import ProfilerActivity, profile

        s = self.open(model, processor, threads)
        s.run()
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if processor == "gpu" else [])
        out = []
        for _ in range(runs):
            with profile(activities=acts) as prof:
                s.run()
            calls = []
            for ev in prof.events():
                if not ev.name.startswith("aten::"):
                    continue
                parent = ev.cpu_parent
                while parent is not None and not parent.name.startswith("aten::"):
                    parent = parent.cpu_parent
                if parent is not None:
                    continue  # nested inside another aten op
                dev_us = getattr(ev, "device_time_total", 0) or 0
                calls.append(dict(op_type=ev.name, cpu_us=ev.cpu_time_total, dev_us=dev_us))
            out.append(calls)
        return out

    def placement(self, model, processor: str, threads: int = 1) -> pd.DataFrame:
        (calls,) = self._profile_runs(model, processor, threads, runs=1)
        rows = []
        for i, c in enumerate(calls):
            on = "cuda" if processor == "gpu" and c["dev_us"] > 0 else "cpu"
            ok = processor == "cpu" or on == "cuda"
            rows.append(dict(model=model.name, engine=self.name, processor=processor, op_index=i,
                             op_type=c["op_type"], op_name=f"{i}:{c['op_type']}", placed_on=on, delegated=ok,
                             partition=-1, method="torch.profiler: top-level aten calls, device kernels seen",
                             reason="" if ok else "no device kernel: ran on the host"))
        return pd.DataFrame(rows, columns=PLACEMENT_COLUMNS)

    def op_profile(self, model, processor: str, threads: int = 1, runs: int = 10) -> pd.DataFrame:
        per_run = self._profile_runs(model, processor, threads, runs)
        n_ops = min(len(r) for r in per_run)
        rows = []
        for i in range(n_ops):
            c0 = per_run[0][i]
            gpu = processor == "gpu" and c0["dev_us"] > 0
            ts = [(r[i]["dev_us"] if gpu else r[i]["cpu_us"]) / 1000.0 for r in per_run]
            rows.append(dict(model=model.name, engine=self.name, processor=processor, op_index=i,
                             op_type=c0["op_type"], op_name=f"{i}:{c0['op_type']}",
                             placed_on="cuda" if gpu else "cpu", time_ms=float(np.median(ts)), n=len(ts),
                             method="torch.profiler: " + ("device kernel time" if gpu else "CPU time incl. children")))
        return pd.DataFrame(rows, columns=OP_PROFILE_COLUMNS)
