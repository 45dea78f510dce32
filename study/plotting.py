"""One plotting setup for every figure: theme, palette, sizes, PNG + PDF."""
from __future__ import annotations

from pathlib import Path
from typing import Any

# No backend is forced: headless processes get Agg by default, a notebook kernel keeps its
# inline backend so that figures show in the executed notebook.
import matplotlib.pyplot as plt
import seaborn as sns

from study import paths

PROCESSOR_COLORS = {"cpu": "#4C72B0", "gpu": "#DD8452", "npu": "#55A868", "cpu+gpu": "#8172B3", "cpu+cpu": "#937860"}
PAPER_COLOR = "#C44E52"
WIDTH = 7.0     # inches, one column of a report page
HEIGHT = 3.6


def setup() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="deep", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight", "figure.autolayout": False,
                         "pdf.fonttype": 42})


def figure(w: float = WIDTH, h: float = HEIGHT, **kw):
    setup()
    return plt.subplots(figsize=(w, h), **kw)


def save(fig, device: str, finding: str, name: str, root: Path = paths.FIGURES) -> dict[str, Path]:
    """Write ``figures/<device>/<finding>/<name>.png`` and ``.pdf``; returns both paths."""
    out = paths.figures_dir(device, finding, root)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for ext in ("png", "pdf"):
        p = out / f"{name}.{ext}"
        fig.savefig(p)
        files[ext] = p
    return files


def mark_paper(ax, value: float, label: str, axis: str = "y") -> None:
    """A reference line for a value the paper reports (never an output of ours)."""
    line = ax.axhline if axis == "y" else ax.axvline
    line(value, color=PAPER_COLOR, ls="--", lw=1.2)
    if axis == "y":
        ax.annotate(label, xy=(1.0, value), xycoords=("axes fraction", "data"), xytext=(-4, 3),
                    textcoords="offset points", ha="right", va="bottom", color=PAPER_COLOR, fontsize=8)
    else:
        ax.annotate(label, xy=(value, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -4),
                    textcoords="offset points", ha="left", va="top", color=PAPER_COLOR, fontsize=8, rotation=90)


def draw_and_save(ctx, drawers) -> dict[str, Any]:
    """A finding's figures: for each ``(name, table, draw)`` in order whose table has rows,
    ``draw(table)``'s figure, saved under ``name`` (``ctx.save``)."""
    figs = {}
    for name, table, draw in drawers:
        if table is not None and len(table):
            figs[name] = draw(table)
            ctx.save(figs[name], name)
    return figs
