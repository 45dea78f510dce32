"""What the runtime can choose on a device, and what it cannot, with the reason."""
from __future__ import annotations

from typing import Any


def capabilities(device, engines=("litert", "onnxruntime", "torch")) -> list[dict[str, Any]]:
    """One row per dimension of the choice: ``choosable`` and the options or the reason."""
    rows = []
    kind = getattr(device, "kind", "local")
    if kind == "adb":
        why = ("Python does not run on a phone: requests there go through benchmark_model, which times blocks of "
               "runs of one fixed configuration; a per-request runtime cannot serve on it")
        return [dict(dimension=d, choosable=False, options="", reason=why)
                for d in ("core group", "processor", "engine", "thread count", "co-execution split",
                          "compressed variant")]
    groups = device.core_groups()
    rows.append(dict(dimension="core group", choosable=len(groups) > 1, options=", ".join(groups),
                     reason="" if len(groups) > 1 else "one core group only"))
    procs = {p.name: p for p in device.processors()}
    for name in ("gpu", "npu"):
        p = procs.get(name)
        ok = bool(p and p.available)
        rows.append(dict(dimension=f"processor {name}", choosable=ok, options=name if ok else "",
                         reason="" if ok else (getattr(p, "reason", "") or f"no {name} on this device")))
    from study.engines import get_engine

    usable, why = [], []
    for e in engines:
        try:
            r = get_engine(e).availability(device, "cpu")
        except Exception as ex:  # noqa: BLE001 - an engine that cannot even say is absent
            r = f"{type(ex).__name__}: {ex}"
        (usable if r is None else why).append(e if r is None else f"{e}: {r}")
    rows.append(dict(dimension="engine", choosable=len(usable) > 1, options=", ".join(usable),
                     reason="; ".join(why)))
    rows.append(dict(dimension="thread count", choosable=len(groups) > 1,
                     options=", ".join(f"{g}: {len(c)}" for g, c in groups.items()),
                     reason="one thread per core of the candidate's group (not chosen apart from the group)"))
    gpu_ok = bool(procs.get("gpu") and procs["gpu"].available)
    pair = "cpu+gpu" if gpu_ok else ("cpu+cpu" if len(groups) > 2 or {"g0", "g1"} <= set(groups) else "")
    rows.append(dict(dimension="co-execution split", choosable=bool(pair), options=pair,
                     reason="" if pair else "needs a CUDA GPU or two disjoint core groups"))
    try:
        import ai_edge_quantizer  # noqa: F401

        rows.append(dict(dimension="compressed variant", choosable=True, options="fp16, int8_dynamic (LiteRT)",
                         reason="accuracy changes with the variant: chosen only where the application allows it"))
    except ImportError as e:
        rows.append(dict(dimension="compressed variant", choosable=False, options="",
                         reason=f"ai_edge_quantizer not importable: {e}"))
    return rows


__all__ = ["capabilities"]
