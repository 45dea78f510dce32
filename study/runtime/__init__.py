"""An adaptive inference runtime: the study's pitfalls turned into a measured fix (claim C11).

The paper ends with pitfalls: offline profiles mislead at run time (finding 4), contention
moves the best processor (finding 3), co-execution's overhead eats its gain (finding 2),
operators fall back (finding 1), compression and placement interact (finding 6). This
package serves a stream of requests with what the study measured:

* ``estimator``: finding 4's runtime estimators (window median/mean, EWMA), online, from the
  runtime's own observations only;
* ``planner``: the choice per request: exploit the lowest estimate (with hysteresis),
  bounded exploration (one probe in ``probe_every`` requests), re-planning when the latency
  of the candidate in use shows that contention changed (bounded moving time:
  ``Planner.move_bound``);
* ``split``: the co-execution split predicted with the engine's measured overhead per split
  layer (finding 2's r* ignores it);
* ``serving``: candidates (``engine/processor/core_group``, compressed variants
  ``#int8_dynamic``, splits ``coexec/cpu+cpu/g0+g1@r``), fallback-aware placement,
  ``AdaptiveRuntime.serve()``;
* ``capabilities``: what the runtime can and cannot choose on a device, with the reason.

The stage ``adaptive_runtime`` (``study.adaptive_runtime``) measures it in closed loop against
every static candidate; ``benchmarks/split_prediction.py`` measures the split predictor.
"""
from study.runtime.capabilities import capabilities
from study.runtime.estimator import OnlineEstimate
from study.runtime.planner import Decision, Planner, PlannerSettings
from study.runtime.serving import AdaptiveRuntime, Candidate, Served, parse, place

__all__ = ["AdaptiveRuntime", "Candidate", "Decision", "OnlineEstimate", "Planner", "PlannerSettings", "Served",
           "capabilities", "parse", "place"]
