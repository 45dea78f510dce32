"""The co-execution split, predicted with the engine's measured overhead.

Finding 2's r* (``study.coexec.predict_ratios``) balances the summed compute of the
splittable layers, t_a / (t_a + t_b), from per-layer profiles of each processor alone. It
ignores what a split adds: copying the layer's input to the second processor, its result
back, the concatenation, and the synchronization of every split layer. On a 2-core host r*
lands 5% (Fast Style Transfer) to 113% (MobileNetV2) above the best split of the grid.

This predictor models the latency of an operator-level split at share r (on ``b``):

    T(r) = solo + sum over splittable layers l of step_l(r)
    step_l(r) = ta_l                                           if l gets no unit on b
              = in_l + max(ta_l (1 - f), (tb_l + inner_l) f) + merge_l + c     otherwise

with f = the share of l's units on b (``coexec.units_b``), ``ta_l``, ``tb_l`` the layer's
compute on each processor alone, ``in_l`` / ``inner_l`` / ``merge_l`` its copies measured at
r = 1 (``profile_layers``: the input copy, b writing its result, the copy back), ``solo`` the
time a spends outside the splittable layers (the whole model on a minus the layers' sum),
and ``c`` the engine's fixed cost per split layer: signalling, wake-up, bookkeeping. ``c`` is
*measured*: one calibration point, the engine at the profile's r* (``calibrate``), gives
c = (measured T(r*) - modelled T(r*) without c) / number of split layers (at least 0). The
predicted split is the r of a fine grid (and 0, 1) with the lowest T(r); r = 0 means "do not
split" (co-execution does not pay on this pair), which the profile's r* can never say.

Cost of a prediction: the two profile passes finding 2 already makes, plus ``calib_runs``
inferences at r*.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from study import coexec


@dataclass
class LayerModel:
    name: str
    units: int
    ta: float          # ms, compute on a alone
    tb: float          # ms, compute on b alone
    t_in: float        # ms, copy of the input to b (at r = 1)
    inner: float       # ms, b writing its result (at r = 1)
    t_out: float       # ms, copy of b's result to a (at r = 1): the merge's cost stand-in
    depthwise: bool = False


@dataclass
class SplitModel:
    layers: list[LayerModel]
    solo_ms: float
    step_overhead_ms: float = 0.0
    calibration: dict[str, Any] = field(default_factory=dict)

    def steps(self, r: float) -> int:
        return sum(1 for lay in self.layers if coexec.units_b(lay.units, r) > 0)

    def predict(self, r: float, overhead: bool = True) -> float:
        t = self.solo_ms
        c = self.step_overhead_ms if overhead else 0.0
        for lay in self.layers:
            kb = coexec.units_b(lay.units, r)
            if kb == 0:
                t += lay.ta
                continue
            f = kb / lay.units
            t_in = lay.t_in * (f if lay.depthwise else 1.0)
            if kb == lay.units:
                t += t_in + lay.tb + lay.inner + lay.t_out + c
            else:
                t += t_in + max(lay.ta * (1 - f), (lay.tb + lay.inner) * f) + lay.t_out * f + c
        return t

    def curve(self, grid: Sequence[float] | None = None) -> list[tuple[float, float]]:
        grid = np.round(np.linspace(0, 1, 101), 4) if grid is None else grid
        return [(float(r), self.predict(float(r))) for r in grid]

    def best(self, grid: Sequence[float] | None = None) -> tuple[float, float]:
        """(predicted split, its predicted latency in ms): the lowest of the curve; ties go to the
        smaller share (less work moved)."""
        return min(self.curve(grid), key=lambda rt: (round(rt[1], 6), rt[0]))


def layer_models(recs: Sequence[dict[str, Any]], depthwise: dict[str, bool] | None = None) -> list[LayerModel]:
    """Per-layer medians from ``coexec.profile_layers`` records (ns -> ms)."""
    out = []
    for name, ra, rb in coexec.profile_by_layer(recs):
        if not ra or not rb:
            continue

        def med(rs, k):
            return statistics.median(x[k] for x in rs) / 1e6

        units = ra[0]["k_a"] + ra[0]["k_b"]
        out.append(LayerModel(name, units, med(ra, "ca"), med(rb, "cb"), med(rb, "t_in"), med(rb, "inner"),
                              med(rb, "t_out") + med(rb, "merge"), bool((depthwise or {}).get(name, False))))
    return out


def depthwise_flags(rt) -> dict[str, bool]:
    """Layers whose parts need only their own input channels (grouped convolutions)."""
    return {n: coexec.split_units(layer)[2] is not None for n, layer in rt.layers.items()}


def build(recs: Sequence[dict[str, Any]], t_single_a_ms: float, depthwise: dict[str, bool] | None = None) -> SplitModel:
    layers = layer_models(recs, depthwise)
    solo = max(t_single_a_ms - sum(lay.ta for lay in layers), 0.0)
    return SplitModel(layers, solo)


def calibrate(model: SplitModel, r_cal: float, measured_ms: Sequence[float]) -> SplitModel:
    """The fixed cost per split layer from latencies measured at ``r_cal``."""
    n = model.steps(r_cal)
    t = float(statistics.median(measured_ms))
    base = model.predict(r_cal, overhead=False)
    c = max((t - base) / n, 0.0) if n else 0.0
    model.step_overhead_ms = c
    model.calibration = {"r_cal": r_cal, "measured_ms": t, "modelled_without_overhead_ms": base, "split_layers": n,
                         "step_overhead_ms": c, "runs": len(measured_ms)}
    return model


def profile_r_star(recs: Sequence[dict[str, Any]]) -> float:
    """Finding 2's profile-predicted split (compute balance only)."""
    return float(coexec.predict_ratios(recs)[0])


def predict(pair, rt, profile_runs: int = 3, calib_runs: int = 5, t_single_a_ms: float | None = None,
            recs: Sequence[dict[str, Any]] | None = None) -> tuple[SplitModel, float, float]:
    """Profile (unless ``recs`` are given), calibrate at r* and predict: (model, r*, predicted r).
    The caller pins this process to ``a``'s cores."""
    if recs is None:
        recs = coexec.profile_layers(pair, rt, profile_runs)
    if t_single_a_ms is None:
        s = coexec.SingleSession(rt.model_a, rt.x_a, pair.threads_a, cuda=pair.kind == "cpu+gpu")
        t_single_a_ms = statistics.median(coexec.time_runs(s, max(3, profile_runs)))
    model = build(recs, t_single_a_ms, depthwise_flags(rt))
    r_star = round(profile_r_star(recs), 4)
    lat = coexec.time_runs(coexec.CoexecSession(pair, rt, "operator", r_star), max(1, calib_runs))
    calibrate(model, r_star, lat)
    r_hat, _ = model.best()
    return model, r_star, r_hat


__all__ = ["LayerModel", "SplitModel", "build", "calibrate", "depthwise_flags", "layer_models", "predict",
           "profile_r_star"]
