"""Markdown tables and matplotlib plots of efficiency records (see `runner`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _f(value: Any, fmt: str = ".1f", suffix: str = "") -> str:
    if value is None:
        return "–"
    try:
        if value != value:  # NaN
            return "–"
        return f"{value:{fmt}}{suffix}"
    except (TypeError, ValueError):
        return str(value)


def _med(metric: dict | None) -> float | None:
    return None if not metric else metric.get("median")


def header(result: dict[str, Any]) -> str:
    """One line naming the hardware and versions."""
    env = result["environment"]
    where = env.get("gpu") or f"CPU ({env.get('cpu')}, {env.get('threads')} threads)"
    return (f"{where}; torch {env['torch']}, transformers {env['transformers']}, prunekit {env['prunekit']}"
            f"{', triton ' + env['triton'] if env.get('triton') else ''}"
            f"{'; SDPA kernel pinned: ' + env['sdpa_backend'] if env.get('sdpa_backend', 'auto') != 'auto' else ''}"
            f"; {env['date']}")


def run_table(run: dict[str, Any]) -> str:
    """The main comparison table of one model shape."""
    lines = [
        f"### {run['model_shape']}, {run['frames']} frames, batch {run['batch']} "
        f"({run['sequence_length']} input tokens, {run['dtype']}, config {run['config_fingerprint']})",
        "",
        f"{run['description']}. Synthetic scenes of {run['scene_frames']} frames. Medians of {run['repeats']} runs "
        f"(decode: {run['decode_repeats']} runs of {run['new_tokens']} tokens) after {run['warmup']} warm-up runs."
        + (" Video pooling on the channels-last view (`--fast-pooling`), every row." if run.get("fast_pooling")
           else "")
        + (f" Decode columns: the alternated runs ({run['decode']['runs']} x {run['decode']['new_tokens']} tokens, "
           "table below) where a row has them." if run.get("decode") else ""),
        "",
        "| strategy | visual kept (layer avg) | FLOPs ratio | vision ms | LLM prefill ms | prefill speedup "
        "| limit ms | of limit | TTFT ms | TTFT speedup | decode tok/s | decode speedup | peak GiB | prunekit ms "
        "| % of unpruned prefill |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in run["strategies"]:
        m, r = e["metrics"], e.get("ratios", {})
        stats = e.get("stats") or {}
        kept = stats.get("layer_average_retention", 1.0 if e["name"] == "unpruned" else None)
        over = e.get("overhead", {})
        share = r.get("overhead_share_of_unpruned_prefill")
        # the alternated per-step decode runs (--decode-runs), where this row had them
        alternated = (run.get("decode") or {}).get("rows", {}).get(e["name"])
        tok_s = alternated["tokens_per_s"] if alternated else _med(m["decode_tokens_per_s"])
        decode_speedup = alternated["speedup"]["speedup"] if alternated else r.get("decode_speedup")
        lines.append(
            f"| {e['name']} | {_f(kept, '.1%')} | {_f(r.get('flops_ratio'), '.3f')} | {_f(_med(m['vision_ms']))} "
            f"| {_f(_med(m['llm_prefill_ms']))} | {_f(r.get('llm_prefill_speedup'), '.2f', 'x')} "
            f"| {_f(_med((e.get('limit') or {}).get('llm_prefill_ms')))} | {_f(r.get('of_limit'), '.0%')} "
            f"| {_f(_med(m['ttft_ms']))} | {_f(r.get('ttft_speedup'), '.2f', 'x')} "
            f"| {_f(tok_s)} | {_f(decode_speedup, '.2f', 'x')} "
            f"| {_f(m.get('peak_gib'), '.2f')} | {_f(over.get('total_ms'), '.2f')} | {_f(share, '.1%')} |")
    return "\n".join(lines)


def overhead_table(run: dict[str, Any]) -> str:
    """prunekit's own time per part (GPU timeline, CUDA events), per pruned strategy."""
    parts = ["segment", "summarize", "merge", "relevance", "allocate", "selector", "dpp", "other"]
    lines = [
        f"prunekit's own work per prefill on {run['model_shape']} (ms, GPU timeline; `selector` includes `dpp`; "
        "`other` = hook totals minus the named parts: gathers, masks, index bookkeeping, host syncs):",
        "",
        "| strategy | segments | " + " | ".join(parts) + " | total | host ms |",
        "|---|---|" + "---|" * len(parts) + "---|---|",
    ]
    for e in run["strategies"]:
        over = e.get("overhead")
        if not over or not over.get("available"):
            continue
        p = over["parts_ms"]
        segs = (e.get("stats") or {}).get("samples", [{}])[0].get("segments")
        host = over.get("host_ms", {})
        host_total = (host.get("hooks_prefill") or 0) + (host.get("hooks_layers") or 0)
        lines.append(f"| {e['name']} | {segs} | " + " | ".join(_f(p.get(k), '.2f') for k in parts)
                     + f" | {_f(over['total_ms'], '.2f')} | {_f(host_total, '.2f')} |")
    return "\n".join(lines)


def decode_table(run: dict[str, Any]) -> str:
    """Per-step decode times of the alternated runs (see `benchmarks.efficiency.decode`)."""
    dec = run.get("decode")
    if not dec:
        return ""
    lines = [
        f"Decode on {run['model_shape']}, batch {run['batch']}: {dec['runs']} runs of {dec['new_tokens']} new tokens "
        f"per row, rows alternated within each run ({dec['timer']}). Step = GPU timeline from one decode forward's "
        "start to the next; host = host time inside the forward; forward = its GPU-timeline span. Speedup: "
        "geometric mean of the per-run paired ratios, 95% interval.",
        "",
        "| strategy | step ms | tok/s | host ms | forward ms | decode speedup | 95% interval |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in dec["rows"].items():
        sp = row["speedup"]
        interval = "–" if sp.get("ci_low") is None else f"{sp['ci_low']:.3f}–{sp['ci_high']:.3f}"
        lines.append(f"| {name} | {_f(row['step_ms'], '.2f')} | {_f(row['tokens_per_s'])} "
                     f"| {_f(row['host_ms'], '.2f')} | {_f(row['forward_ms'], '.2f')} "
                     f"| {_f(sp.get('speedup'), '.3f', 'x')} | {interval} |")
    return "\n".join(lines)


def dpp_tables(dpp: dict[str, Any]) -> str:
    """Correctness and timing tables of the DPP backends."""
    lines = ["### Greedy DPP: Triton fast path vs torch path", "",
             "| stage | segments | programs/segment | identical segments | barrier timeouts |",
             "|---|---|---|---|---|"]
    for r in dpp.get("check", []):
        lines.append(f"| {r['stage']} | {r['segments']} | {r['programs']} | {r['identical_segments']}/{r['of']} "
                     f"| {r['barrier_timeouts']} |")
    timing_keys = sorted({k for r in dpp.get("timings", []) for k in r if k.startswith("kernel_P")},
                         key=lambda k: int(k[len("kernel_P"):-3]))
    lines += ["", "| stage | segments | greedy steps | torch loop ms | Triton (greedy_map) ms | "
              + " | ".join(k.replace("_ms", " ms").replace("kernel_", "kernel ") for k in timing_keys) + " |",
              "|---|---|---|---|---|" + "---|" * len(timing_keys)]
    for r in dpp.get("timings", []):
        lines.append(f"| {r['stage']} | {r['segments']} | {r['steps']} | {_f(r.get('torch_ms'), '.2f')} | "
                     f"{_f(r.get('triton_ms'), '.3f')} | " + " | ".join(_f(r.get(k), '.3f') for k in timing_keys)
                     + " |")
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    """The whole report as markdown."""
    parts = ["## Efficiency benchmark", "", header(result), ""]
    for run in result["runs"]:
        parts += [run_table(run), "", overhead_table(run), ""]
        if run.get("decode"):
            parts += [decode_table(run), ""]
    if result.get("dpp"):
        parts += [dpp_tables(result["dpp"]), ""]
    return "\n".join(parts)


def _title(what: str, result: dict[str, Any]) -> str:
    import textwrap

    return what + "\n" + "\n".join(textwrap.wrap(header(result), 110))


def plots(result: dict[str, Any], out: Path) -> list[Path]:
    """``speedup_vs_flops.png`` and ``ttft_breakdown.png`` under ``out`` (matplotlib, headless)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is an optional (bench) dependency
        return []
    runs = result["runs"]
    if not runs:
        return []
    written = []
    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4.4), squeeze=False)
    for ax, run in zip(axes[0], runs):
        xs = []
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, e in enumerate(run["strategies"]):
            r = e.get("ratios", {})
            x = r.get("flops_ratio")
            if x is None:
                continue
            xs.append(x)
            color = colors[i % len(colors)]
            for key, marker in (("llm_prefill_speedup", "o"), ("ttft_speedup", "s")):
                y = r.get(key)
                if y is None:
                    continue
                ax.scatter([x], [y], marker=marker, s=40, color=color,
                           label=e["name"] if key == "llm_prefill_speedup" else None)
            y = r.get("llm_prefill_speedup")
            if y is not None:
                ax.annotate(e["name"], (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
        if xs:
            import numpy as np

            grid = np.linspace(max(0.05, min(xs) * 0.9), 1.0, 50)
            ax.plot(grid, 1 / grid, "k--", lw=0.8, label="1 / FLOPs ratio")
        for marker, what in (("o", "LLM prefill"), ("s", "TTFT")):  # what each marker shape measures
            ax.scatter([], [], marker=marker, s=40, color="gray", label=what)
        ax.set_xlabel("analytic prefill FLOPs ratio")
        ax.set_ylabel("speedup vs unpruned")
        ax.set_title(f"{run['model_shape']}, {run['frames']} frames", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper right")
    title = _title("Speedup vs FLOPs ratio (o: LLM prefill, s: TTFT)", result)
    written.append(_save_figure(fig, title, out / "speedup_vs_flops.png"))

    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4.4), squeeze=False)
    for ax, run in zip(axes[0], runs):
        names, vision, llm, over, rest = [], [], [], [], []
        for e in run["strategies"]:
            m = e["metrics"]
            v, p, t = _med(m["vision_ms"]) or 0.0, _med(m["llm_prefill_ms"]) or 0.0, _med(m["ttft_ms"]) or 0.0
            o = (e.get("overhead") or {}).get("total_ms") or 0.0
            names.append(e["name"])
            vision.append(v)
            over.append(min(o, p))
            llm.append(max(0.0, p - o))
            rest.append(max(0.0, t - v - p))
        bottom = [0.0] * len(names)
        for values, label in ((vision, "vision tower"), (llm, "LLM prefill (model)"),
                              (over, "prunekit overhead"), (rest, "rest (embed, head, generate)")):
            ax.bar(names, values, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_ylabel("time to first token (ms)")
        ax.set_title(f"{run['model_shape']}, {run['frames']} frames", fontsize=10)
        ax.tick_params(axis="x", rotation=30, labelsize=8)
        ax.legend(fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    written.append(_save_figure(fig, _title("Time to first token, broken down", result), out / "ttft_breakdown.png"))
    return written


def _save_figure(fig, title: str, path: Path) -> Path:  # noqa: ANN001 - a matplotlib figure
    """Title, lay out, write at 130 dpi and close ``fig``; return ``path``."""
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
