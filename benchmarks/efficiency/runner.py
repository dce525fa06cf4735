"""The efficiency benchmark: unpruned vs pruning strategies, side by side, in one process.

For every model shape it builds the real architecture from its config with random weights (bf16
on a GPU, float32 on the CPU), feeds one processor-free video (scene-structured features, see
`scenes`), and for the unpruned model and each strategy records:

* analytic prefill FLOPs (FastV's formula, text counted) and their ratio to the unpruned model;
* vision-tower time and LLM prefill time (CUDA events around the modules, no syncs inside);
* time to first token (``generate(max_new_tokens=1)``, host wall clock around a synchronised call);
* decode tokens/s over ``new_tokens`` generated tokens (events from the first decode step to the end);
* peak GPU memory (``torch.cuda.max_memory_allocated`` over a full generate);
* with ``decode_runs``: decode per step (GPU timeline and host time apart, see `decode`), every row
  alternated within each run, and the speedup with a 95% interval;
* the zero-overhead limit: the strategy's realized per-layer token counts run through the same
  language model by plain slicing (see `limit`), and ``of limit`` = limit ms / LLM prefill ms;
* prunekit's own overhead per part (segmentation, merge, relevance, allocation, DPP, selector, and
  the hook totals that include gathers and masks), CUDA events, in separate profiled runs.

Medians over ``repeats`` runs after ``warmup`` runs. Results: ``efficiency.json`` (records with GPU,
versions and fingerprints), ``efficiency.md`` (tables) and plots (see `report`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from prunekit.benchmarks.strategy_spec import UNPRUNED, StrategySpec, parse_strategies

from . import decode, limit
from .probes import PARTS, Mark, ModuleProbe, instrument, merged_snapshot, sync
from .scenes import SceneFeatures
from .shapes import SHAPES, ModelShape, build, get_shape, make_inputs

OV32_HIERAVID30_DPP_STAGES = ((3136, 2195), (2195, 1537), (1537, 659))  # LLaVA-OV 32 x 196, after the merge
DEFAULT_STRATEGIES = ("hieravid-30", "hieravid-20", "hieravid-10", "fastv", "visionzip")


@dataclass
class EfficiencyConfig:
    """What to run. ``strategies`` are preset names, optionally ``name@budget`` (layer-averaged)."""

    model_shapes: list[str] = field(default_factory=lambda: ["tiny"])
    frames: int | None = None
    strategies: list[str] = field(default_factory=lambda: list(DEFAULT_STRATEGIES))
    budgets: list[float] = field(default_factory=list)
    repeats: int = 10
    decode_repeats: int | None = None
    profile_repeats: int = 3
    warmup: int = 2
    new_tokens: int = 64
    batch: int = 1
    scene_frames: int | None = None
    device: str = "auto"
    dpp_check: bool = True
    dpp_bench: bool = True
    seed: int = 0
    out: str | None = None
    progress: bool = True
    torch_profile: int = 0
    torch_profile_only: list[str] = field(default_factory=list)
    sdpa_backend: str = "auto"  # auto, flash, efficient, cudnn, math: pin torch's SDPA kernel for every row
    gc_freeze: bool = False  # gc.freeze() after building the model: collections skip its objects
    fast_pooling: bool = False  # LLaVA-OV: pool on the channels-last view (bit-identical), for every row
    decode_runs: int = 0  # alternated decode runs per row (0: skip); see `decode`
    decode_tokens: int = 128  # new tokens per alternated decode run
    decode_strategies: list[str] = field(default_factory=list)  # rows of the decode runs (empty: all)
    limit_repeats: int | None = None  # runs of each strategy's zero-overhead limit (None: repeats; 0: skip)


SDPA_BACKENDS = ("auto", "flash", "efficient", "cudnn", "math")


def sdpa_context(name: str) -> Any:
    """A context pinning torch's scaled-dot-product-attention kernel (``auto``: torch's own choice)."""
    import contextlib

    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
               "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}[name]
    return sdpa_kernel(backend)




# -- environment ------------------------------------------------------------------------------------
def environment(device: torch.device) -> dict[str, Any]:
    """Versions and hardware of this run."""
    import transformers

    import prunekit
    from prunekit.ops import dpp_triton

    env = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "prunekit": prunekit.__version__,
        "triton": getattr(dpp_triton.triton, "__version__", None) if dpp_triton.HAS_TRITON else None,
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "command": " ".join(sys.argv),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   gpu_memory_gib=round(props.total_memory / 2**30, 1), multiprocessors=props.multi_processor_count)
    else:
        env.update(gpu=None, threads=torch.get_num_threads())
    return env


def fingerprint(obj: Any) -> str:
    """Short sha256 of a JSON-able object (or a transformers config)."""
    text = obj.to_json_string(use_diff=False) if hasattr(obj, "to_json_string") else json.dumps(obj, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# -- measurement ------------------------------------------------------------------------------------
def _median(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(vals) if vals else None


def _summary(values: Sequence[float]) -> dict[str, Any]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return {"median": None, "min": None, "max": None, "runs": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": [round(v, 4) for v in vals]}


class Probes:
    """Event probes on the vision module and the language model of ``model``."""

    def __init__(self, model: torch.nn.Module, cuda: bool) -> None:
        inner = getattr(model, "model", model)
        vision = getattr(inner, "vision_tower", None) or getattr(inner, "visual", None)
        self.cuda = cuda
        self.vision = ModuleProbe(vision, cuda) if vision is not None else None
        self.lm = ModuleProbe(inner.language_model, cuda)
        self.forward = ModuleProbe(model, cuda)

    def _all(self) -> list[ModuleProbe]:
        return [p for p in (self.vision, self.lm, self.forward) if p is not None]

    def reset(self) -> None:
        for p in self._all():
            p.reset()

    def remove(self) -> None:
        for p in self._all():
            p.remove()


def generate_once(model: torch.nn.Module, inputs: dict, new_tokens: int, probes: Probes) -> dict[str, float]:
    """One synchronised ``generate``; returns wall, vision, LLM prefill, decode and memory figures."""
    cuda = probes.cuda
    probes.reset()
    sync(cuda)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = Mark(cuda)
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    end = Mark(cuda)
    sync(cuda)
    wall = start.host_until(Mark(False))
    calls = probes.lm.calls
    out = {
        "wall_ms": wall,
        "vision_ms": sum(c.ms() for c in probes.vision.calls) if probes.vision is not None else float("nan"),
        "llm_prefill_ms": calls[0].ms() if calls else float("nan"),
        "forward_ms": probes.forward.calls[0].ms() if probes.forward.calls else float("nan"),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
    }
    if new_tokens > 1 and len(calls) >= 2:
        decode_ms = calls[1].start.until(end)
        out["decode_ms"] = decode_ms
        out["decode_tokens_per_s"] = (len(calls) - 1) / decode_ms * 1e3
        out["first_token_ms_events"] = start.until(calls[1].start)
    return out


def analytic_flops(stats: Any, seq_len: int, num_layers: int, hidden: int, intermediate: int,
                   batch: int = 1) -> float:
    """Prefill FLOPs (FastV's formula) of the latest forward, summed over the batch.

    ``stats`` None (the unpruned model): ``batch`` rows of ``seq_len`` tokens each, so that the ratio
    of a pruned entry (summed over its samples) to the unpruned one is a per-sample ratio at any batch.
    """
    from prunekit.budget import visual_tokens_per_layer
    from prunekit.flops import flops
    from prunekit.types import Stage

    if stats is None:
        return batch * flops([seq_len] * num_layers, hidden, intermediate)
    total = 0.0
    for s in stats.samples:
        if not s.stages:
            total += flops([s.n_visual + s.n_text] * num_layers, hidden, intermediate)
            continue
        per_layer = visual_tokens_per_layer([Stage(layer, keep) for layer, keep in s.stages], s.n_visual, num_layers)
        total += flops([v + s.n_text for v in per_layer], hidden, intermediate)
    return total


def _progress(total: int, enabled: bool, desc: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    if tqdm is None or not enabled:
        return _NullBar()
    return tqdm(total=total, desc=desc, leave=True, dynamic_ncols=True, file=sys.stderr)


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


def run_shape(cfg: EfficiencyConfig, shape: ModelShape, device: torch.device, log: Any = print) -> dict[str, Any]:
    """Benchmark every strategy on one model shape; returns the shape's record."""
    import prunekit


    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    frames = cfg.frames or shape.frames
    scene_frames = shape.scene_frames if cfg.scene_frames is None else cfg.scene_frames
    specs = parse_strategies(cfg.strategies, cfg.budgets)
    available = set(prunekit.presets.list())
    missing = [s.strategy for s in specs if s.strategy != UNPRUNED and s.strategy not in available]
    if missing:
        log(f"skipping unknown presets {missing} (known: {sorted(available)})")
        specs = [s for s in specs if s.strategy == UNPRUNED or s.strategy in available]

    sync(cuda)
    model = build(shape, device, dtype, seed=cfg.seed)
    weights_gib = torch.cuda.memory_allocated() / 2**30 if cuda else float("nan")
    fast_pooling = cfg.fast_pooling and shape.family == "llava_onevision"
    if fast_pooling:
        from prunekit.speedups import fast_video_pooling

        fast_video_pooling(model)
    inputs = make_inputs(model, shape, frames, device, dtype, batch=cfg.batch, seed=cfg.seed)
    if cfg.gc_freeze:
        import gc

        gc.collect()
        gc.freeze()
    text_cfg = model.config.get_text_config()
    seq_len = int(inputs["input_ids"].shape[1])
    temporal = frames if shape.family.startswith("llava") else (frames + 1) // 2
    scenes = SceneFeatures(model, scene_frames, temporal * cfg.batch, seed=cfg.seed)
    probes = Probes(model, cuda)
    decode_repeats = cfg.repeats if cfg.decode_repeats is None else cfg.decode_repeats
    per_strategy = cfg.warmup + cfg.repeats + decode_repeats + cfg.profile_repeats
    bar = _progress(per_strategy * len(specs), cfg.progress, f"{shape.key} x{frames}f")
    record: dict[str, Any] = {
        "model_shape": shape.key, "family": shape.family, "size": shape.size, "description": shape.description,
        "frames": frames, "scene_frames": scene_frames, "batch": cfg.batch, "sequence_length": seq_len,
        "fast_pooling": fast_pooling,
        "dtype": str(dtype).removeprefix("torch."), "config_fingerprint": fingerprint(model.config),
        "num_layers": text_cfg.num_hidden_layers, "weights_gib": weights_gib, "new_tokens": cfg.new_tokens,
        "repeats": cfg.repeats, "decode_repeats": decode_repeats, "warmup": cfg.warmup, "strategies": [],
    }
    for spec in specs:
        bar.set_postfix_str(spec.label)
        handle = None
        if spec.strategy != UNPRUNED:
            handle = prunekit.apply(model, spec.strategy, budget=spec.budget)
        entry: dict[str, Any] = {"name": spec.label, "preset": spec.strategy, "budget": spec.budget}
        try:
            measure_strategy(cfg, model, inputs, handle, probes, entry, spec, record, bar, cuda, log)
        except Exception as exc:  # noqa: BLE001 - keep the other strategies' results
            import traceback

            entry["error"] = f"{type(exc).__name__}: {exc}"
            log(f"{shape.key} {spec.label}: FAILED: {entry['error']}\n{traceback.format_exc()}")
        finally:
            if handle is not None:
                handle.remove()
        if "metrics" not in entry:
            continue
        record["strategies"].append(entry)
        m = entry["metrics"]
        log(f"{shape.key} {spec.label:>14}: TTFT {m['ttft_ms']['median']:.1f} ms (forward "
            f"{m['prefill_forward_ms']['median']:.1f}), LLM prefill "
            f"{m['llm_prefill_ms']['median']:.1f} ms, vision {m['vision_ms']['median']:.1f} ms, decode "
            f"{(m['decode_tokens_per_s']['median'] or float('nan')):.1f} tok/s, peak {m['peak_gib']:.2f} GiB"
            + (f", overhead {entry['overhead']['total_ms']:.2f} ms" if "overhead" in entry else ""))
    bar.close()
    probes.remove()
    if cfg.decode_runs > 0:
        record["decode"] = measure_decode_rows(cfg, model, inputs, specs, cuda, log)
    scenes.remove()
    limit_repeats = cfg.repeats if cfg.limit_repeats is None else cfg.limit_repeats
    if limit_repeats > 0:
        measure_limit_rows(model, record, limit_repeats, cfg.warmup, cuda, log)
    _finish_ratios(record)
    del model
    if cuda:
        torch.cuda.empty_cache()
    return record


def measure_strategy(cfg: EfficiencyConfig, model: torch.nn.Module, inputs: dict, handle: Any, probes: Probes,
                     entry: dict[str, Any], spec: StrategySpec, record: dict[str, Any], bar: Any, cuda: bool,
                     log: Any) -> None:
    """Fill ``entry`` with the measurements of one strategy (``handle`` None: the unpruned model)."""
    from . import diversitycheck, dppcheck

    text_cfg = model.config.get_text_config()
    seq_len = record["sequence_length"]
    decode_repeats = record["decode_repeats"]
    shape_key = record["model_shape"]
    for _ in range(cfg.warmup):
        generate_once(model, inputs, cfg.new_tokens, probes)
        bar.update()
    first = []
    for _ in range(cfg.repeats):
        first.append(generate_once(model, inputs, 1, probes))
        bar.update()
    full = []
    for _ in range(decode_repeats):
        full.append(generate_once(model, inputs, cfg.new_tokens, probes))
        bar.update()
    stats = handle.stats() if handle is not None else None
    entry["metrics"] = {
        "ttft_ms": _summary([r["wall_ms"] for r in first]),
        "vision_ms": _summary([r["vision_ms"] for r in first]),
        "llm_prefill_ms": _summary([r["llm_prefill_ms"] for r in first]),
        "prefill_forward_ms": _summary([r["forward_ms"] for r in first]),
        "decode_tokens_per_s": _summary([r.get("decode_tokens_per_s") for r in full]),
        "decode_ms": _summary([r.get("decode_ms") for r in full]),
        "generate_ms": _summary([r["wall_ms"] for r in full]),
        "peak_gib": max((r["peak_gib"] for r in first + full), default=float("nan")),
    }
    entry["flops"] = analytic_flops(stats, seq_len, text_cfg.num_hidden_layers, text_cfg.hidden_size,
                                    text_cfg.intermediate_size, batch=record["batch"])
    entry["tokens_per_layer"] = limit.tokens_per_layer(stats, seq_len, text_cfg.num_hidden_layers)
    if handle is not None:
        entry["pipeline_fingerprint"] = handle.pipeline.config.fingerprint()
        entry["stats"] = stats.to_dict() if stats is not None else None
        entry["overhead"] = profile_overhead(model, inputs, handle, probes, cfg.profile_repeats, cuda, bar)
        if cfg.dpp_check and cuda and hasattr(handle.pipeline.selector, "select_segments") and \
                type(handle.pipeline.selector).__name__ == "ConditionalDPPSelector":
            with dppcheck.capture_selector_calls(handle) as calls:
                generate_once(model, inputs, 1, probes)
            entry["dpp_check"] = dppcheck.compare_captured(handle, calls)
            ok = all(c["all_identical"] for c in entry["dpp_check"])
            log(f"[dpp-check] {shape_key} {spec.label}: fast path vs torch path on the run's own "
                f"{len(calls)} selector calls: {'IDENTICAL' if ok else 'DIFFERENT'} "
                f"{[(c['segments'], c['identical_segments']) for c in entry['dpp_check']]}")
        if cfg.dpp_check and diversitycheck.applies(handle):
            with diversitycheck.capture_select_calls(handle) as calls:
                generate_once(model, inputs, 1, probes)
            entry["diversity_check"] = diversitycheck.compare(calls, cuda)
            log(f"[diversity-check] {shape_key} {spec.label}: fast path vs torch loop on the run's own "
                f"{len(calls)} selector calls"
                + ("" if all(c["fast_path"] for c in entry["diversity_check"])
                   else " (no Triton here: torch both sides)")
                + ": "
                + ", ".join(f"{c['tokens']}->{c['keep']} {'IDENTICAL' if c['identical'] else 'DIFFERENT'} "
                            f"({c['torch_ms']:.2f} -> {c['fast_ms']:.2f} ms)" for c in entry["diversity_check"]))
    else:
        bar.update(cfg.profile_repeats)
    if cfg.torch_profile and (not cfg.torch_profile_only or spec.label in cfg.torch_profile_only):
        entry["torch_profile"] = torch_profile(model, inputs, cfg.torch_profile, cuda)


def measure_decode_rows(cfg: EfficiencyConfig, model: torch.nn.Module, inputs: dict,
                        specs: Sequence[StrategySpec], cuda: bool, log: Any) -> dict[str, Any]:
    """Alternated per-step decode timings of every row (see `decode`); the model must carry no hooks."""
    import prunekit

    def prepare(spec: StrategySpec) -> Any:
        return None if spec.strategy == UNPRUNED else prunekit.apply(model, spec.strategy, budget=spec.budget)

    chosen = set(cfg.decode_strategies)
    rows = {spec.label: (lambda spec=spec: prepare(spec)) for spec in specs
            if not chosen or spec.strategy == UNPRUNED or spec.label in chosen}
    warmup = 1 if cfg.warmup > 0 else 0
    bar = _progress((warmup + cfg.decode_runs) * len(rows), cfg.progress, "decode, rows alternated")
    per_run = decode.measure_alternated(model, inputs, rows, cfg.decode_tokens, cfg.decode_runs, warmup, cuda,
                                        progress=bar.update)
    bar.close()
    summary = decode.summarize(per_run, UNPRUNED, cfg.batch)
    for name, row in summary.items():
        sp = row["speedup"]
        log(f"decode {name:>14}: step {row['step_ms']:.2f} ms (host {row['host_ms']:.2f} ms, forward on the GPU "
            f"timeline {row['forward_ms']:.2f} ms), speedup {sp['speedup']:.3f}x"
            + (f" [{sp['ci_low']:.3f}, {sp['ci_high']:.3f}]" if sp["ci_low"] is not None else ""))
    return {"new_tokens": cfg.decode_tokens, "runs": cfg.decode_runs, "warmup": warmup,
            "timer": "cuda events" if cuda else "host clock", "rows": summary}


def measure_limit_rows(model: torch.nn.Module, record: dict[str, Any], repeats: int, warmup: int, cuda: bool,
                       log: Any) -> None:
    """Time every entry's zero-overhead limit (``entry["limit"]``), the rows alternated; the model must
    carry no prunekit hooks."""
    entries = [e for e in record["strategies"] if e.get("tokens_per_layer")]
    schedules = {e["name"]: e["tokens_per_layer"] for e in entries}
    times = limit.measure_limits(model, schedules, record["batch"], repeats, max(1, warmup), cuda)
    for e in entries:
        e["limit"] = {"llm_prefill_ms": _summary(times[e["name"]])}
        log(f"{record['model_shape']} {e['name']:>14}: limit {e['limit']['llm_prefill_ms']['median']:.2f} ms "
            f"(per-layer tokens {_runs(e['tokens_per_layer'])})")


def _runs(values: Sequence[int]) -> str:
    """``[100, 100, 50, 50, 50]`` -> ``"100x2, 50x3"``."""
    out: list[list[int]] = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return ", ".join(f"{v}x{n}" for v, n in out)


def profile_overhead(model: torch.nn.Module, inputs: dict, handle: Any, probes: Probes, repeats: int, cuda: bool,
                     bar: Any) -> dict[str, Any]:
    """Median per-part time of prunekit's own work over ``repeats`` profiled prefill runs."""
    per_run: list[dict[str, float]] = []
    host_runs: list[dict[str, float]] = []
    with instrument(handle, cuda) as timer:
        for _ in range(repeats):
            if timer is not None:
                timer.clear()
            generate_once(model, inputs, 1, probes)
            bar.update()
            if timer is not None:
                gpu, host = merged_snapshot(timer)
                per_run.append(gpu)
                host_runs.append(host)
    if not per_run:
        return {"total_ms": float("nan"), "parts_ms": {}, "available": False}
    parts = {p: _median([r.get(p, 0.0) for r in per_run]) for p in PARTS}
    host = {p: _median([r.get(p, 0.0) for r in host_runs]) for p in PARTS}
    total = (parts["hooks_prefill"] or 0.0) + (parts["hooks_layers"] or 0.0)
    known = sum(parts[p] or 0.0 for p in ("segment", "summarize", "merge", "relevance", "allocate", "selector"))
    parts["other"] = max(0.0, total - known)  # gathers, masks, index bookkeeping, syncs
    return {"total_ms": total, "parts_ms": parts, "host_ms": host, "available": True,
            "runs_total_ms": [r.get("hooks_prefill", 0.0) + r.get("hooks_layers", 0.0) for r in per_run]}


def torch_profile(model: torch.nn.Module, inputs: dict, new_tokens: int, cuda: bool, rows: int = 30) -> str:
    """``torch.profiler`` summary of one ``generate(new_tokens)``: top ops by self CPU time (and, on a
    GPU, by GPU time), and the host-sync and launch counts (what bounds a launch-bound or sync-bound
    region)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof, torch.inference_mode():
        model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    sync(cuda)
    averages = prof.key_averages()
    counts = {e.key: e.count for e in averages if e.key in (
        "cudaStreamSynchronize", "cudaDeviceSynchronize", "aten::item", "aten::_local_scalar_dense",
        "cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx", "aten::nonzero", "cudaMemcpyAsync")}
    table = averages.table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=60)
    if not cuda:
        return f"counts: {counts}\n{table}"
    gpu = averages.table(sort_by="self_cuda_time_total", row_limit=rows // 2, max_name_column_width=60)
    return f"counts: {counts}\nby host time:\n{table}\nby GPU time:\n{gpu}"


def _finish_ratios(record: dict[str, Any]) -> None:
    """Add speedups and ratios against the unpruned entry of the same record."""
    base = next((e for e in record["strategies"] if e["name"] == UNPRUNED), None)
    if base is None:
        return
    bm = base["metrics"]
    for e in record["strategies"]:
        m = e["metrics"]

        def ratio(num: Any, den: Any) -> float | None:
            return num / den if num and den else None

        limit_ms = (e.get("limit") or {}).get("llm_prefill_ms", {}).get("median")

        e["ratios"] = {
            "flops_ratio": ratio(e["flops"], base["flops"]),
            "llm_prefill_speedup": ratio(bm["llm_prefill_ms"]["median"], m["llm_prefill_ms"]["median"]),
            "of_limit": ratio(limit_ms, m["llm_prefill_ms"]["median"]),
            "limit_speedup": ratio(bm["llm_prefill_ms"]["median"], limit_ms),
            "ttft_speedup": ratio(bm["ttft_ms"]["median"], m["ttft_ms"]["median"]),
            "decode_speedup": ratio(m["decode_tokens_per_s"]["median"], bm["decode_tokens_per_s"]["median"]),
            "peak_memory_ratio": ratio(m["peak_gib"], bm["peak_gib"]),
            "overhead_share_of_unpruned_prefill": ratio(e.get("overhead", {}).get("total_ms"),
                                                         bm["llm_prefill_ms"]["median"]),
        }


def run_dpp_section(device: torch.device, log: Any, stage_sizes: list[tuple[int, int]]) -> dict[str, Any]:
    """Synthetic correctness checks and timings of the DPP backends at the given stage sizes."""
    from . import dppcheck

    out: dict[str, Any] = {"stages": [f"{a}->{b}" for a, b in stage_sizes]}
    segs = [1, 4, 8, 16, 32]
    out["check"] = dppcheck.synthetic_check(device, stage_sizes, segs, programs=[None, 1])
    bad = [r for r in out["check"] if r["identical_segments"] != r["of"] and not r["mismatch_traces_greedy_valid"]]
    timeouts = sum(r["barrier_timeouts"] for r in out["check"])
    log(f"[dpp-check] synthetic: {sum(r['identical_segments'] for r in out['check'])}/"
        f"{sum(r['of'] for r in out['check'])} segments identical to the torch path; "
        f"{len(bad)} configurations with non-greedy picks; {timeouts} barrier timeouts")
    for r in out["check"]:
        log(f"   {r['stage']:>11} S={r['segments']:>2} P={r['programs']:>3} W={r['width']:>4}: "
            f"{r['identical_segments']}/{r['of']} identical, worst gap {r['worst_relative_gap']:.2e}, "
            f"timeouts {r['barrier_timeouts']}")
    out["timings"] = dppcheck.dpp_timings(device, stage_sizes, segs, programs=[None, 1, 8, 16, 32, 64])
    for r in out["timings"]:
        log("   " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    return out


def hieravid_dpp_stage_sizes(record: dict[str, Any]) -> list[tuple[int, int]]:
    """In-LLM (DPP) stage sizes of the first HieraVid entry of a record: [(n_in, n_keep), ...]."""
    for e in record["strategies"]:
        if e["preset"].startswith("hieravid") and e.get("stats"):
            stages = e["stats"]["samples"][0]["stages"]
            return [(a[1], b[1]) for a, b in zip(stages, stages[1:])]
    return []


def run_efficiency(cfg: EfficiencyConfig, log: Any = print) -> dict[str, Any]:
    """Run the benchmark; write JSON, markdown and plots to ``cfg.out`` (if set); return the records."""
    from . import report

    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    result: dict[str, Any] = {"environment": {**environment(device), "sdpa_backend": cfg.sdpa_backend,
                                              "gc_freeze": cfg.gc_freeze, "fast_pooling": cfg.fast_pooling},
                              "config": asdict(cfg), "runs": []}
    for key in cfg.model_shapes:
        try:
            with sdpa_context(cfg.sdpa_backend):
                record = run_shape(cfg, get_shape(key), device, log)
        except Exception as exc:  # noqa: BLE001 - keep the other shapes' results
            import traceback

            log(f"{key}: FAILED: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            result.setdefault("errors", []).append({"model_shape": key, "error": f"{type(exc).__name__}: {exc}"})
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        result["runs"].append(record)
        if cfg.out:
            write_outputs(result, Path(cfg.out), report, partial=True)
    if cfg.dpp_bench and device.type == "cuda":
        from prunekit.ops import dpp_triton

        if dpp_triton.available(torch.empty(0, device=device)):
            sizes = next((s for s in (hieravid_dpp_stage_sizes(r) for r in result["runs"]) if s), [])
            try:
                result["dpp"] = run_dpp_section(device, log, sizes or list(OV32_HIERAVID30_DPP_STAGES))
            except Exception as exc:  # noqa: BLE001
                import traceback

                log(f"DPP section FAILED: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                result.setdefault("errors", []).append({"dpp": f"{type(exc).__name__}: {exc}"})
    if cfg.out:
        write_outputs(result, Path(cfg.out), report)
    log(report.markdown(result))
    return result


def write_outputs(result: dict[str, Any], out: Path, report: Any, partial: bool = False) -> None:
    """``efficiency.json``, ``efficiency.md`` and the plots under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "efficiency.json").write_text(json.dumps(result, indent=1, default=_jsonable))
    (out / "efficiency.md").write_text(report.markdown(result))
    profiles = [f"== {run['model_shape']} {e['name']} ==\n{e['torch_profile']}" for run in result["runs"]
                for e in run["strategies"] if e.get("torch_profile")]
    if profiles:
        (out / "torch_profiles.txt").write_text("\n\n".join(profiles))
    if not partial:
        report.plots(result, out)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


# -- command line -------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by ``prunekit bench efficiency`` and ``python -m``)."""
    parser.add_argument("--model-shape", default="tiny",
                        help=f"comma-separated model shapes: {', '.join(SHAPES)} (default: tiny)")
    parser.add_argument("--frames", type=int, default=None, help="frames per video (default: the shape's)")
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES),
                        help="comma-separated presets, optionally name@budget; the unpruned model always runs")
    parser.add_argument("--budgets", default="", help="comma-separated layer-averaged budgets applied to "
                        "every strategy without an explicit @budget (default: each preset's own)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per strategy (median reported)")
    parser.add_argument("--decode-repeats", type=int, default=None, help="runs with decoding (default: --repeats)")
    parser.add_argument("--profile-repeats", type=int, default=3, help="profiled runs for prunekit's overhead")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per strategy first")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated for the decode speed")
    parser.add_argument("--batch", type=int, default=1, help="videos per batch")
    parser.add_argument("--scene-frames", type=int, default=None,
                        help="frames per synthetic scene (0: the random model's own features; default: the shape's)")
    parser.add_argument("--device", default="auto", help="auto, cuda, cpu")
    parser.add_argument("--no-dpp-check", action="store_true", help="skip the fast-vs-torch DPP comparison")
    parser.add_argument("--no-dpp-bench", action="store_true", help="skip the DPP micro-benchmark (GPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for efficiency.json, efficiency.md and plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--torch-profile", type=int, default=0, metavar="TOKENS",
                        help="also record a torch.profiler summary of one generate(TOKENS) per strategy")
    parser.add_argument("--torch-profile-only", default="", help="comma-separated strategies to profile "
                        "with --torch-profile (default: all)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() after building the model, so Python's collections skip its objects")
    parser.add_argument("--sdpa-backend", default="auto", choices=SDPA_BACKENDS,
                        help="pin torch's attention kernel for every row (e.g. to compare decode without cuDNN's "
                        "per-shape plans)")
    parser.add_argument("--decode-runs", type=int, default=0,
                        help="alternated decode runs per row, each step timed (GPU timeline and host apart) with "
                        "a 95%% interval on the speedup (0: skip; 5 or more to tell 5%% apart)")
    parser.add_argument("--decode-strategies", default="", help="comma-separated rows of the --decode-runs "
                        "measurement (default: every strategy; the unpruned model always runs)")
    parser.add_argument("--decode-tokens", type=int, default=128, help="new tokens per alternated decode run")
    parser.add_argument("--limit-repeats", type=int, default=None,
                        help="runs of each strategy's zero-overhead limit (its per-layer token counts by plain "
                        "slicing; default: --repeats; 0: skip)")
    parser.add_argument("--fast-pooling", action="store_true",
                        help="LLaVA-OV: pool video features on the channels-last view, bit-identical and ~200x "
                        "faster on CUDA (prunekit.speedups), for the unpruned model and every strategy")


def config_from_args(args: argparse.Namespace) -> EfficiencyConfig:
    """`EfficiencyConfig` from parsed `add_arguments` options."""
    split = lambda s: [x.strip() for x in (s or "").split(",") if x.strip()]  # noqa: E731
    return EfficiencyConfig(
        model_shapes=split(args.model_shape), frames=args.frames, strategies=split(args.strategies),
        budgets=[float(b) for b in split(args.budgets)], repeats=args.repeats, decode_repeats=args.decode_repeats,
        profile_repeats=args.profile_repeats, warmup=args.warmup, new_tokens=args.new_tokens, batch=args.batch,
        scene_frames=args.scene_frames, device=args.device, dpp_check=not args.no_dpp_check,
        dpp_bench=not args.no_dpp_bench, seed=args.seed, out=args.out, progress=not args.no_progress,
        torch_profile=args.torch_profile, torch_profile_only=split(args.torch_profile_only),
        sdpa_backend=args.sdpa_backend, gc_freeze=args.gc_freeze, fast_pooling=args.fast_pooling,
        limit_repeats=args.limit_repeats, decode_runs=args.decode_runs, decode_tokens=args.decode_tokens,
        decode_strategies=split(args.decode_strategies))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.efficiency`` entry point."""
    parser = argparse.ArgumentParser(prog="efficiency", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    run_efficiency(config_from_args(args))
    return 0
