"""Architecture §4's guarantees, proven end to end with Hypothesis through `Pipeline.simulate`.

Inputs: random contiguous layouts (1-64 frames, 1-256 tokens per frame, N capped for speed),
features with duplicated tokens, zero tokens and frames, constant and identical frames, random
attention, 1-48 decoder layers, budgets in (0, 1] in both modes. Pipelines: the presets
`hieravid-30` (progressive scheduler), `uniform` and `random` (fixed scheduler), and two
recombinations so each selector family meets each scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from hypothesis import assume, event, given
from hypothesis import strategies as st

from prunekit import Budget, Pipeline, PipelineConfig, VideoLayout, presets
from prunekit.ops.dpp import conditional_kernel, greedy_map
from prunekit.pipeline import Simulation
from prunekit.plugins import get_registry
from prunekit.strategies.hieravid.merger import SamePositionMerger
from prunekit.strategies.hieravid.selector import ConditionalDPPSelector
from prunekit.testing import (
    assert_counts,
    assert_kept_ids,
    assert_noop,
    assert_retention,
    assert_segmentation,
    assert_segments_keep_tokens,
    assert_selection,
    attentions,
    budgets,
    depths,
    features,
    layouts,
    segmentations,
    simulate_or_refuse,
)
from prunekit.types import Segments, SelectionContext

pytestmark = pytest.mark.usefixtures("single_thread_torch")

MAX_TOKENS = 768  # N = F * P cap: keeps 200 examples per property well inside the time budget


def _pipelines() -> dict[str, PipelineConfig]:
    hieravid, uniform, random = (presets.get(n) for n in ("hieravid-30", "uniform", "random"))
    fixed = {"name": "fixed", "layers": [0, 2], "keep_fractions": [0.5, 0.2]}
    return {
        "hieravid-30": hieravid,
        "uniform": uniform,
        "random": random,
        "hieravid-30+fixed": hieravid.model_copy(update={"scheduler": get_registry().get(
            "layer_scheduler", "fixed").Config(**fixed)}),
        "random+progressive": PipelineConfig.parse({**random.to_dict(), "scheduler": {"name": "progressive"},
                                                    "segmenter": {"name": "fixed_length"}}),
    }


PIPELINES = _pipelines()


@dataclass
class Case:
    """One random request: a pipeline with a budget, a video and a model depth."""

    pipeline: Pipeline
    layout: VideoLayout
    features: torch.Tensor
    attention: torch.Tensor | None
    num_layers: int

    def simulate(self) -> Simulation | None:
        """Simulate; None for a justified BudgetError (counted in the Hypothesis statistics)."""
        sim = simulate_or_refuse(self.pipeline, self.features, self.layout, self.num_layers, self.attention)
        event("justified BudgetError" if sim is None else f"simulated, {min(len(sim.stages), 2)}+ stages")
        return sim

    def simulated(self) -> Simulation:
        """Simulate; a justified refusal makes the example invalid, so every counted example ran."""
        sim = self.simulate()
        assume(sim is not None)
        assert sim is not None
        return sim


@st.composite
def cases(draw: st.DrawFn, config: PipelineConfig, budget: st.SearchStrategy[Budget | None] | None = None) -> Case:
    layout = draw(layouts(max_tokens=MAX_TOKENS), label="layout")
    feats = draw(features(layout), label="features")
    attention = draw(st.none() | attentions(layout.num_visual), label="attention")
    num_layers = draw(depths(), label="num_layers")
    chosen = draw(budget if budget is not None else st.one_of(st.just(config.budget), budgets()), label="budget")
    pipeline = Pipeline(config.model_copy(update={"budget": chosen}))
    return Case(pipeline, layout, feats, attention, num_layers)


by_pipeline = pytest.mark.parametrize("config", list(PIPELINES.values()), ids=list(PIPELINES))


@by_pipeline
@given(data=st.data())
def test_realized_retention_is_within_one_token_of_the_budget(config: PipelineConfig, data: st.DataObject) -> None:
    """Guarantee 1: with a budget, the retention realized by the tokens actually kept is within
    1/N of the target in the budget's mode (and equals the reported retention)."""
    case = data.draw(cases(config, budgets()))
    sim = case.simulated()
    assert_retention(sim, case.layout, case.num_layers, case.pipeline.budget)


@by_pipeline
@given(data=st.data())
def test_kept_ids_are_sorted_unique_in_range_and_visual_only(config: PipelineConfig, data: st.DataObject) -> None:
    """Guarantee 2: every stage's kept ids are sorted, unique, in [0, N) and a subset of the previous
    stage's; only visual tokens are ever dropped (text and layout tokens never)."""
    case = data.draw(cases(config))
    sim = case.simulated()
    assert_kept_ids(sim, case.layout)


@by_pipeline
@given(data=st.data())
def test_every_segment_keeps_a_token_at_every_stage(config: PipelineConfig, data: st.DataObject) -> None:
    """Guarantee 3: each segment keeps >= 1 token after every stage whenever the request is
    feasible; otherwise the pipeline raises BudgetError (and only then)."""
    case = data.draw(cases(config))
    sim = case.simulate()
    if sim is not None:
        assert_segments_keep_tokens(sim, case.layout)


@by_pipeline
@given(data=st.data())
def test_counts_are_exact_and_non_increasing(config: PipelineConfig, data: st.DataObject) -> None:
    """Guarantee 4: stage i keeps exactly its planned count, counts never increase across stages and
    stage layers strictly increase."""
    case = data.draw(cases(config))
    sim = case.simulated()
    assert_counts(sim, case.layout.num_visual)


@by_pipeline
@given(data=st.data())
def test_full_retention_is_a_noop(config: PipelineConfig, data: st.DataObject) -> None:
    """Guarantee 5: retain = 1.0 (either mode) plans no stage and keeps every token."""
    case = data.draw(cases(config, st.builds(Budget, st.just(1.0), st.sampled_from(["input", "layer_average"]))))
    sim = case.simulate()
    assert sim is not None, "retain = 1.0 must never be refused"
    assert_noop(sim)


@by_pipeline
@given(data=st.data())
def test_same_seed_gives_the_same_selection(config: PipelineConfig, data: st.DataObject) -> None:
    """Determinism: two pipelines built from the same config (same seed) select the same tokens."""
    case = data.draw(cases(config))
    first = case.simulated()
    second = Pipeline(case.pipeline.config).simulate(case.features, case.layout, case.num_layers, case.attention)
    assert second.segments == first.segments and second.stages == first.stages
    assert all(torch.equal(a, b) for a, b in zip(first.kept, second.kept, strict=True))


def test_different_seeds_give_different_random_selections() -> None:
    layout = VideoLayout.contiguous(0, 8, (8, 8), 512)
    feats = torch.randn(8, 64, 4, generator=torch.Generator().manual_seed(0))
    kept = [Pipeline(presets.get("random").model_copy(update={"seed": s})).simulate(feats, layout, 28).kept[0]
            for s in (0, 1)]
    assert not torch.equal(kept[0], kept[1])


# -- stage-level properties -----------------------------------------------------------------------

SEGMENTER_CONFIGS = st.one_of(
    st.builds(dict, name=st.just("similarity"), tau=st.floats(-1, 1), beta=st.floats(0, 1)),
    st.builds(dict, name=st.just("fixed_length"), frames_per_segment=st.integers(1, 70)),
    st.just({"name": "single"}),
)


@given(data=st.data(), config=SEGMENTER_CONFIGS)
def test_segmentation_is_contiguous_and_covering(data: st.DataObject, config: dict) -> None:
    """Segmentation: segments start at frame 0, strictly increase and tile every frame, for the
    built-in segmenters at any threshold (zero, constant and identical frames included)."""
    layout = data.draw(layouts(max_tokens=2048))
    feats = data.draw(features(layout))
    segmenter = get_registry().get("segmenter", config["name"])(**config)
    assert_segmentation(segmenter.segment(feats, layout), layout.num_frames)


@given(data=st.data())
def test_similarity_segmenter_cuts_only_at_dissimilar_frames(data: st.DataObject) -> None:
    """Segmentation: with tau = 0.6, beta = 0.4 a cut opens exactly at frames where fewer than 40% of
    the tokens have same-position cosine > 0.6 to the previous frame (checked independently)."""
    layout = data.draw(layouts(max_tokens=2048))
    feats = data.draw(features(layout))
    segments = get_registry().get("segmenter", "similarity")().segment(feats, layout)
    x = feats.double()
    unit = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (unit[1:] * unit[:-1]).sum(-1)  # [F-1, P]
    expected = [0] + [f + 1 for f in range(layout.num_frames - 1) if (cos[f] > 0.6).double().mean() < 0.4]
    assert list(segments.starts) == expected


@st.composite
def dpp_batches(draw: st.DrawFn) -> tuple[list[torch.Tensor], list[int], list[torch.Tensor | None]]:
    """Segments of one video (shared D) with features that make kernels rank-deficient."""
    dim = draw(st.integers(1, 8))
    feats, keeps, rels = [], [], []
    for _ in range(draw(st.integers(1, 4))):
        layout = draw(layouts(max_frames=8, max_tokens=192))
        f = draw(features(layout, dim=dim)).reshape(layout.num_visual, dim)
        kind = draw(st.sampled_from(["as_drawn", "zeros", "identical", "few_distinct"]))
        if kind == "zeros":
            f = torch.zeros_like(f)
        elif kind == "identical":
            f = f[:1].expand_as(f).clone()
        elif kind == "few_distinct":
            f = f[torch.arange(f.shape[0]) % 2]
        feats.append(f)
        keeps.append(draw(st.integers(1, f.shape[0])))
        rel = draw(st.none() | attentions(f.shape[0]))
        rels.append(None if rel is None else rel / rel.max().clamp_min(1e-12))
    return feats, keeps, rels


@given(dpp_batches(), st.sampled_from(["attention", "negated_attention", "none"]))
def test_dpp_selects_exactly_k_distinct_tokens_even_for_rank_deficient_kernels(
        batch: tuple[list[torch.Tensor], list[int], list[torch.Tensor | None]], relevance: str) -> None:
    """DPP: greedy MAP (batched over segments of different sizes) returns exactly k distinct
    in-range indices per segment even when the kernel is rank-deficient (all-zero features,
    identical or few distinct tokens, zero relevance), filling by relevance after exhaustion."""
    feats, keeps, rels = batch
    selector = ConditionalDPPSelector(relevance=relevance)
    contexts = [SelectionContext(frame=torch.zeros(f.shape[0], dtype=torch.long),
                                 position=torch.arange(f.shape[0]), grid=(1, f.shape[0]), relevance=r,
                                 layer=7, llm_stage=1) for f, r in zip(feats, rels, strict=True)]
    picks = selector.select_segments(feats, keeps, contexts)
    for f, k, pick in zip(feats, keeps, picks, strict=True):
        assert_selection(pick, k, f.shape[0], "ConditionalDPPSelector.select_segments")
    # the raw op agrees on a zero kernel: nothing can be gained, so the fill ranking decides
    n = feats[0].shape[0]
    zero = conditional_kernel(torch.zeros(1, n, 4), None)
    picked = greedy_map(zero, torch.tensor([keeps[0]]), torch.ones(1, n, dtype=torch.bool))[0]
    assert_selection(picked, keeps[0], n, "greedy_map")


@given(data=st.data())
def test_same_position_merger_keeps_segment_starts_and_merges_within_segments(data: st.DataObject) -> None:
    """Merge: removes exactly min(N - keep, eligible) tokens, never a segment's first frame; every
    source merges into a kept token at the same grid position in an earlier frame of its segment,
    and every token between them at that position is merged into the same target."""
    layout = data.draw(layouts(max_tokens=2048))
    feats = data.draw(features(layout))
    segments = data.draw(segmentations(layout.num_frames))
    n, per_frame = layout.num_visual, layout.tokens_per_frame
    keep = data.draw(st.integers(len(segments), n))
    kept, merge = SamePositionMerger().merge(feats, layout, segments, keep)
    eligible = n - len(segments) * per_frame
    assert kept.numel() == n - min(n - keep, eligible)
    first_frames = torch.tensor(segments.starts)
    first_ids = (first_frames[:, None] * per_frame + torch.arange(per_frame)).flatten()
    assert torch.isin(first_ids, kept).all(), "a token of a segment's first frame was removed"
    assert kept.numel() + merge.source.numel() == n, "every removed token must be merged somewhere"
    src_frame, dst_frame = layout.frame_of(merge.source), layout.frame_of(merge.target)
    seg = segments.segment_of_frame()
    assert torch.equal(layout.position_of(merge.source), layout.position_of(merge.target))
    assert (dst_frame < src_frame).all() and torch.equal(seg[src_frame], seg[dst_frame])
    assert torch.isin(merge.target, kept).all() and not torch.isin(merge.source, kept).any()
    removed = set(merge.source.tolist())
    for s, t in zip(merge.source.tolist(), merge.target.tolist(), strict=True):
        between = range(t + per_frame, s, per_frame)  # same position, frames strictly in between
        assert all(b in removed for b in between), "a run was merged past a kept token"


@given(data=st.data(), name=st.sampled_from(["proportional", "mv_offset"]))
def test_allocators_split_the_stage_count_exactly(data: st.DataObject, name: str) -> None:
    """Allocation: per-segment counts sum exactly to the stage total and each is in [1, live size]."""
    sizes = data.draw(st.lists(st.integers(1, 2000), min_size=1, max_size=40))
    total = data.draw(st.integers(len(sizes), sum(sizes)))
    feats = data.draw(features(VideoLayout.contiguous(0, len(sizes), (1, 1), len(sizes))))  # one frame a segment
    allocator = get_registry().get("allocator", name)()
    seg_feats = allocator.summarize(feats, Segments(tuple(range(len(sizes))), len(sizes)))
    counts = allocator.allocate(sizes, total, seg_feats)
    assert sum(counts) == total
    assert all(1 <= c <= s for c, s in zip(counts, sizes, strict=True))


# -- the encoder level (frames dropped inside the vision tower) ------------------------------------

ENCODER_PIPELINES = {name: presets.get(name) for name in ("earlytom-30", "earlytom-hieravid-30")}
ENCODER_PIPELINES["earlytom+progressive"] = PipelineConfig.parse({
    **presets.get("earlytom-10").to_dict(), "budget": None, "scheduler": {"name": "progressive"},
    "segmenter": {"name": "fixed_length"}})
by_encoder_pipeline = pytest.mark.parametrize("config", list(ENCODER_PIPELINES.values()), ids=list(ENCODER_PIPELINES))


@dataclass
class EncoderCase(Case):
    """A random request whose pipeline starts inside the vision tower (tower states drawn too)."""

    hidden: torch.Tensor

    def simulate(self) -> Simulation | None:
        sim = simulate_or_refuse(self.pipeline, self.features, self.layout, self.num_layers, self.attention,
                                 encoder_hidden=self.hidden)
        event("justified BudgetError" if sim is None else f"simulated, {min(len(sim.stages), 2)}+ stages")
        return sim


@st.composite
def encoder_cases(draw: st.DrawFn, config: PipelineConfig,
                  budget: st.SearchStrategy[Budget | None] | None = None) -> EncoderCase:
    case = draw(cases(config, budget))
    hidden = draw(st.sampled_from(["features", "identical", "random"]), label="tower states")
    states = {"features": case.features, "identical": case.features[:1].expand_as(case.features).clone(),
              "random": torch.randn(case.features.shape, generator=torch.Generator().manual_seed(case.num_layers))}
    return EncoderCase(case.pipeline, case.layout, case.features, case.attention, case.num_layers, states[hidden])


@by_encoder_pipeline
@given(data=st.data())
def test_encoder_level_meets_the_budget_counted_on_the_original_video(config: PipelineConfig,
                                                                      data: st.DataObject) -> None:
    """Guarantee 1 with an encoder stage: the frames dropped in the tower count in the retention, which is
    within 1/N of the target (N = the video's tokens before the tower)."""
    case = data.draw(encoder_cases(config, budgets()))
    sim = case.simulated()
    assert_retention(sim, case.layout, case.num_layers, case.pipeline.budget)


@by_encoder_pipeline
@given(data=st.data())
def test_encoder_level_keeps_sorted_nested_visual_ids_and_exact_counts(config: PipelineConfig,
                                                                       data: st.DataObject) -> None:
    """Guarantees 2 and 4 with an encoder stage: kept ids (in the original video's id space) are sorted,
    unique, nested and visual; every stage keeps exactly its count; counts never increase."""
    case = data.draw(encoder_cases(config))
    sim = case.simulated()
    assert_kept_ids(sim, case.layout)
    assert_counts(sim, case.layout.num_visual)


@by_encoder_pipeline
@given(data=st.data())
def test_encoder_level_segments_keep_a_token_at_every_stage(config: PipelineConfig, data: st.DataObject) -> None:
    """Guarantee 3 with an encoder stage: segments (over the original frames) keep a token at every stage."""
    case = data.draw(encoder_cases(config))
    sim = case.simulate()
    if sim is not None:
        assert_segments_keep_tokens(sim, case.layout)


@by_encoder_pipeline
@given(data=st.data())
def test_encoder_level_full_retention_is_a_noop(config: PipelineConfig, data: st.DataObject) -> None:
    """Guarantee 5 with an encoder stage: retain = 1.0 drops no frame in the tower and plans no stage."""
    case = data.draw(encoder_cases(config, st.builds(Budget, st.just(1.0), st.sampled_from(["input",
                                                                                            "layer_average"]))))
    assert case.pipeline.reduce_frames(case.hidden, case.layout.tokens_per_frame, case.num_layers) is None
    sim = case.simulate()
    assert sim is not None, "retain = 1.0 must never be refused"
    assert_noop(sim)


@by_encoder_pipeline
@given(data=st.data())
def test_encoder_keeps_whole_frames_and_at_least_what_the_first_stage_needs(config: PipelineConfig,
                                                                            data: st.DataObject) -> None:
    """The encoder stage keeps sorted frames, at least `encoder_min_frames` of them; its merge map sends
    dropped frames to kept ones; the tokens entering the LLM come from kept frames only."""
    case = data.draw(encoder_cases(config))
    sim = case.simulated()
    pipeline, layout = case.pipeline, case.layout
    reduction = pipeline.reduce_frames(case.hidden, layout.tokens_per_frame, case.num_layers)
    if reduction is None:
        return
    floor = pipeline.encoder_min_frames(layout.num_frames, layout.tokens_per_frame, case.num_layers)
    assert floor <= reduction.kept.numel() < layout.num_frames
    assert torch.isin(reduction.merge.target, reduction.kept).all()
    assert not torch.isin(reduction.merge.source, reduction.kept).any()
    assert torch.isin(layout.frame_of(sim.kept[0]), reduction.kept).all()
