"""The planner: which candidate serves the next request, from the runtime's own observations.

Each candidate has an ``OnlineEstimate`` (finding 4's runtime estimators, updated only from
the requests that candidate served). The planner

* **exploits**: the candidate with the lowest estimate serves, with a hysteresis margin
  (another candidate must be predicted ``switch_margin`` faster to take over), so noise
  does not flip the choice;
* **explores at a bounded cost**: every candidate serves once at the start (or starts from
  an offline prior), then one request in ``probe_every`` goes to the candidate observed
  longest ago (a probe is a real request: its latency is the price of exploring, at most
  1/``probe_every`` of the requests outside re-plans);
* **re-plans when contention changes**: ``confirm`` consecutive observations of the
  candidate in use that deviate from its window median by more than ``change_threshold`` or
  three robust standard deviations of the window, whichever is larger (up: a competitor
  arrived; down: one left), mean the conditions changed. The candidate in use
  keeps only the deviating observations; every other candidate is marked stale and probed
  twice (fastest estimate first; one sample can be unlucky either way), its old history
  dropped when a probe's latency shows a change (a background probe that looks better than the
  candidate in use is confirmed by a second one before it may take over); then the planner
  exploits again. A re-plan costs at most 2 (K - 1) probes (K
  candidates) and re-plans are ``cooldown`` requests apart, so after a competitor appears
  on the candidate in use the planner moves within ``confirm + 2 (K - 1) + 1`` requests
  (``move_bound``) where another candidate is then faster.

A candidate whose request failed leaves the plan (``fail``); the runtime serves the request
on the next choice (fallback instead of failing).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from study.runtime.estimator import OnlineEstimate

WHY = ("warmup", "exploit", "probe", "replan")


@dataclass(frozen=True)
class PlannerSettings:
    estimator: str = "window_mean"   # the estimate the choice is made on (the mean weighs the tail in)
    window: int = 16                 # window of the window estimators (and of change detection)
    alpha: float = 0.3               # EWMA weight of the newest observation
    change_threshold: float = 0.3    # relative deviation from the window median that counts as a change
    confirm: int = 3                 # consecutive deviating observations that confirm a change
    probe_every: int = 50            # one background probe per this many requests
    cooldown: int = 10               # requests between two re-plans
    switch_margin: float = 0.05      # hysteresis: a challenger must be predicted this much faster

    @classmethod
    def from_params(cls, p: Mapping) -> "PlannerSettings":
        return cls(**{k: p[k] for k in cls.__dataclass_fields__ if k in p})


@dataclass
class Decision:
    candidate: str
    why: str                          # one of WHY
    estimates: dict[str, float] = field(default_factory=dict)


class Planner:
    def __init__(self, candidates: Sequence[str], settings: PlannerSettings = PlannerSettings(),
                 priors: Mapping[str, float] | None = None):
        if not candidates:
            raise ValueError("no candidate to plan with")
        self.s = settings
        priors = dict(priors or {})
        self.est = {c: OnlineEstimate(priors.get(c, math.nan), settings.window, settings.alpha) for c in candidates}
        self.failed: dict[str, str] = {}
        self.i = 0                                    # index of the next request
        self.current: str | None = None
        self.queue: list[tuple[str, str]] = [(c, "warmup") for c in candidates if math.isnan(priors.get(c, math.nan))]
        self.stale: set[str] = set()
        self.deviating: list[float] = []
        self.last_probe = 0
        self.last_replan = -10 ** 9
        self.events: list[dict] = []                  # re-plans and failures, for the log

    # -- what the planner knows ---------------------------------------------------
    @property
    def live(self) -> list[str]:
        return [c for c in self.est if c not in self.failed]

    def estimate(self, c: str) -> float:
        v = self.est[c].value(self.s.estimator)
        return math.inf if math.isnan(v) else v

    def move_bound(self) -> int:
        """Requests after a change on the candidate in use within which the planner serves on
        another one (when another is faster then): detection, at most two probes of each other, the move."""
        return self.s.confirm + 2 * (len(self.live) - 1) + 1

    # -- decisions ------------------------------------------------------------------
    def choose(self) -> Decision:
        live = self.live
        if not live:
            raise RuntimeError("every candidate failed: " + "; ".join(f"{c}: {w}" for c, w in self.failed.items()))
        while self.queue:
            c, why = self.queue.pop(0)
            if c in live:
                return Decision(c, why)
        if (len(live) > 1 and self.s.probe_every > 0 and self.i - self.last_probe >= self.s.probe_every):
            others = [c for c in live if c != self.current]
            c = max(others, key=lambda c: (self.est[c].age(self.i), -self.estimate(c)))
            self.last_probe = self.i
            return Decision(c, "probe")
        best = min(live, key=self.estimate)
        cur = self.current if self.current in live else None
        if cur is not None and self.estimate(best) >= self.estimate(cur) * (1 - self.s.switch_margin):
            best = cur
        return Decision(best, "exploit")

    def observe(self, d: Decision | str, latency_ms: float) -> None:
        """The latency of the request ``d`` served (its own candidate's observation only)."""
        d = d if isinstance(d, Decision) else Decision(d, "exploit")
        c, x = d.candidate, float(latency_ms)
        e = self.est[c]
        if d.why == "exploit":
            self._watch(c, x)
            e = self.est[c]
            if self.current != c:
                self.current = c
            e.observe(x, self.i)
        else:
            med = e.value("window_median")
            changed = (c in self.stale or not e.recent
                       or (not math.isnan(med) and abs(x / med - 1) > self.s.change_threshold))
            if changed and e.recent:
                e.reset(math.nan)
            self.stale.discard(c)
            e.observe(x, self.i)
            cur = self.current
            if (cur is not None and c != cur and e.n < 2 and all(q[0] != c for q in self.queue)
                    and self.estimate(c) < self.estimate(cur) * (1 - self.s.switch_margin)):
                self.queue.insert(0, (c, d.why))   # one lucky sample does not move the runtime: confirm it
            if self.current is None and d.why == "warmup" and not self.queue:
                self.current = min(self.live, key=self.estimate)
        self.i += 1

    def threshold(self, c: str) -> float:
        """The deviation that counts as a change on ``c``: ``change_threshold``, or three robust
        standard deviations of its window (1.4826 MAD / median) where the latency is noisier."""
        e = self.est[c]
        med = e.value("window_median")
        if not e.recent or not med > 0:
            return self.s.change_threshold
        mad = sorted(abs(v - med) for v in e.recent)[len(e.recent) // 2]
        return max(self.s.change_threshold, 3 * 1.4826 * mad / med)

    def _watch(self, c: str, x: float) -> None:
        """Change detection on the candidate in use; a confirmed change starts a re-plan."""
        e = self.est[c]
        if len(e.recent) < min(self.s.window, 3):
            return
        med = e.value("window_median")
        if abs(x / med - 1) <= self.threshold(c):
            self.deviating = []
            return
        if self.deviating and (x > med) != (self.deviating[-1] > med):
            self.deviating = []
        self.deviating.append(x)
        if len(self.deviating) < self.s.confirm or self.i - self.last_replan < self.s.cooldown:
            return
        kept = list(self.deviating[:-1])
        e.reset(math.nan)
        for v in kept:
            e.observe(v, self.i)
        others = sorted((o for o in self.live if o != c), key=self.estimate)
        self.stale = set(others)
        self.queue = [(o, "replan") for o in others for _ in range(2)]   # two samples each: one can be unlucky
        self.events.append({"type": "replan", "request": self.i, "candidate": c, "latency_ms": x,
                            "median_before_ms": med, "probes": others})
        self.deviating = []
        self.last_replan = self.i

    def fail(self, c: str, reason: str) -> None:
        self.failed[c] = reason
        self.events.append({"type": "failed", "request": self.i, "candidate": c, "reason": reason})
        if self.current == c:
            self.current = None


__all__ = ["Decision", "Planner", "PlannerSettings", "WHY"]
