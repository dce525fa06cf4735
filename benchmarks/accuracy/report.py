"""Markdown table, JSON results and the accuracy-vs-FLOPs plot of accuracy-harness records."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from .runner import UNPRUNED

__all__ = ["markdown_table", "plot_accuracy_vs_flops", "write_outputs"]

_HEADER = ("| strategy | budget | accuracy % (95% CI) | relative % | agreement % | KL | input ret. % "
           "| layer-avg ret. % | FLOPs ratio |")


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}"


def _row(r: dict) -> str:
    budget = "—" if r.get("budget") is None else f"{r['budget']:g}"
    name = r.get("preset") if r.get("strategy") == "hieravid" else r["strategy"]
    if r.get("status") != "ok":
        reason = " ".join(str(r.get("reason", "")).split())
        if len(reason) > 90:
            reason = reason[:87] + "..."
        return f"| {name} | {budget} | {r.get('status')}: {reason} | | | | | | |"
    lo, hi = r["accuracy_ci"]
    kl = "—" if r.get("kl") is None else f"{r['kl']:.3f}"
    return (f"| {name} | {budget} | {_pct(r['accuracy'])} ({_pct(lo)}–{_pct(hi)}) | {_pct(r['relative_accuracy'])} "
            f"| {_pct(r['agreement'])} | {kl} | {_pct(r['input_retention'])} | {_pct(r['layer_average_retention'])} "
            f"| {r['flops_ratio']:.3f} |")


def markdown_table(records: Sequence[dict]) -> str:
    """One row per cell: accuracy with CI, relative accuracy, fidelity, realized retention and FLOPs ratio."""
    if not records:
        return "(no results)"
    first = records[0]
    caption = (f"{first['model']} on {first['dataset']} ({first['n_items']} items, {first['num_frames']} frames); "
               f"budgets in {next((r['mode'] for r in records if r.get('mode')), 'layer_average')} mode; "
               "relative accuracy, agreement and KL(unpruned || pruned) against the unpruned row.")
    sep = "|" + "---|" * _HEADER.count(" | ") + "---|"
    return "\n".join([caption, "", _HEADER, sep, *(_row(r) for r in records)])


def plot_accuracy_vs_flops(records: Sequence[dict], path: str | os.PathLike) -> Path:
    """Accuracy (with 95% CI) against the realized FLOPs ratio, one line per strategy; unpruned as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.get("status") == "ok"]
    lines: dict[str, list[dict]] = defaultdict(list)
    for r in ok:
        if r["strategy"] != UNPRUNED:
            lines[r["strategy"]].append(r)
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    colors = plt.get_cmap("tab20").colors
    markers = "osD^vP*Xh<>p"
    for i, (name, rs) in enumerate(lines.items()):
        rs = sorted(rs, key=lambda r: r["flops_ratio"])
        x = [r["flops_ratio"] for r in rs]
        y = [100 * r["accuracy"] for r in rs]
        err = [[100 * (r["accuracy"] - r["accuracy_ci"][0]) for r in rs],
               [100 * (r["accuracy_ci"][1] - r["accuracy"]) for r in rs]]
        ax.errorbar(x, y, yerr=err, marker=markers[i % len(markers)], color=colors[(2 * i) % 20 + (i // 10) % 2],
                    capsize=3, label=name, alpha=0.9)
    for r in ok:  # a line, not a point at FLOPs 1.0, so the pruned points keep the x range to themselves
        if r["strategy"] == UNPRUNED:
            ax.axhline(100 * r["accuracy"], color="gray", ls="--", lw=1,
                       label=f"unpruned ({100 * r['accuracy']:.1f}%, FLOPs 1.0)")
    if ok:
        first = ok[0]
        ax.set_title(f"{first['model']} on {first['dataset']} ({first['n_items']} items)", fontsize=10)
    ax.set_xlabel("prefill FLOPs ratio (pruned / unpruned)")
    ax.set_ylabel("accuracy % (95% bootstrap CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(lines) > 8 else 1, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_outputs(records: Sequence[dict], out_dir: str | os.PathLike, plot: bool = True) -> dict[str, Path]:
    """``results.json`` (this run's records), ``results.md`` (the table) and ``accuracy_vs_flops.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md"}
    paths["json"].write_text(json.dumps(list(records), indent=1) + "\n")
    paths["markdown"].write_text(markdown_table(records) + "\n")
    if plot:
        paths["plot"] = plot_accuracy_vs_flops(records, out / "accuracy_vs_flops.png")
    return paths
