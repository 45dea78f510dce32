"""Online latency estimators: finding 4's runtime estimators, one observation at a time.

``study.estimators.runtime_predictions`` computes, for a whole trace, the prediction each
estimator makes before each observation (window median, window mean, EWMA; the offline
prior before the first observation). A runtime serving requests cannot wait for the trace:
``OnlineEstimate`` keeps the same three estimators up to date in O(window) per observation
and gives, at any moment, exactly the value ``runtime_predictions`` gives at that position
(``tests/test_runtime.py`` checks it on random traces).

``window_p90`` (the window's 90th percentile, linear interpolation as ``numpy.percentile``) is an
addition for a tail-latency objective; it is not one of finding 4's estimators.

``reset(prior)`` forgets the history (a re-plan: the conditions changed, the old
observations describe another context); ``age`` counts requests since the last observation,
the staleness the planner uses to decide what to probe.
"""
from __future__ import annotations

import math
from collections import deque
from statistics import median

ESTIMATORS = ("window_median", "window_mean", "ewma", "window_p90")


class OnlineEstimate:
    """The runtime estimators of one candidate, from its own observations only."""

    def __init__(self, prior: float = math.nan, window: int = 8, alpha: float = 0.3):
        if window < 1 or not 0 < alpha <= 1:
            raise ValueError(f"window >= 1 and 0 < alpha <= 1 expected, got {window}, {alpha}")
        self.window, self.alpha = int(window), float(alpha)
        self.reset(prior)

    def reset(self, prior: float = math.nan) -> None:
        self.prior = float(prior)
        self.recent: deque[float] = deque(maxlen=self.window)
        self._ewma = self.prior
        self.n = 0
        self.last_seen = -1          # request index of the last observation

    def observe(self, latency_ms: float, at: int = -1) -> None:
        x = float(latency_ms)
        self.recent.append(x)
        self._ewma = x if math.isnan(self._ewma) else self.alpha * x + (1 - self.alpha) * self._ewma
        self.n += 1
        self.last_seen = at

    def value(self, estimator: str = "ewma") -> float:
        """The prediction now (the prior before any observation; NaN with neither)."""
        if estimator == "ewma":
            return self._ewma
        if not self.recent:
            return self.prior
        if estimator == "window_median":
            return float(median(self.recent))
        if estimator == "window_mean":
            return float(sum(self.recent) / len(self.recent))
        if estimator == "window_p90":   # the tail: what a p95 objective needs (not one of finding 4's)
            xs = sorted(self.recent)
            pos = 0.9 * (len(xs) - 1)
            lo = int(pos)
            return float(xs[lo] + (xs[min(lo + 1, len(xs) - 1)] - xs[lo]) * (pos - lo))
        raise ValueError(f"unknown estimator {estimator!r}; known: {', '.join(ESTIMATORS)}")

    def age(self, now: int) -> int:
        """Requests since the last observation (``now`` + 1 if never observed)."""
        return now - self.last_seen if self.last_seen >= 0 else now + 1


__all__ = ["ESTIMATORS", "OnlineEstimate"]
