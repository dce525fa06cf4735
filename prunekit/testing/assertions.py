"""Per-example assertions of prunekit's guarantees, for use inside your own ``@given`` tests; each
failure names the violated guarantee."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch

from prunekit.budget import Budget, visual_tokens_per_layer
from prunekit.errors import BudgetError
from prunekit.pipeline import Pipeline, Simulation
from prunekit.types import Segments, Stage, VideoLayout

__all__ = [
    "simulate_or_refuse", "assert_pipeline_guarantees", "assert_retention", "assert_kept_ids",
    "assert_segments_keep_tokens", "assert_counts", "assert_noop", "assert_segmentation", "assert_schedule",
    "assert_selection", "assert_sorted_tensor", "GUARANTEES",
]

GUARANTEES = {
    1: "guarantee 1 (realized retention within 1/N of the budget)",
    2: "guarantee 2 (kept ids sorted, unique, in range; text and layout tokens never dropped)",
    3: "guarantee 3 (every segment keeps >= 1 token at every stage, else BudgetError)",
    4: "guarantee 4 (exact counts, non-increasing across stages)",
    5: "guarantee 5 (retain = 1.0 is a no-op)",
}
SEGMENTATION = "segmentation guarantee (segments contiguous, strictly increasing, covering every frame)"
EXACT_COUNT = "exact-count guarantee (a stage returns exactly the requested number of distinct items)"
DETERMINISM = "determinism guarantee (same input and seed give the same result)"
PURITY = "purity guarantee (stages never modify their input tensors)"
MERGE = "merge guarantee (sources are dropped, targets are kept, every segment keeps a token)"
SORTED_TENSOR = "index-tensor guarantee (a selector returns a sorted 1-D integer torch.Tensor)"
FEASIBLE = "feasibility guarantee (BudgetError only for requests that cannot be met)"


# -- per-example assertions ---------------------------------------------------------------------


def minmax(x: torch.Tensor) -> torch.Tensor:
    span = x.max() - x.min()
    return (x - x.min()) / span if float(span) > 0 else torch.ones_like(x)


def fail(guarantee: str, detail: str) -> None:
    raise AssertionError(f"{guarantee} violated: {detail}")


def as_index(value: Any, what: str) -> torch.Tensor:
    try:
        out = torch.as_tensor(value).cpu()
    except Exception as exc:  # noqa: BLE001 - report any conversion failure as a contract breach
        raise AssertionError(f"{EXACT_COUNT} violated: {what} returned {type(value).__name__}, "
                             f"not indices ({exc})") from exc
    if out.dtype.is_floating_point or out.dtype == torch.bool or out.ndim != 1:
        fail(EXACT_COUNT, f"{what} must return a 1-D integer tensor, got dtype {out.dtype} "
                           f"and shape {tuple(out.shape)}")
    return out.long()


def assert_sorted_tensor(pick: Any, what: str = "selector") -> None:
    """The selector contract: a `torch.Tensor`, ascending (the runtime's kept ids stay in sequence order)."""
    if not isinstance(pick, torch.Tensor):
        fail(SORTED_TENSOR, f"{what} returned a {type(pick).__name__}; return a torch.Tensor of indices")
    if pick.numel() > 1 and bool((pick[1:] < pick[:-1]).any()):
        fail(SORTED_TENSOR, f"{what} returned unsorted indices {pick.tolist()[:10]}...; return "
                            "torch.sort(indices).values")


def assert_selection(pick: Any, keep: int, n: int, what: str = "selector") -> torch.Tensor:
    """``pick`` holds exactly ``keep`` distinct indices in ``[0, n)``; returns it as a sorted tensor."""
    idx = as_index(pick, what)
    if idx.numel() != keep or torch.unique(idx).numel() != keep:
        fail(EXACT_COUNT, f"{what} returned {idx.numel()} indices ({torch.unique(idx).numel()} "
                           f"distinct) for keep={keep} of n={n}")
    if keep and (int(idx.min()) < 0 or int(idx.max()) >= n):
        fail(EXACT_COUNT, f"{what} returned indices outside [0, {n}): {idx.tolist()[:20]}")
    return torch.sort(idx).values


def assert_segmentation(segments: Any, num_frames: int) -> None:
    """``segments`` are contiguous, start at frame 0, strictly increase and cover ``num_frames``."""
    if not isinstance(segments, Segments):
        fail(SEGMENTATION, f"segment() must return Segments, got {type(segments).__name__}")
    starts = list(segments.starts)
    if segments.num_frames != num_frames:
        fail(SEGMENTATION, f"segments cover {segments.num_frames} frames, the video has {num_frames}")
    if not starts or starts[0] != 0 or any(b <= a for a, b in pairwise(starts)) \
            or starts[-1] >= num_frames:
        fail(SEGMENTATION, f"starts {starts} for {num_frames} frames")
    bounds = segments.bounds
    if bounds[0][0] != 0 or bounds[-1][1] != num_frames or any(
            a[1] != b[0] or a[0] >= a[1] for a, b in pairwise([*bounds, (num_frames, None)])):
        fail(SEGMENTATION, f"bounds {bounds} do not tile 0..{num_frames}")
    seg = segments.segment_of_frame()
    if seg.numel() != num_frames or bool((seg[1:] - seg[:-1] < 0).any()) or int(seg[-1]) != len(starts) - 1:
        fail(SEGMENTATION, f"segment_of_frame {seg.tolist()} disagrees with starts {starts}")


def assert_schedule(stages: Sequence[Stage], n_visual: int, num_layers: int, budget: Budget | None,
                    min_keep: int = 1) -> None:
    """A scheduler's stages: layers strictly increasing in ``[0, L)``, counts in ``[min_keep, N]``,
    non-increasing, and (with a budget) realized retention within ``1/N`` of it."""
    layers = [s.layer for s in stages]
    keeps = [s.keep for s in stages]
    if any(b <= a for a, b in pairwise(layers)) or not all(0 <= layer < num_layers for layer in layers):
        fail(GUARANTEES[4], f"stage layers {layers} must be strictly increasing in [0, {num_layers})")
    if any(not isinstance(k, int) or not min_keep <= k <= n_visual for k in keeps):
        fail(GUARANTEES[3], f"stage counts {keeps} must be integers in [{min_keep}, {n_visual}]")
    if any(b > a for a, b in pairwise(keeps)):
        fail(GUARANTEES[4], f"stage counts {keeps} increase")
    if budget is None:
        return
    if budget.retain >= 1.0 and any(k < n_visual for k in keeps):
        fail(GUARANTEES[5], f"retain=1.0 planned pruning stages {list(stages)}")
    _check_retention(stages, n_visual, num_layers, budget)


def _check_retention(stages: Sequence[Stage], n: int, num_layers: int, budget: Budget) -> None:
    per_layer = visual_tokens_per_layer(sorted(stages, key=lambda s: s.layer), n, num_layers)
    realized = per_layer[0] / n if budget.mode == "input" else sum(per_layer) / (n * num_layers)
    if abs(realized - budget.retain) > 1.0 / n + 1e-12:
        fail(GUARANTEES[1], f"realized {budget.mode} retention {realized:.6f} vs target "
                             f"{budget.retain:.6f} (N={n}, L={num_layers}, stages={list(stages)})")


def simulate_or_refuse(pipeline: Pipeline, feats: torch.Tensor, layout: VideoLayout, num_layers: int,
                       attention: torch.Tensor | None = None,
                       encoder_hidden: torch.Tensor | None = None) -> Simulation | None:
    """Run `Pipeline.simulate`; return None when it raised a *justified* `BudgetError`.

    A refusal is justified when the schedule does not fit ``num_layers``, when ``mode="input"``
    meets a schedule without a stage before the LLM, or when keeping one token per segment at
    every stage already exceeds the target by more than one token. Any other refusal fails.
    ``encoder_hidden [F, T, D]`` feeds the pipeline's encoder stage (the tower's states at its layer).
    """
    try:
        return pipeline.simulate(feats, layout, num_layers, attention=attention, encoder_hidden=encoder_hidden)
    except BudgetError as exc:
        reason = _infeasible(pipeline, feats, layout, num_layers)
        if reason is None:
            fail(FEASIBLE, f"BudgetError for a feasible request (N={layout.num_visual}, L={num_layers}, "
                            f"budget={pipeline.budget}): {exc}")
        return None
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001 - a crash on a valid input breaks the contract
        raise AssertionError(f"pipeline {pipeline.config.name!r} raised {type(exc).__name__} on a valid "
                             f"input: {exc}") from exc


def _infeasible(pipeline: Pipeline, feats: torch.Tensor, layout: VideoLayout, num_layers: int) -> str | None:
    """Why the request cannot be met, or None if it can."""
    n = layout.num_visual
    try:
        shape = pipeline.scheduler.plan(n, num_layers, None, min_keep=1)
    except BudgetError:
        return "the schedule does not fit the model depth"
    budget = pipeline.budget
    if budget is None or budget.retain >= 1.0 or not shape:
        return None
    segments = len(pipeline.segmenter.segment(feats, layout))
    first = min(s.layer for s in shape)
    if budget.mode == "input":
        if first != 0:
            return "mode='input' with no stage before the LLM"
        return "fewer tokens than segments" if round(budget.retain * n) < segments else None
    lowest = (first * n + segments * (num_layers - first)) / (n * num_layers)
    return "below the one-token-per-segment floor" if budget.retain < lowest - 1.0 / n + 1e-9 else None


def assert_retention(sim: Simulation, layout: VideoLayout, num_layers: int, budget: Budget | None) -> None:
    """Guarantee 1, measured on the tokens actually kept (and the reported retention agrees)."""
    n = layout.num_visual
    actual = [Stage(s.layer, int(k.numel())) for s, k in zip(sim.stages, sim.kept, strict=True)]
    per_layer = visual_tokens_per_layer(actual, n, num_layers)
    measured = {"input": per_layer[0] / n, "layer_average": sum(per_layer) / (n * num_layers)}
    for mode, value in measured.items():
        if abs(sim.retention[mode] - value) > 1e-9:
            fail(GUARANTEES[1], f"reported {mode} retention {sim.retention[mode]} but {value} was kept")
    if budget is not None:
        _check_retention(actual, n, num_layers, budget)


def assert_kept_ids(sim: Simulation, layout: VideoLayout) -> None:
    """Guarantee 2: every stage's kept ids are sorted, unique, in range and nested in the previous
    stage's; pruning only ever drops visual tokens (never text or layout tokens)."""
    n = layout.num_visual
    previous = torch.arange(n)
    visual_positions = set(layout.token_index.flatten().tolist())
    for i, kept in enumerate(sim.kept):
        k = kept.cpu()
        if k.ndim != 1 or k.dtype != torch.long:
            fail(GUARANTEES[2], f"stage {i} kept ids have dtype {k.dtype} and shape {tuple(k.shape)}")
        if k.numel() and (bool((k[1:] <= k[:-1]).any()) or int(k.min()) < 0 or int(k.max()) >= n):
            fail(GUARANTEES[2], f"stage {i} kept ids are not sorted, unique and in [0, {n}): "
                                 f"{k.tolist()[:20]}")
        if not bool(torch.isin(k, previous).all()):
            fail(GUARANTEES[2], f"stage {i} keeps ids that an earlier stage dropped")
        dropped = layout.token_index.flatten()[~torch.isin(torch.arange(n), k)]
        touches_layout = bool(torch.isin(dropped, layout.layout_index).any())
        if touches_layout or not set(dropped.tolist()) <= visual_positions:
            fail(GUARANTEES[2], f"stage {i} dropped a text or layout token")
        previous = k


def assert_segments_keep_tokens(sim: Simulation, layout: VideoLayout) -> None:
    """Guarantee 3: every segment holds at least one kept token after every stage."""
    seg_of_frame = sim.segments.segment_of_frame()
    for i, kept in enumerate(sim.kept):
        present = torch.bincount(seg_of_frame[layout.frame_of(kept.cpu())], minlength=len(sim.segments))
        if bool((present == 0).any()):
            empty = torch.nonzero(present == 0).flatten().tolist()
            fail(GUARANTEES[3], f"after stage {i} ({sim.stages[i]}) segments {empty} of "
                                 f"{sim.segments.starts} have no token")


def assert_counts(sim: Simulation, n_visual: int) -> None:
    """Guarantee 4: stage ``i`` keeps exactly ``stages[i].keep`` tokens; counts never increase."""
    counts = [int(k.numel()) for k in sim.kept]
    planned = [s.keep for s in sim.stages]
    if counts != planned:
        fail(GUARANTEES[4], f"planned {planned} tokens but kept {counts}")
    if any(b > a for a, b in pairwise([n_visual, *counts])):
        fail(GUARANTEES[4], f"counts {counts} increase (N={n_visual})")
    layers = [s.layer for s in sim.stages]
    if any(b <= a for a, b in pairwise(layers)):
        fail(GUARANTEES[4], f"stage layers {layers} are not strictly increasing")


def assert_noop(sim: Simulation) -> None:
    """Guarantee 5: nothing is pruned (no stage, retention 1)."""
    if sim.stages or sim.kept or sim.retention != {"input": 1.0, "layer_average": 1.0}:
        fail(GUARANTEES[5], f"retain=1.0 planned {sim.stages}, retention {sim.retention}")


def assert_pipeline_guarantees(pipeline: Pipeline, feats: torch.Tensor, layout: VideoLayout,
                               num_layers: int, attention: torch.Tensor | None = None) -> Simulation | None:
    """Simulate once and check guarantees 1-5 plus determinism; None for a justified refusal."""
    sim = simulate_or_refuse(pipeline, feats, layout, num_layers, attention)
    if sim is None:
        return None
    budget = pipeline.budget
    assert_kept_ids(sim, layout)
    assert_counts(sim, layout.num_visual)
    assert_segments_keep_tokens(sim, layout)
    assert_retention(sim, layout, num_layers, budget)
    if budget is not None and budget.retain >= 1.0:
        assert_noop(sim)
    again = Pipeline(pipeline.config).simulate(feats, layout, num_layers, attention=attention)
    if again.segments != sim.segments or len(again.kept) != len(sim.kept) or any(
            not torch.equal(a, b) for a, b in zip(again.kept, sim.kept, strict=True)):
        fail(DETERMINISM, f"two runs of {pipeline.config.name!r} with seed {pipeline.config.seed} differ")
    return sim
