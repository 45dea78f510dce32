"""Serving requests: candidates opened on the device, placement with fallbacks, the runtime.

A **candidate** is one way to run a model here: ``engine/processor/core_group`` (finding 4's
strings, e.g. ``litert/cpu/g0``), optionally with a compressed variant (``#int8_dynamic``,
``#fp16``: LiteRT files quantized by ``study.compress``) or a co-execution split
(``coexec/cpu+cpu/g0+g1@0.25``: ``study.coexec``'s operator-level split at that share on the
second group; ``coexec/cpu+gpu/all@r`` with a CUDA GPU). The thread count of a CPU candidate is
the size of its core group (``StageContext.threads_for``).

**Placement, fallback-aware** (``place``): a candidate the device cannot run is not an error.
Its reason is recorded and the runtime places the model on the closest candidate that runs:
the same engine on the CPU's ``all`` group for an absent accelerator (operators an
accelerator does not support fall back to the CPU inside LiteRT's delegate; the share of
such operators is finding 1's table), another engine on the same cores for an absent engine.
A candidate that fails while serving leaves the plan and the request is served again on the
planner's next choice.

``AdaptiveRuntime.serve()`` serves one request: the planner's decision, pinning to the
candidate's cores (and PyTorch's thread count), the inference (outputs read back), the
observation. It returns the request's latency and, apart, the runtime's own decision time
(choose + observe), so both can be reported and added.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from study.runtime.planner import Decision, Planner

Clock = Callable[[], int]


def parse(candidate: str) -> dict[str, Any]:
    """``engine/processor/group[#variant]`` or ``coexec/pair/groups@r`` -> its parts."""
    text = str(candidate)
    variant = ""
    if "#" in text:
        text, variant = text.split("#", 1)
    ratio = None
    if "@" in text:
        text, r = text.rsplit("@", 1)
        ratio = float(r)
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"candidate {candidate!r}: split share {ratio} outside [0, 1]")
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"candidate {candidate!r}: expected engine/processor/core_group[#variant] or "
                         f"coexec/pair/groups@r")
    engine, processor, group = parts
    if (engine == "coexec") != (ratio is not None):
        raise ValueError(f"candidate {candidate!r}: a split share (@r) goes with coexec candidates only")
    return dict(candidate=candidate, engine=engine, processor=processor, core_group=group, variant=variant,
                ratio=ratio)


@dataclass
class Candidate:
    """An opened candidate: its session and how to prepare a request (outside no timing)."""

    name: str
    session: Any                       # .run() synchronous (outputs read back)
    cores: tuple[int, ...] | None
    prepare: Callable[[], None] | None = None
    columns: dict[str, Any] = field(default_factory=dict)

    def run(self) -> None:
        if self.prepare is not None:
            self.prepare()
        self.session.run()

    def close(self) -> None:
        getattr(self.session, "close", lambda: None)()


def place(candidate: str, why: str, available: Sequence[str]) -> tuple[str | None, str]:
    """The candidate that serves in place of ``candidate`` (absent here because ``why``), and the
    placement in words; ``None`` where nothing that runs is close."""
    p = parse(candidate)
    same_engine_cpu = [a for a in available if parse(a)["engine"] == p["engine"] and parse(a)["processor"] == "cpu"]
    if p["processor"] != "cpu" and same_engine_cpu:
        alt = next((a for a in same_engine_cpu if parse(a)["core_group"] == "all"), same_engine_cpu[0])
        return alt, f"{candidate} absent ({why}): its requests are placed on {alt} (CPU fallback)"
    same_cores = [a for a in available if parse(a)["core_group"] == p["core_group"]
                  and parse(a)["processor"] == p["processor"]]
    if same_cores:
        return same_cores[0], f"{candidate} absent ({why}): {same_cores[0]} runs on the same cores instead"
    return None, f"{candidate} absent ({why}): no candidate that runs here is close; left out"


@dataclass
class Served:
    request: int
    candidate: str
    why: str
    latency_ms: float                  # the inference, pinning included
    decision_ms: float                 # the planner's choose + observe
    fallback: str = ""                 # candidates that failed on this request, with the reason


class AdaptiveRuntime:
    """Serves requests on ``candidates`` (opened), choosing each time with ``planner``."""

    def __init__(self, candidates: Sequence[Candidate], planner: Planner, clock: Clock = time.perf_counter_ns):
        self.cands = {c.name: c for c in candidates}
        missing = [c for c in planner.live if c not in self.cands]
        if missing:
            raise ValueError(f"planner candidates without a session: {missing}")
        self.planner = planner
        self.clock = clock
        self.n = 0

    def serve(self) -> Served:
        fallback = []
        decision_ns = 0
        while True:
            t0 = self.clock()
            d: Decision = self.planner.choose()
            t1 = self.clock()
            decision_ns += t1 - t0
            c = self.cands[d.candidate]
            try:
                c.run()
            except Exception as e:  # fallback: the candidate leaves the plan, the request is served again
                t2 = self.clock()
                why = f"{type(e).__name__}: {e}"[:300]
                self.planner.fail(d.candidate, why)
                fallback.append(f"{d.candidate}: {why}")
                continue
            t2 = self.clock()
            self.planner.observe(d, (t2 - t1) / 1e6)
            t3 = self.clock()
            decision_ns += t3 - t2
            out = Served(self.n, d.candidate, d.why, (t2 - t1) / 1e6, decision_ns / 1e6, "; ".join(fallback))
            self.n += 1
            return out


__all__ = ["AdaptiveRuntime", "Candidate", "Served", "parse", "place"]
