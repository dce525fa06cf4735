"""Hypothesis strategies and conformance checks for prunekit stages, presets and plugins.

Plugin authors test their own stages against the same guarantees as the built-ins:

```python
from prunekit.testing import check_frame_selector, check_preset

def test_my_selector_conforms():
    check_frame_selector(MySelector)

def test_my_preset_conforms():
    check_preset("acme.topk-30")
```

Needs ``hypothesis`` (``pip install "prunekit[test]"``). Each ``check_*`` runs a Hypothesis search
(settings from the active profile, see `register_profiles`) and raises `AssertionError` naming the
violated guarantee. Do not call them from inside a ``@given`` test; use the ``assert_*`` helpers and
the strategies there instead.

The guarantees (architecture §4):

1. realized retention is within one token of the target (``|realized - retain| <= 1/N``);
2. kept ids are sorted, unique and in range; text and layout tokens are never dropped;
3. every segment keeps at least one token at every stage (when feasible; else `BudgetError`);
4. counts are exact and non-increasing across stages;
5. ``retain = 1.0`` is an exact no-op.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from prunekit.budget import Budget, visual_tokens_per_layer
from prunekit.errors import BudgetError
from prunekit.interfaces import (
    BudgetAllocator,
    Component,
    EncoderStage,
    FrameSelector,
    LayerScheduler,
    Segmenter,
    StageConfig,
    TokenMerger,
)
from prunekit.pipeline import Pipeline, Simulation
from prunekit.types import MergeMap, Segments, SelectionContext, Stage, VideoLayout

__all__ = [
    "register_profiles",
    "layouts",
    "features",
    "budgets",
    "depths",
    "segmentations",
    "attentions",
    "check_segmenter",
    "check_merger",
    "check_encoder_stage",
    "check_allocator",
    "check_frame_selector",
    "check_layer_scheduler",
    "check_preset",
    "simulate_or_refuse",
    "assert_pipeline_guarantees",
    "assert_retention",
    "assert_kept_ids",
    "assert_segments_keep_tokens",
    "assert_counts",
    "assert_noop",
    "assert_segmentation",
    "assert_schedule",
    "assert_selection",
    "GUARANTEES",
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
FEASIBLE = "feasibility guarantee (BudgetError only for requests that cannot be met)"

# -- profiles -----------------------------------------------------------------------------------


def register_profiles() -> str:
    """Register the ``dev`` and ``ci`` Hypothesis profiles and load one; returns its name.

    ``ci`` (>= 200 examples, no deadline, derandomized) is loaded when ``CI=true``; otherwise
    ``dev`` (30 examples). ``PRUNEKIT_HYPOTHESIS_PROFILE`` overrides the choice.
    """
    common: dict[str, Any] = {
        "deadline": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    }
    settings.register_profile("dev", max_examples=30, **common)
    settings.register_profile("ci", max_examples=200, derandomize=True, print_blob=True, **common)
    name = os.environ.get("PRUNEKIT_HYPOTHESIS_PROFILE") or (
        "ci" if os.environ.get("CI", "").lower() == "true" else "dev")
    settings.load_profile(name)
    return name


# -- strategies ---------------------------------------------------------------------------------


@st.composite
def layouts(draw: st.DrawFn, max_frames: int = 64, max_tokens_per_frame: int = 256,
            max_tokens: int | None = None) -> VideoLayout:
    """Contiguous `VideoLayout`s: 1..``max_frames`` frames of an ``(h, w)`` grid (1..256 tokens),
    text before and after, and an optional trailing layout token (LLaVA-OV's newline).

    ``max_tokens`` caps ``F * P`` to keep examples fast.
    """
    frames = draw(st.integers(1, max_frames))
    cap = max_tokens_per_frame
    if max_tokens is not None:
        cap = max(1, min(cap, max_tokens // frames))
    h = draw(st.integers(1, cap))
    w = draw(st.integers(1, max(1, cap // h)))
    prefix = draw(st.integers(0, 16))
    trailing = draw(st.integers(0, 1))
    suffix = draw(st.integers(0, 16))
    seq_len = prefix + frames * h * w + trailing + suffix
    return VideoLayout.contiguous(prefix, frames, (h, w), seq_len, trailing_layout_tokens=trailing)


_EDITS = ("duplicate_token", "zero_token", "constant_frame", "identical_frame", "zero_frame")


@st.composite
def features(draw: st.DrawFn, layout: VideoLayout, dim: int | None = None,
             max_dim: int = 8) -> torch.Tensor:
    """``[F, P, D]`` float32 features for ``layout``, with the degenerate cases stages must survive:
    duplicated tokens, all-zero tokens and frames, constant frames and identical consecutive frames.

    Bulk values come from a drawn seed (fast); the structure (kind, edits) shrinks normally.
    """
    num_frames, per_frame = layout.num_frames, layout.tokens_per_frame
    d = dim if dim is not None else draw(st.integers(1, max_dim))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["video", "gaussian", "low_rank", "positive"]))
    noise = torch.randn(num_frames, per_frame, d, generator=gen)
    if kind == "video":  # a random walk over time with occasional scene cuts
        step = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
        cuts = torch.rand(num_frames, generator=gen) < draw(st.sampled_from([0.0, 0.1, 0.5]))
        x = noise.clone()
        for f in range(1, num_frames):
            if not cuts[f]:
                x[f] = x[f - 1] + step * noise[f]
    elif kind == "low_rank":
        rank = draw(st.integers(1, 2))
        basis = torch.randn(rank, d, generator=gen)
        x = noise[..., :rank] @ basis if d >= rank else noise
    elif kind == "positive":
        x = noise.abs() + 0.1
    else:
        x = noise
    x = x * draw(st.sampled_from([1.0, 1e-3, 1e3]))
    zero_share = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0]))
    if zero_share:
        x[torch.rand(num_frames, per_frame, generator=gen) < zero_share] = 0.0
    for _ in range(draw(st.integers(0, 4))):
        edit = draw(st.sampled_from(_EDITS))
        f = draw(st.integers(0, num_frames - 1))
        p = draw(st.integers(0, per_frame - 1))
        if edit == "duplicate_token":
            x[draw(st.integers(0, num_frames - 1)), draw(st.integers(0, per_frame - 1))] = x[f, p].clone()
        elif edit == "zero_token":
            x[f, p] = 0.0
        elif edit == "constant_frame":
            x[f] = x[f, p].clone()
        elif edit == "identical_frame" and f > 0:
            x[f] = x[f - 1].clone()
        elif edit == "zero_frame":
            x[f] = 0.0
    return x.contiguous()


def budgets(modes: Sequence[str] = ("input", "layer_average")) -> st.SearchStrategy[Budget]:
    """`Budget`s with ``retain`` in (0, 1] in each of ``modes``: mostly realistic values (>= 0.02),
    plus any float in (0, 1] and edge values (1.0, tiny ones that no schedule can meet)."""
    realistic = st.floats(min_value=0.02, max_value=1.0)
    retain = st.one_of(
        realistic,
        realistic,
        st.floats(min_value=0.0, max_value=1.0, exclude_min=True, allow_nan=False),
        st.sampled_from([1.0, 0.5, 0.3, 0.2, 0.1, 0.01, 1e-9]),
    )
    return st.builds(Budget, retain, st.sampled_from(list(modes)))


def depths(max_layers: int = 48) -> st.SearchStrategy[int]:
    """Decoder depths: mostly 4..``max_layers`` (28 = Qwen2-7B often), sometimes 1..3 (too shallow
    for multi-stage schedules)."""
    deep = st.integers(4, max_layers)
    # Hypothesis favours the first and last branches; keep the shallow one in the middle
    return st.one_of(st.just(28), deep, deep, st.integers(1, 3), deep, deep, deep)


@st.composite
def segmentations(draw: st.DrawFn, num_frames: int) -> Segments:
    """Valid `Segments` of ``num_frames`` frames (any number of contiguous segments)."""
    if num_frames == 1:
        return Segments.single(1)
    starts = draw(st.sets(st.integers(1, num_frames - 1), max_size=num_frames - 1))
    return Segments((0, *sorted(starts)), num_frames)


@st.composite
def attentions(draw: st.DrawFn, n: int) -> torch.Tensor:
    """``[n]`` non-negative attention scores: random, constant, sparse or with one spike."""
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["random", "constant", "sparse", "spike"]))
    if kind == "constant":
        return torch.full((n,), draw(st.sampled_from([0.0, 1e-4, 1.0])))
    a = torch.rand(n, generator=gen)
    if kind == "sparse":
        a = torch.where(torch.rand(n, generator=gen) < 0.8, torch.zeros_like(a), a)
    elif kind == "spike":
        a = a * 1e-3
        a[draw(st.integers(0, n - 1))] = 1.0
    return a


# -- per-example assertions ---------------------------------------------------------------------


def _minmax(x: torch.Tensor) -> torch.Tensor:
    span = x.max() - x.min()
    return (x - x.min()) / span if float(span) > 0 else torch.ones_like(x)


def _fail(guarantee: str, detail: str) -> None:
    raise AssertionError(f"{guarantee} violated: {detail}")


def _as_index(value: Any, what: str) -> torch.Tensor:
    try:
        out = torch.as_tensor(value).cpu()
    except Exception as exc:  # noqa: BLE001 - report any conversion failure as a contract breach
        raise AssertionError(f"{EXACT_COUNT} violated: {what} returned {type(value).__name__}, "
                             f"not indices ({exc})") from exc
    if out.dtype.is_floating_point or out.dtype == torch.bool or out.ndim != 1:
        _fail(EXACT_COUNT, f"{what} must return a 1-D integer tensor, got dtype {out.dtype} "
                           f"and shape {tuple(out.shape)}")
    return out.long()


def assert_selection(pick: Any, keep: int, n: int, what: str = "selector") -> torch.Tensor:
    """``pick`` holds exactly ``keep`` distinct indices in ``[0, n)``; returns it as a sorted tensor."""
    idx = _as_index(pick, what)
    if idx.numel() != keep or torch.unique(idx).numel() != keep:
        _fail(EXACT_COUNT, f"{what} returned {idx.numel()} indices ({torch.unique(idx).numel()} "
                           f"distinct) for keep={keep} of n={n}")
    if keep and (int(idx.min()) < 0 or int(idx.max()) >= n):
        _fail(EXACT_COUNT, f"{what} returned indices outside [0, {n}): {idx.tolist()[:20]}")
    return torch.sort(idx).values


def assert_segmentation(segments: Any, num_frames: int) -> None:
    """``segments`` are contiguous, start at frame 0, strictly increase and cover ``num_frames``."""
    if not isinstance(segments, Segments):
        _fail(SEGMENTATION, f"segment() must return Segments, got {type(segments).__name__}")
    starts = list(segments.starts)
    if segments.num_frames != num_frames:
        _fail(SEGMENTATION, f"segments cover {segments.num_frames} frames, the video has {num_frames}")
    if not starts or starts[0] != 0 or any(b <= a for a, b in pairwise(starts)) \
            or starts[-1] >= num_frames:
        _fail(SEGMENTATION, f"starts {starts} for {num_frames} frames")
    bounds = segments.bounds
    if bounds[0][0] != 0 or bounds[-1][1] != num_frames or any(
            a[1] != b[0] or a[0] >= a[1] for a, b in pairwise([*bounds, (num_frames, None)])):
        _fail(SEGMENTATION, f"bounds {bounds} do not tile 0..{num_frames}")
    seg = segments.segment_of_frame()
    if seg.numel() != num_frames or bool((seg[1:] - seg[:-1] < 0).any()) or int(seg[-1]) != len(starts) - 1:
        _fail(SEGMENTATION, f"segment_of_frame {seg.tolist()} disagrees with starts {starts}")


def assert_schedule(stages: Sequence[Stage], n_visual: int, num_layers: int, budget: Budget | None,
                    min_keep: int = 1) -> None:
    """A scheduler's stages: layers strictly increasing in ``[0, L)``, counts in ``[min_keep, N]``,
    non-increasing, and (with a budget) realized retention within ``1/N`` of it."""
    layers = [s.layer for s in stages]
    keeps = [s.keep for s in stages]
    if any(b <= a for a, b in pairwise(layers)) or not all(0 <= layer < num_layers for layer in layers):
        _fail(GUARANTEES[4], f"stage layers {layers} must be strictly increasing in [0, {num_layers})")
    if any(not isinstance(k, int) or not min_keep <= k <= n_visual for k in keeps):
        _fail(GUARANTEES[3], f"stage counts {keeps} must be integers in [{min_keep}, {n_visual}]")
    if any(b > a for a, b in pairwise(keeps)):
        _fail(GUARANTEES[4], f"stage counts {keeps} increase")
    if budget is None:
        return
    if budget.retain >= 1.0 and any(k < n_visual for k in keeps):
        _fail(GUARANTEES[5], f"retain=1.0 planned pruning stages {list(stages)}")
    _check_retention(stages, n_visual, num_layers, budget)


def _check_retention(stages: Sequence[Stage], n: int, num_layers: int, budget: Budget) -> None:
    per_layer = visual_tokens_per_layer(sorted(stages, key=lambda s: s.layer), n, num_layers)
    realized = per_layer[0] / n if budget.mode == "input" else sum(per_layer) / (n * num_layers)
    if abs(realized - budget.retain) > 1.0 / n + 1e-12:
        _fail(GUARANTEES[1], f"realized {budget.mode} retention {realized:.6f} vs target "
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
            _fail(FEASIBLE, f"BudgetError for a feasible request (N={layout.num_visual}, L={num_layers}, "
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
            _fail(GUARANTEES[1], f"reported {mode} retention {sim.retention[mode]} but {value} was kept")
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
            _fail(GUARANTEES[2], f"stage {i} kept ids have dtype {k.dtype} and shape {tuple(k.shape)}")
        if k.numel() and (bool((k[1:] <= k[:-1]).any()) or int(k.min()) < 0 or int(k.max()) >= n):
            _fail(GUARANTEES[2], f"stage {i} kept ids are not sorted, unique and in [0, {n}): "
                                 f"{k.tolist()[:20]}")
        if not bool(torch.isin(k, previous).all()):
            _fail(GUARANTEES[2], f"stage {i} keeps ids that an earlier stage dropped")
        dropped = layout.token_index.flatten()[~torch.isin(torch.arange(n), k)]
        touches_layout = bool(torch.isin(dropped, layout.layout_index).any())
        if touches_layout or not set(dropped.tolist()) <= visual_positions:
            _fail(GUARANTEES[2], f"stage {i} dropped a text or layout token")
        previous = k


def assert_segments_keep_tokens(sim: Simulation, layout: VideoLayout) -> None:
    """Guarantee 3: every segment holds at least one kept token after every stage."""
    seg_of_frame = sim.segments.segment_of_frame()
    for i, kept in enumerate(sim.kept):
        present = torch.bincount(seg_of_frame[layout.frame_of(kept.cpu())], minlength=len(sim.segments))
        if bool((present == 0).any()):
            empty = torch.nonzero(present == 0).flatten().tolist()
            _fail(GUARANTEES[3], f"after stage {i} ({sim.stages[i]}) segments {empty} of "
                                 f"{sim.segments.starts} have no token")


def assert_counts(sim: Simulation, n_visual: int) -> None:
    """Guarantee 4: stage ``i`` keeps exactly ``stages[i].keep`` tokens; counts never increase."""
    counts = [int(k.numel()) for k in sim.kept]
    planned = [s.keep for s in sim.stages]
    if counts != planned:
        _fail(GUARANTEES[4], f"planned {planned} tokens but kept {counts}")
    if any(b > a for a, b in pairwise([n_visual, *counts])):
        _fail(GUARANTEES[4], f"counts {counts} increase (N={n_visual})")
    layers = [s.layer for s in sim.stages]
    if any(b <= a for a, b in pairwise(layers)):
        _fail(GUARANTEES[4], f"stage layers {layers} are not strictly increasing")


def assert_noop(sim: Simulation) -> None:
    """Guarantee 5: nothing is pruned (no stage, retention 1)."""
    if sim.stages or sim.kept or sim.retention != {"input": 1.0, "layer_average": 1.0}:
        _fail(GUARANTEES[5], f"retain=1.0 planned {sim.stages}, retention {sim.retention}")


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
        _fail(DETERMINISM, f"two runs of {pipeline.config.name!r} with seed {pipeline.config.seed} differ")
    return sim


# -- conformance checks -------------------------------------------------------------------------


def _instantiate(cls: type[Component], config: StageConfig | dict[str, Any] | None) -> Component:
    if isinstance(config, dict):
        config = cls.Config(**config)
    return cls(config)


def _run(test: Callable[..., None], run_settings: settings | None) -> None:
    """Run a ``@given`` test under the active profile (or ``run_settings``), reporting one bug."""
    base = run_settings if run_settings is not None else settings.default
    try:
        settings(base, report_multiple_bugs=False,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        *base.suppress_health_check])(test)()
    except Flaky as exc:  # a failure that does not replay: the stage answers differently each time
        raise AssertionError(f"{DETERMINISM} violated: the same input passed on one run and failed on "
                             f"another; does the stage use global random state? ({exc})") from exc


def _call(what: str, fn: Callable[..., Any], *args: Any, allow: tuple[type[Exception], ...] = ()) -> Any:
    """Call a stage method; turn an unexpected crash into an AssertionError naming the stage."""
    try:
        return fn(*args)
    except (AssertionError, *allow):
        raise
    except Exception as exc:  # noqa: BLE001 - any crash on a valid input breaks the contract
        raise AssertionError(f"{what} raised {type(exc).__name__} on a valid input: {exc}") from exc


def _check_unchanged(before: torch.Tensor, after: torch.Tensor, what: str) -> None:
    if not torch.equal(before, after):
        _fail(PURITY, f"{what} modified its input features in place")


def check_segmenter(cls: type[Segmenter], config: StageConfig | dict[str, Any] | None = None, *,
                    run_settings: settings | None = None) -> None:
    """Check a `Segmenter`: contiguous covering segments, deterministic, inputs untouched."""
    segmenter = _instantiate(cls, config)
    name = f"{cls.__name__}.segment"

    @given(data=st.data())
    def conforms(data: st.DataObject) -> None:
        layout = data.draw(layouts(max_tokens=2048), label="layout")
        feats = data.draw(features(layout), label="features")
        original = feats.clone()
        segments = _call(name, segmenter.segment, feats, layout)
        _check_unchanged(original, feats, name)
        assert_segmentation(segments, layout.num_frames)
        again = _call(name, segmenter.segment, feats.clone(), layout)
        if again != segments:
            _fail(DETERMINISM, f"{name} gave {segments.starts} then {again.starts}")

    _run(conforms, run_settings)


def check_merger(cls: type[TokenMerger], config: StageConfig | dict[str, Any] | None = None, *,
                 run_settings: settings | None = None) -> None:
    """Check a `TokenMerger`: kept ids valid and never fewer than asked, merge map consistent,
    every segment keeps a token, ``keep = N`` merges nothing, deterministic, inputs untouched."""
    merger = _instantiate(cls, config)
    name = f"{cls.__name__}.merge"

    @given(data=st.data())
    def conforms(data: st.DataObject) -> None:
        layout = data.draw(layouts(max_tokens=2048), label="layout")
        feats = data.draw(features(layout), label="features")
        segments = data.draw(segmentations(layout.num_frames), label="segments")
        n = layout.num_visual
        keep = data.draw(st.one_of(st.integers(len(segments), n), st.just(n)), label="keep")
        relevance = None
        if getattr(merger, "needs_relevance", False):
            relevance = data.draw(st.none() | attentions(n), label="relevance")
            relevance = None if relevance is None else _minmax(relevance)
        extra = (relevance,) if getattr(merger, "needs_relevance", False) else ()
        original = feats.clone()
        kept, merge = _call(name, merger.merge, feats, layout, segments, keep, *extra)
        _check_unchanged(original, feats, name)
        kept = _as_index(kept, name)
        if kept.numel() < keep or kept.numel() > n:
            _fail(MERGE, f"{name} kept {kept.numel()} of {n} tokens, asked for {keep}")
        if kept.numel() and (bool((kept[1:] <= kept[:-1]).any()) or int(kept.min()) < 0
                             or int(kept.max()) >= n):
            _fail(GUARANTEES[2], f"{name} kept ids are not sorted, unique and in [0, {n})")
        if keep == n and kept.numel() != n:
            _fail(GUARANTEES[5], f"{name} removed tokens although keep = N = {n}")
        _check_merge_map(merge, kept, n, name)
        seg = segments.segment_of_frame()[layout.frame_of(kept)]
        if bool((torch.bincount(seg, minlength=len(segments)) == 0).any()):
            _fail(GUARANTEES[3], f"{name} left a segment of {segments.starts} without tokens")
        merged = merge.apply(feats.reshape(n, -1))
        if not bool(torch.isfinite(merged).all()):
            _fail(MERGE, f"{name}: applying the merge map produced non-finite features")
        kept2, merge2 = _call(name, merger.merge, feats.clone(), layout, segments, keep, *extra)
        same_map = torch.equal(merge2.source.cpu(), merge.source.cpu()) and torch.equal(
            merge2.target.cpu(), merge.target.cpu())
        if not (same_map and torch.equal(_as_index(kept2, name), kept)):
            _fail(DETERMINISM, f"{name} gave different results on the same input")

    _run(conforms, run_settings)


def check_encoder_stage(cls: type[EncoderStage], config: StageConfig | dict[str, Any] | None = None, *,
                        run_settings: settings | None = None) -> None:
    """Check an `EncoderStage`: sorted unique frame ids, at least ``min_frames`` of them (all when
    ``min_frames = F``), a frame merge map from dropped to kept frames, deterministic, inputs untouched."""
    stage = _instantiate(cls, config)
    name = f"{cls.__name__}.reduce"

    @given(data=st.data())
    def conforms(data: st.DataObject) -> None:
        layout = data.draw(layouts(max_frames=32, max_tokens=1024), label="layout")
        hidden = data.draw(features(layout), label="tower states")  # [F, T, D]
        frames = layout.num_frames
        min_frames = data.draw(st.integers(1, frames), label="min_frames")
        original = hidden.clone()
        kept, merge = _call(name, stage.reduce, hidden, min_frames)
        _check_unchanged(original, hidden, name)
        kept = _as_index(kept, name)
        if not min_frames <= kept.numel() <= frames:
            _fail(EXACT_COUNT, f"{name} kept {kept.numel()} of {frames} frames, at least {min_frames} required")
        if bool((kept[1:] <= kept[:-1]).any()) or int(kept.min()) < 0 or int(kept.max()) >= frames:
            _fail(GUARANTEES[2], f"{name} kept frame ids are not sorted, unique and in [0, {frames})")
        _check_merge_map(merge, kept, frames, name)
        kept2, merge2 = _call(name, stage.reduce, hidden.clone(), min_frames)
        if not (torch.equal(_as_index(kept2, name), kept) and torch.equal(merge2.source.cpu(), merge.source.cpu())
                and torch.equal(merge2.target.cpu(), merge.target.cpu())):
            _fail(DETERMINISM, f"{name} gave different results on the same input")

    _run(conforms, run_settings)


def _check_merge_map(merge: Any, kept: torch.Tensor, n: int, name: str) -> None:
    if not isinstance(merge, MergeMap):
        _fail(MERGE, f"{name} must return a MergeMap, got {type(merge).__name__}")
    src, dst = merge.source.cpu().long(), merge.target.cpu().long()
    if src.shape != dst.shape or src.ndim != 1:
        _fail(MERGE, f"{name}: source {tuple(src.shape)} and target {tuple(dst.shape)} must be equal 1-D")
    if src.numel() == 0:
        return
    if torch.unique(src).numel() != src.numel() or int(src.min()) < 0 or int(src.max()) >= n:
        _fail(MERGE, f"{name}: merge sources must be distinct ids in [0, {n})")
    if bool(torch.isin(src, kept).any()):
        _fail(MERGE, f"{name}: a merged (source) token is also kept")
    if not bool(torch.isin(dst, kept).all()):
        _fail(MERGE, f"{name}: a merge target is not kept")


def check_allocator(cls: type[BudgetAllocator], config: StageConfig | dict[str, Any] | None = None, *,
                    run_settings: settings | None = None) -> None:
    """Check a `BudgetAllocator`: integer counts summing exactly to the total, each in
    ``[1, size]``; ``total = sum(sizes)`` keeps everything; deterministic."""
    allocator = _instantiate(cls, config)
    name = f"{cls.__name__}.allocate"

    @given(data=st.data())
    def conforms(data: st.DataObject) -> None:
        layout = data.draw(layouts(max_tokens=4096), label="layout")
        feats = data.draw(features(layout), label="features")
        segments = data.draw(segmentations(layout.num_frames), label="segments")
        seg_feats = _call(f"{cls.__name__}.summarize", allocator.summarize, feats, segments)
        capacity = [(end - start) * layout.tokens_per_frame for start, end in segments.bounds]
        sizes = [data.draw(st.integers(1, c), label="live size") for c in capacity]
        total = data.draw(st.one_of(st.integers(len(sizes), sum(sizes)), st.sampled_from(
            [len(sizes), sum(sizes)])), label="total_keep")
        counts = _call(name, allocator.allocate, list(sizes), total, seg_feats)
        if not isinstance(counts, (list, tuple)) or any(not isinstance(c, int) for c in counts):
            _fail(EXACT_COUNT, f"{name} must return a list of ints, got {counts!r}")
        if len(counts) != len(sizes) or sum(counts) != total:
            _fail(EXACT_COUNT, f"{name} returned {list(counts)} (sum {sum(counts)}) for sizes {sizes} "
                               f"and total {total}")
        if any(not 1 <= c <= s for c, s in zip(counts, sizes, strict=True)):
            _fail(GUARANTEES[3], f"{name} returned {list(counts)}: each must be in [1, size] for {sizes}")
        if total == sum(sizes) and list(counts) != list(sizes):
            _fail(GUARANTEES[5], f"{name} dropped tokens although every token is kept")
        again = _call(name, allocator.allocate, list(sizes), total, _call(
            f"{cls.__name__}.summarize", allocator.summarize, feats.clone(), segments))
        if list(again) != list(counts):
            _fail(DETERMINISM, f"{name} gave different counts on the same input")

    _run(conforms, run_settings)


@st.composite
def _segment_tokens(draw: st.DrawFn, max_tokens: int = 1024,
                    dim: int | None = None) -> tuple[torch.Tensor, SelectionContext, int]:
    """Live tokens of one segment (a frame range of a random layout, randomly thinned) + context."""
    layout = draw(layouts(max_tokens=max_tokens))
    feats = draw(features(layout, dim=dim)).reshape(layout.num_visual, -1)
    first = draw(st.integers(0, layout.num_frames - 1))
    last = draw(st.integers(first, layout.num_frames - 1))
    per_frame = layout.tokens_per_frame
    ids = torch.arange(first * per_frame, (last + 1) * per_frame)
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    share = draw(st.sampled_from([1.0, 0.5, 0.1]))
    live = ids[torch.rand(ids.numel(), generator=gen) < share]
    if live.numel() == 0:
        live = ids[:1]
    relevance = draw(st.none() | attentions(live.numel()))
    relevance = None if relevance is None else _minmax(relevance)
    context = SelectionContext(
        frame=layout.frame_of(live), position=layout.position_of(live), grid=layout.grid,
        relevance=relevance, layer=draw(st.sampled_from([0, 1, 7, 14])),
        llm_stage=draw(st.sampled_from([-1, 0, 1, 2])))
    return feats[live].contiguous(), context, draw(st.integers(0, 2**31 - 1))


def check_frame_selector(cls: type[FrameSelector], config: StageConfig | dict[str, Any] | None = None, *,
                         run_settings: settings | None = None) -> None:
    """Check a `FrameSelector`: exactly ``keep`` distinct in-range indices (also for duplicated,
    zero and constant tokens), ``keep = n`` keeps all, batched `select_segments` is exact too,
    the same seed gives the same selection, inputs untouched."""
    selector = _instantiate(cls, config)
    name = f"{cls.__name__}.select"

    def context_with(ctx: SelectionContext, seed: int) -> SelectionContext:
        relevance = ctx.relevance
        if relevance is None and selector.needs_relevance:
            relevance = torch.ones(ctx.frame.numel())
        return SelectionContext(frame=ctx.frame, position=ctx.position, grid=ctx.grid, relevance=relevance,
                                generator=torch.Generator().manual_seed(seed), layer=ctx.layer,
                                llm_stage=ctx.llm_stage)

    @given(data=st.data())
    def conforms(data: st.DataObject) -> None:
        feats, ctx, seed = data.draw(_segment_tokens(), label="segment")
        n = feats.shape[0]
        keep = data.draw(st.one_of(st.integers(1, n), st.sampled_from([1, n])), label="keep")
        original = feats.clone()
        pick = _call(name, selector.select, feats, keep, context_with(ctx, seed))
        pick = assert_selection(pick, keep, n, name)
        _check_unchanged(original, feats, name)
        if keep == n and not torch.equal(pick, torch.arange(n)):
            _fail(EXACT_COUNT, f"{name} with keep = n = {n} must keep every token")
        again = assert_selection(_call(name, selector.select, feats.clone(), keep, context_with(ctx, seed)),
                                 keep, n, name)
        if not torch.equal(pick, again):
            _fail(DETERMINISM, f"{name} picked {pick.tolist()[:10]}... then {again.tolist()[:10]}... "
                               f"with the same seed {seed}")
        other, octx, oseed = data.draw(_segment_tokens(max_tokens=256, dim=feats.shape[1]),
                                          label="second segment")
        okeep = data.draw(st.integers(1, other.shape[0]), label="second keep")
        batched = _call(f"{cls.__name__}.select_segments", selector.select_segments, [feats, other],
                        [keep, okeep], [context_with(ctx, seed), context_with(octx, oseed)])
        if len(batched) != 2:
            _fail(EXACT_COUNT, f"{cls.__name__}.select_segments returned {len(batched)} selections for 2")
        assert_selection(batched[0], keep, n, f"{cls.__name__}.select_segments")
        assert_selection(batched[1], okeep, other.shape[0], f"{cls.__name__}.select_segments")

    _run(conforms, run_settings)


def check_layer_scheduler(cls: type[LayerScheduler], config: StageConfig | dict[str, Any] | None = None, *,
                          run_settings: settings | None = None) -> None:
    """Check a `LayerScheduler`: stage layers in range and increasing, counts in ``[min_keep, N]``
    and non-increasing, budgets met to one token, ``retain = 1`` plans nothing, and refusals
    are `BudgetError` (at least one request must succeed)."""
    scheduler = _instantiate(cls, config)
    name = f"{cls.__name__}.plan"
    planned: list[int] = []

    @given(data=st.data())
    def conforms(data: st.DataObject) -> None:
        n = data.draw(st.integers(1, 50_000), label="n_visual")
        num_layers = data.draw(st.one_of(st.integers(1, 96), st.just(28)), label="num_layers")
        budget = data.draw(st.none() | budgets(), label="budget")
        min_keep = data.draw(st.integers(1, max(1, min(n, 64))), label="min_keep")
        try:
            stages = _call(name, scheduler.plan, n, num_layers, budget, min_keep, allow=(BudgetError,))
        except BudgetError:
            return
        if not isinstance(stages, list) or any(not isinstance(s, Stage) for s in stages):
            _fail(GUARANTEES[4], f"{name} must return a list of Stage, got {stages!r}")
        assert_schedule(stages, n, num_layers, budget, min_keep)
        if stages != _call(name, scheduler.plan, n, num_layers, budget, min_keep):
            _fail(DETERMINISM, f"{name} planned differently for the same request")
        planned.append(1)

    _run(conforms, run_settings)
    if not planned:
        raise AssertionError(f"{name} refused every request with BudgetError; it never planned a schedule")


def check_preset(name: str, *, run_settings: settings | None = None, max_tokens: int = 1024) -> None:
    """Check a registered preset end to end through `Pipeline.simulate`: guarantees 1-5 and
    determinism, under random layouts, features, attention, depths and budgets in both modes
    (and the preset's own budget)."""
    from prunekit import presets

    base = presets.get(name)

    @given(data=st.data())
    def conforms(data: st.DataObject) -> None:
        layout = data.draw(layouts(max_tokens=max_tokens), label="layout")
        feats = data.draw(features(layout), label="features")
        attention = data.draw(st.none() | attentions(layout.num_visual), label="attention")
        num_layers = data.draw(depths(), label="num_layers")
        budget = data.draw(st.one_of(st.just(base.budget), budgets()), label="budget")
        pipeline = Pipeline(base.model_copy(update={"budget": budget}))
        assert_pipeline_guarantees(pipeline, feats, layout, num_layers, attention)

    _run(conforms, run_settings)
