"""Conformance runners: ``check_<kind>(MyStage)`` and ``check_preset(name)`` run a Hypothesis search
of a stage or preset against every guarantee (do not call them from inside ``@given``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky

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
from prunekit.pipeline import Pipeline
from prunekit.testing.assertions import (
    DETERMINISM,
    EXACT_COUNT,
    GUARANTEES,
    MERGE,
    PURITY,
    as_index,
    assert_pipeline_guarantees,
    assert_schedule,
    assert_segmentation,
    assert_selection,
    assert_sorted_tensor,
    fail,
    minmax,
)
from prunekit.testing.strategies import attentions, budgets, depths, features, layouts, segmentations
from prunekit.types import MergeMap, Segments, SelectionContext, Stage, VideoLayout

__all__ = [
    "check_segmenter", "check_merger", "check_encoder_stage", "check_allocator", "check_frame_selector",
    "check_layer_scheduler",
    "check_preset",
]

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


def _draw_video(data: st.DataObject, max_tokens: int) -> tuple[VideoLayout, torch.Tensor]:
    """A layout and features for it, drawn inside a ``@given`` test (labelled in failure reports)."""
    layout = data.draw(layouts(max_tokens=max_tokens), label="layout")
    return layout, data.draw(features(layout), label="features")


def _draw_segmented_video(data: st.DataObject, max_tokens: int) -> tuple[VideoLayout, torch.Tensor, Segments]:
    """`_draw_video` plus a segmentation of its frames."""
    layout, feats = _draw_video(data, max_tokens)
    return layout, feats, data.draw(segmentations(layout.num_frames), label="segments")


def _check_unchanged(before: torch.Tensor, after: torch.Tensor, what: str) -> None:
    if not torch.equal(before, after):
        fail(PURITY, f"{what} modified its input features in place")


def check_segmenter(cls: type[Segmenter], config: StageConfig | dict[str, Any] | None = None, *,
                    run_settings: settings | None = None) -> None:
    """Check a `Segmenter`: contiguous covering segments, deterministic, inputs untouched."""
    segmenter = _instantiate(cls, config)
    name = f"{cls.__name__}.segment"

    @given(data=st.data())
    def conforms(data: st.DataObject) -> None:
        layout, feats = _draw_video(data, max_tokens=2048)
        original = feats.clone()
        segments = _call(name, segmenter.segment, feats, layout)
        _check_unchanged(original, feats, name)
        assert_segmentation(segments, layout.num_frames)
        again = _call(name, segmenter.segment, feats.clone(), layout)
        if again != segments:
            fail(DETERMINISM, f"{name} gave {segments.starts} then {again.starts}")

    _run(conforms, run_settings)


def check_merger(cls: type[TokenMerger], config: StageConfig | dict[str, Any] | None = None, *,
                 run_settings: settings | None = None) -> None:
    """Check a `TokenMerger`: kept ids valid and never fewer than asked, merge map consistent,
    every segment keeps a token, ``keep = N`` merges nothing, deterministic, inputs untouched."""
    merger = _instantiate(cls, config)
    name = f"{cls.__name__}.merge"

    @given(data=st.data())
    def conforms(data: st.DataObject) -> None:
        layout, feats, segments = _draw_segmented_video(data, max_tokens=2048)
        n = layout.num_visual
        keep = data.draw(st.one_of(st.integers(len(segments), n), st.just(n)), label="keep")
        relevance = None
        if getattr(merger, "needs_relevance", False):
            relevance = data.draw(st.none() | attentions(n), label="relevance")
            relevance = None if relevance is None else minmax(relevance)
        extra = (relevance,) if getattr(merger, "needs_relevance", False) else ()
        original = feats.clone()
        kept, merge = _call(name, merger.merge, feats, layout, segments, keep, *extra)
        _check_unchanged(original, feats, name)
        kept = as_index(kept, name)
        if kept.numel() < keep or kept.numel() > n:
            fail(MERGE, f"{name} kept {kept.numel()} of {n} tokens, asked for {keep}")
        if kept.numel() and (bool((kept[1:] <= kept[:-1]).any()) or int(kept.min()) < 0
                             or int(kept.max()) >= n):
            fail(GUARANTEES[2], f"{name} kept ids are not sorted, unique and in [0, {n})")
        if keep == n and kept.numel() != n:
            fail(GUARANTEES[5], f"{name} removed tokens although keep = N = {n}")
        _check_merge_map(merge, kept, n, name)
        seg = segments.segment_of_frame()[layout.frame_of(kept)]
        if bool((torch.bincount(seg, minlength=len(segments)) == 0).any()):
            fail(GUARANTEES[3], f"{name} left a segment of {segments.starts} without tokens")
        merged = merge.apply(feats.reshape(n, -1))
        if not bool(torch.isfinite(merged).all()):
            fail(MERGE, f"{name}: applying the merge map produced non-finite features")
        kept2, merge2 = _call(name, merger.merge, feats.clone(), layout, segments, keep, *extra)
        same_map = torch.equal(merge2.source.cpu(), merge.source.cpu()) and torch.equal(
            merge2.target.cpu(), merge.target.cpu())
        if not (same_map and torch.equal(as_index(kept2, name), kept)):
            fail(DETERMINISM, f"{name} gave different results on the same input")

    _run(conforms, run_settings)


def check_encoder_stage(cls: type[EncoderStage], config: StageConfig | dict[str, Any] | None = None, *,
                        run_settings: settings | None = None) -> None:
    """Check an `EncoderStage`: sorted unique frame ids, at least ``min_frames`` of them (all when
    ``min_frames = F``), a frame merge map from dropped to kept frames, deterministic, inputs untouched."""
    stage = _instantiate(cls, config)
    name = f"{cls.__name__}.reduce"

    @given(data=st.data())
    def conforms(data: st.DataObject) -> None:
        layout, hidden = _draw_video(data, max_tokens=1024)  # hidden: the tower states [F, T, D]
        frames = layout.num_frames
        min_frames = data.draw(st.integers(1, frames), label="min_frames")
        original = hidden.clone()
        kept, merge = _call(name, stage.reduce, hidden, min_frames)
        _check_unchanged(original, hidden, name)
        kept = as_index(kept, name)
        if not min_frames <= kept.numel() <= frames:
            fail(EXACT_COUNT, f"{name} kept {kept.numel()} of {frames} frames, at least {min_frames} required")
        if bool((kept[1:] <= kept[:-1]).any()) or int(kept.min()) < 0 or int(kept.max()) >= frames:
            fail(GUARANTEES[2], f"{name} kept frame ids are not sorted, unique and in [0, {frames})")
        _check_merge_map(merge, kept, frames, name)
        kept2, merge2 = _call(name, stage.reduce, hidden.clone(), min_frames)
        if not (torch.equal(as_index(kept2, name), kept) and torch.equal(merge2.source.cpu(), merge.source.cpu())
                and torch.equal(merge2.target.cpu(), merge.target.cpu())):
            fail(DETERMINISM, f"{name} gave different results on the same input")

    _run(conforms, run_settings)


def _check_merge_map(merge: Any, kept: torch.Tensor, n: int, name: str) -> None:
    if not isinstance(merge, MergeMap):
        fail(MERGE, f"{name} must return a MergeMap, got {type(merge).__name__}")
    src, dst = merge.source.cpu().long(), merge.target.cpu().long()
    if src.shape != dst.shape or src.ndim != 1:
        fail(MERGE, f"{name}: source {tuple(src.shape)} and target {tuple(dst.shape)} must be equal 1-D")
    if src.numel() == 0:
        return
    if torch.unique(src).numel() != src.numel() or int(src.min()) < 0 or int(src.max()) >= n:
        fail(MERGE, f"{name}: merge sources must be distinct ids in [0, {n})")
    if bool(torch.isin(src, kept).any()):
        fail(MERGE, f"{name}: a merged (source) token is also kept")
    if not bool(torch.isin(dst, kept).all()):
        fail(MERGE, f"{name}: a merge target is not kept")


def check_allocator(cls: type[BudgetAllocator], config: StageConfig | dict[str, Any] | None = None, *,
                    run_settings: settings | None = None) -> None:
    """Check a `BudgetAllocator`: integer counts summing exactly to the total, each in
    ``[1, size]``; ``total = sum(sizes)`` keeps everything; deterministic."""
    allocator = _instantiate(cls, config)
    name = f"{cls.__name__}.allocate"

    @given(data=st.data())
    def conforms(data: st.DataObject) -> None:
        layout, feats, segments = _draw_segmented_video(data, max_tokens=4096)
        seg_feats = _call(f"{cls.__name__}.summarize", allocator.summarize, feats, segments)
        capacity = [(end - start) * layout.tokens_per_frame for start, end in segments.bounds]
        sizes = [data.draw(st.integers(1, c), label="live size") for c in capacity]
        total = data.draw(st.one_of(st.integers(len(sizes), sum(sizes)), st.sampled_from(
            [len(sizes), sum(sizes)])), label="total_keep")
        counts = _call(name, allocator.allocate, list(sizes), total, seg_feats)
        if not isinstance(counts, (list, tuple)) or any(not isinstance(c, int) for c in counts):
            fail(EXACT_COUNT, f"{name} must return a list of ints, got {counts!r}")
        if len(counts) != len(sizes) or sum(counts) != total:
            fail(EXACT_COUNT, f"{name} returned {list(counts)} (sum {sum(counts)}) for sizes {sizes} "
                               f"and total {total}")
        if any(not 1 <= c <= s for c, s in zip(counts, sizes, strict=True)):
            fail(GUARANTEES[3], f"{name} returned {list(counts)}: each must be in [1, size] for {sizes}")
        if total == sum(sizes) and list(counts) != list(sizes):
            fail(GUARANTEES[5], f"{name} dropped tokens although every token is kept")
        again = _call(name, allocator.allocate, list(sizes), total, _call(
            f"{cls.__name__}.summarize", allocator.summarize, feats.clone(), segments))
        if list(again) != list(counts):
            fail(DETERMINISM, f"{name} gave different counts on the same input")

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
    relevance = None if relevance is None else minmax(relevance)
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
        raw = _call(name, selector.select, feats, keep, context_with(ctx, seed))
        pick = assert_selection(raw, keep, n, name)
        assert_sorted_tensor(raw, name)
        _check_unchanged(original, feats, name)
        if keep == n and not torch.equal(pick, torch.arange(n)):
            fail(EXACT_COUNT, f"{name} with keep = n = {n} must keep every token")
        again = assert_selection(_call(name, selector.select, feats.clone(), keep, context_with(ctx, seed)),
                                 keep, n, name)
        if not torch.equal(pick, again):
            fail(DETERMINISM, f"{name} picked {pick.tolist()[:10]}... then {again.tolist()[:10]}... "
                               f"with the same seed {seed}")
        other, octx, oseed = data.draw(_segment_tokens(max_tokens=256, dim=feats.shape[1]),
                                          label="second segment")
        okeep = data.draw(st.integers(1, other.shape[0]), label="second keep")
        batched = _call(f"{cls.__name__}.select_segments", selector.select_segments, [feats, other],
                        [keep, okeep], [context_with(ctx, seed), context_with(octx, oseed)])
        if len(batched) != 2:
            fail(EXACT_COUNT, f"{cls.__name__}.select_segments returned {len(batched)} selections for 2")
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
            fail(GUARANTEES[4], f"{name} must return a list of Stage, got {stages!r}")
        assert_schedule(stages, n, num_layers, budget, min_keep)
        if stages != _call(name, scheduler.plan, n, num_layers, budget, min_keep):
            fail(DETERMINISM, f"{name} planned differently for the same request")
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
        layout, feats = _draw_video(data, max_tokens=max_tokens)
        attention = data.draw(st.none() | attentions(layout.num_visual), label="attention")
        num_layers = data.draw(depths(), label="num_layers")
        budget = data.draw(st.one_of(st.just(base.budget), budgets()), label="budget")
        pipeline = Pipeline(base.model_copy(update={"budget": budget}))
        assert_pipeline_guarantees(pipeline, feats, layout, num_layers, attention)

    _run(conforms, run_settings)
