"""The strategy zoo on small inputs whose correct answer is known by hand."""

from __future__ import annotations

import math

import pytest
import torch

from prunekit import Budget, BudgetError, Pipeline, Segments, Stage, VideoLayout
from prunekit.budget import realized_retention
from prunekit.ops.cluster import density_peaks, dpc_knn
from prunekit.ops.diversity import max_min_diversity
from prunekit.ops.ranking import spread_scores
from prunekit.strategies.dycoke import TemporalMergeSelector
from prunekit.strategies.fastv import TopRelevanceSelector
from prunekit.strategies.fastvid import DySegSegmenter, FastVIDMerger
from prunekit.strategies.framefusion import CascadedSimilarityMerger, pruning_ratio
from prunekit.strategies.holitom import HoliTomMerger, StaticWindowSegmenter, best_windows
from prunekit.strategies.prunevid import DPCSegmenter, PruneVidMerger, refine_labels
from prunekit.strategies.vidcom2 import DistinctTokenSelector, UniquenessAllocator
from prunekit.strategies.visionzip import VisionZipMerger
from prunekit.types import SelectionContext


def layout_of(frames: int, grid: tuple[int, int]) -> VideoLayout:
    """Visual tokens at positions 3.. of a sequence with 3 text tokens before and 2 after."""
    return VideoLayout.contiguous(3, frames, grid, 3 + frames * grid[0] * grid[1] + 2)


def context_of(layout: VideoLayout, ids: torch.Tensor, relevance: torch.Tensor | None = None) -> SelectionContext:
    return SelectionContext(frame=layout.frame_of(ids), position=layout.position_of(ids), grid=layout.grid,
                            relevance=relevance)


def basis(n: int, dim: int) -> torch.Tensor:
    """``n`` mutually orthogonal unit vectors of size ``dim``."""
    return torch.eye(dim)[:n]


def pairs(merge) -> set[tuple[int, int]]:  # noqa: ANN001
    return set(zip(merge.source.tolist(), merge.target.tolist(), strict=True))


# -- shared ops ---------------------------------------------------------------------------------


def test_max_min_diversity_picks_the_isolated_point_first_then_the_farthest():
    """Five unit vectors at 0, 10, 90, 180 and 185 degrees (cosine distance 1 - cos): 90 degrees is
    farthest from its nearest neighbour; then 185 (1 - cos 95 > 1); then 0 (distance 1 from 90)."""
    angles = torch.tensor([0.0, 10.0, 90.0, 180.0, 185.0]) * math.pi / 180
    points = torch.stack([angles.cos(), angles.sin()], 1)
    dist = 1 - points @ points.T
    assert max_min_diversity(dist, 1).tolist() == [2]
    assert max_min_diversity(dist, 2).tolist() == [2, 4]
    assert max_min_diversity(dist, 3).tolist() == [0, 2, 4]


def test_max_min_diversity_never_repeats_coincident_points():
    dist = torch.zeros(4, 4)
    assert max_min_diversity(dist, 3).tolist() == [0, 1, 2]


def test_density_peaks_centre_each_cluster_at_its_densest_first_token():
    """Three copies of a and two of b (k = 4): the a's are denser; the first a is the global peak and
    the first b is the peak of its cluster; every other token has a denser twin at distance 0."""
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    x = torch.stack([a, b, a, b, a])
    score, _ = density_peaks(x, 4)
    assert score[0] > score[1] > 0 and score[2] == score[3] == score[4] == 0
    centers, assign = dpc_knn(x, 2, 4)
    assert centers.tolist() == [0, 1] and assign.tolist() == [0, 1, 0, 1, 0]


def test_spread_scores_rank_evenly_spaced_items_first():
    assert torch.topk(spread_scores(8), 2).indices.sort().values.tolist() == [0, 4]
    assert torch.topk(spread_scores(8), 4).indices.sort().values.tolist() == [0, 2, 4, 6]


# -- FastV / PDrop ------------------------------------------------------------------------------


def test_fastv_keeps_the_half_most_attended_tokens_from_layer_two():
    layout = layout_of(2, (2, 2))
    attention = torch.tensor([0.1, 0.9, 0.3, 0.8, 0.2, 0.7, 0.05, 0.6])
    sim = Pipeline.from_preset("fastv").simulate(torch.randn(2, 4, 8), layout, 4, attention=attention)
    assert [(s.layer, s.keep) for s in sim.stages] == [(2, 4)]
    assert sim.kept[0].tolist() == [1, 3, 5, 7]


def test_pdrop_halves_the_most_attended_tokens_at_quarter_depths():
    layout = layout_of(4, (2, 2))
    attention = torch.arange(16.0).flip(0)  # token 0 most attended
    sim = Pipeline.from_preset("pdrop").simulate(torch.randn(4, 4, 8), layout, 32, attention=attention)
    assert [(s.layer, s.keep) for s in sim.stages] == [(8, 8), (16, 4), (24, 2)]
    assert [k.tolist() for k in sim.kept] == [list(range(8)), list(range(4)), [0, 1]]


@pytest.mark.parametrize("name", ["fastv", "pdrop"])
def test_in_llm_only_presets_refuse_an_input_budget(name: str):
    with pytest.raises(BudgetError, match="mode='input'"):
        Pipeline.from_preset(name, Budget(0.3, "input")).simulate(torch.randn(4, 4, 8), layout_of(4, (2, 2)), 28)


def test_top_relevance_per_frame_splits_the_count_over_frames():
    layout = layout_of(2, (1, 3))
    ids = torch.arange(6)
    relevance = torch.tensor([1.0, 0.9, 0.0, 0.2, 0.1, 0.3])
    selector = TopRelevanceSelector(per_frame=True)
    assert selector.select(torch.randn(6, 4), 2, context_of(layout, ids, relevance)).tolist() == [0, 5]
    assert TopRelevanceSelector().select(torch.randn(6, 4), 2, context_of(layout, ids, relevance)).tolist() == [0, 1]


# -- FrameFusion --------------------------------------------------------------------------------


def static_video(frames: int, per_frame: int, dim: int = 8, seed: int = 0) -> torch.Tensor:
    """``frames`` copies of one frame of ``per_frame`` random tokens."""
    frame = torch.randn(per_frame, dim, generator=torch.Generator().manual_seed(seed))
    return frame.expand(frames, per_frame, dim).clone()


def test_framefusion_merges_repeated_tokens_into_the_first_frame():
    """Three frames of 4 tokens; frame 2 changes only position 3. Seven tokens repeat their
    predecessor (similarity 1 >= 0.6) and fold into frame 0."""
    feats = static_video(3, 4)
    feats[2, 3] = -feats[1, 3]
    layout = layout_of(3, (2, 2))
    kept, merge = CascadedSimilarityMerger().merge(feats, layout, Segments.single(3), keep=5)
    assert kept.tolist() == [0, 1, 2, 3, 11]
    assert pairs(merge) == {(4, 0), (5, 1), (6, 2), (7, 3), (8, 0), (9, 1), (10, 2)}


def test_framefusion_merges_only_the_most_similar_when_the_count_is_reached():
    feats = static_video(2, 4)
    feats[1, 0] = feats[0, 0] + 0.3 * torch.randn(8, generator=torch.Generator().manual_seed(1))
    kept, merge = CascadedSimilarityMerger().merge(feats, layout_of(2, (2, 2)), Segments.single(2), keep=5)
    assert kept.tolist() == [0, 1, 2, 3, 4] and pairs(merge) == {(5, 1), (6, 2), (7, 3)}


def test_framefusion_keeps_more_when_too_few_tokens_are_similar_and_the_pipeline_trims():
    feats = static_video(2, 4)
    feats[1, [0, 2, 3]] = -feats[0, [0, 2, 3]]
    kept, merge = CascadedSimilarityMerger().merge(feats, layout_of(2, (2, 2)), Segments.single(2), keep=3)
    assert kept.numel() == 7 and pairs(merge) == {(5, 1)}
    sim = Pipeline.from_preset("framefusion", Budget(0.375, "input")).simulate(
        feats, layout_of(2, (2, 2)), 28, attention=torch.arange(8.0))
    assert sim.kept[0].numel() == 3


def test_framefusion_never_merges_across_segments():
    feats = static_video(2, 4)
    kept, merge = CascadedSimilarityMerger().merge(feats, layout_of(2, (2, 2)), Segments((0, 1), 2), keep=4)
    assert kept.numel() == 8 and len(merge) == 0


def test_framefusion_pruning_ratio_is_the_references_formula():
    """thu-nics/FrameFusion ``_compute_pruning_ratio``: before any round, 1 - cost; after rounds that
    removed 20% then 50%, the survivors s = 0.8 then 0.4 have spent 1.2 layers, and the other 26
    layers must average (28 * 0.3 - 1.2) / 26 = 0.2769 of N, i.e. keep 0.6923 of the 0.4 alive."""
    assert pruning_ratio([], 0.3, 28) == pytest.approx(0.7)
    assert pruning_ratio([0.2, 0.5], 0.3, 28) == pytest.approx(1 - (28 * 0.3 - 1.2) / (26 * 0.4))
    assert pruning_ratio([0.05], 0.99, 28) == 0.0  # the cost needs more than what is alive: prune nothing
    with pytest.raises(BudgetError, match="larger budget"):
        pruning_ratio([0.0] * 10, 0.3, 28)


def test_framefusion_static_video_merges_up_to_one_minus_cost_and_never_prunes():
    """The issue's case: 8 identical frames of 16 tokens, cost 0.3. All 112 later tokens qualify,
    more than the bound 0.7 * 128 = 89.6, so the 89 most similar merge, 39 stay, nothing is pruned."""
    feats, layout = static_video(8, 16), layout_of(8, (4, 4))
    pipeline = Pipeline.from_preset("framefusion")
    assert pipeline.start(feats, layout, 28).stages == [Stage(0, 39)]
    sim = pipeline.simulate(feats, layout, 28, attention=torch.rand(128))
    assert [k.numel() for k in sim.kept] == [39]


def test_framefusion_prunes_once_where_merging_stops_to_the_exact_budget():
    """Only frame 1 repeats frame 0 (16 of 128 tokens, 12.5% >= 10%): round 1 merges them; round 2
    finds nothing (0% < 10%) and merging stops after layer 1's attention, so the one prune is at layer
    2 with the count that makes the 28-layer average exactly 0.3."""
    gen = torch.Generator().manual_seed(3)
    feats = torch.randn(8, 16, 256, generator=gen)  # independent tokens: cosine far below 0.6
    feats[1] = feats[0]
    layout = layout_of(8, (4, 4))
    stages = Pipeline.from_preset("framefusion").start(feats, layout, 28).stages
    keep = round((0.3 * 128 * 28 - 2 * 112) / 26)
    assert stages == [Stage(0, 112), Stage(2, keep)]
    assert abs(realized_retention(stages, 128, 28)["layer_average"] - 0.3) <= 1 / 128


# -- VisionZip ----------------------------------------------------------------------------------


def test_visionzip_keeps_dominant_tokens_and_merges_the_rest_into_strided_contexts():
    """One frame of 8 tokens, quota 4, half dominant: tokens 6 and 1 have the highest relevance;
    the remaining 0, 2, 3, 4, 5, 7 get targets every 3rd (0 and 4), and each other token joins the
    target it is most similar to."""
    e = basis(4, 4)
    feats = torch.stack([e[0], e[3], e[2], e[0], e[2], e[0], e[3], e[2]])[None]  # [1, 8, 4]
    feats[0, 4] += 0.1 * e[1]  # target 4 is the e2 side
    relevance = torch.tensor([0.0, 0.9, 0.1, 0.2, 0.3, 0.1, 1.0, 0.2])
    merger = VisionZipMerger(dominant_ratio=0.5)
    kept, merge = merger.merge(feats, layout_of(1, (2, 4)), Segments.single(1), 4, relevance=relevance)
    assert kept.tolist() == [0, 1, 4, 6]
    assert pairs(merge) == {(3, 0), (5, 0), (2, 4), (7, 4)}


def test_visionzip_preset_keeps_each_frames_most_attended_tokens():
    layout = layout_of(2, (2, 4))
    attention = torch.tensor([5, 9, 1, 2, 3, 4, 8, 7, 9, 1, 2, 8, 3, 7, 4, 5], dtype=torch.float)
    sim = Pipeline.from_preset("visionzip", Budget(0.5, "input")).simulate(
        torch.randn(2, 8, 16), layout, 28, attention=attention)
    kept = set(sim.kept[0].tolist())
    assert {1, 6, 7} <= kept and {8, 11, 13} <= kept and len(kept) == 8  # 3 dominant + 1 context per frame


# -- DivPrune / CDPruner ------------------------------------------------------------------------


def test_divprune_preset_keeps_the_max_min_diverse_tokens():
    angles = torch.tensor([0.0, 10.0, 90.0, 180.0, 185.0, 5.0]) * math.pi / 180
    feats = torch.stack([angles.cos(), angles.sin()], 1).view(1, 6, 2)
    sim = Pipeline.from_preset("divprune", Budget(0.5, "input")).simulate(feats, layout_of(1, (2, 3)), 28)
    assert sim.kept[0].tolist() == [0, 2, 4]


def test_cdpruner_keeps_one_of_two_duplicates_and_follows_relevance():
    """Tokens a, a, b, c, d (b, c, d orthogonal): the most relevant a is picked first, its duplicate
    then adds nothing, so c (more relevant) and b fill the slots; d, the least relevant, has
    relevance 0 after min-max normalisation and is never picked."""
    e = basis(4, 4)
    feats = torch.stack([e[0], e[0], e[1], e[2], e[3]])[None]
    attention = torch.tensor([0.5, 1.0, 0.3, 0.4, 0.0])
    sim = Pipeline.from_preset("cdpruner", Budget(0.6, "input")).simulate(
        feats, layout_of(1, (1, 5)), 28, attention=attention)
    assert sim.kept[0].tolist() == [1, 2, 3]


# -- DyCoke -------------------------------------------------------------------------------------


def test_dycoke_keeps_the_first_frame_and_the_changed_tokens_of_the_others():
    """Window of 4 frames of 4 tokens, 7 kept: frame 0 whole, one token in each other frame — the one
    least similar to its reference (1 -> 0, 2 -> 0, 3 -> 2)."""
    feats = static_video(4, 4)
    feats[1, 2] = -feats[0, 2]  # frame 1 differs from frame 0 at position 2
    feats[2, 1] = -feats[0, 1]  # frame 2 differs from frame 0 at position 1
    feats[3] = feats[2]
    feats[3, 0] = -feats[2, 0]  # frame 3 differs from frame 2 at position 0
    layout = layout_of(4, (2, 2))
    # 7 of 16 (DyCoke's own count, 4 + 3 * int(0.3 * 4)); the preset's 47.5% rounds to 8
    sim = Pipeline.from_preset("dycoke", budget=Budget(7 / 16, "input")).simulate(feats, layout, 28)
    assert sim.kept[0].tolist() == [0, 1, 2, 3, 6, 9, 12]


def test_dycoke_below_one_frame_per_window_keeps_spread_tokens_of_the_first_frame():
    layout = layout_of(3, (2, 2))
    pick = TemporalMergeSelector().select(torch.randn(12, 8), 2, context_of(layout, torch.arange(12)))
    assert pick.tolist() == [0, 2]


# -- PruneVid -----------------------------------------------------------------------------------


def test_prunevid_segments_follow_the_frame_clusters():
    e = basis(2, 8)
    feats = torch.cat([e[0].expand(4, 4, 8), e[1].expand(4, 4, 8)])
    feats = feats + 0.01 * torch.randn(8, 4, 8, generator=torch.Generator().manual_seed(0))
    assert DPCSegmenter().segment(feats, layout_of(8, (2, 2))).starts == (0, 4)


def test_prunevid_refinement_keeps_each_clusters_longest_run():
    assert refine_labels([0, 0, 1, 0, 0, 0, 1, 1]) == [0, 0, 0, 0, 0, 0, 1, 1]
    assert refine_labels([2, 1, 1, 1, 2]) == [1, 1, 1, 1, 1]


def test_prunevid_averages_static_tokens_and_clusters_each_group():
    """Two frames of 4 tokens; positions 0 and 1 repeat (static), 2 and 3 change. Units: static
    {0+4, 1+5}, dynamic {2, 3} and {6, 7}; with 3 tokens each group keeps one DPC-KNN centre (the
    earlier unit on ties) and the rest merge into it."""
    feats = static_video(2, 4)
    feats[1, 2:] = -feats[0, 2:]
    kept, merge = PruneVidMerger().merge(feats, layout_of(2, (2, 2)), Segments.single(2), 3)
    assert kept.tolist() == [0, 2, 6]
    assert pairs(merge) == {(4, 0), (1, 0), (5, 0), (3, 2), (7, 6)}


# -- FastVID ------------------------------------------------------------------------------------


def test_dyseg_cuts_at_the_lowest_similarities_and_below_tau():
    e = basis(3, 8)
    frames = torch.stack([e[0], e[0], e[0] + 0.3 * e[1], e[1], e[1], e[2]])  # cosines 1, .96, .29, 1, 0
    feats = frames[:, None].expand(6, 4, 8)
    assert DySegSegmenter(c=2, tau=0.5).segment(feats, layout_of(6, (2, 2))).starts == (0, 3, 5)
    assert DySegSegmenter(c=1, tau=0.99).segment(feats, layout_of(6, (2, 2))).starts == (0, 2, 3, 5)


def test_fastvid_keeps_salient_tokens_and_one_density_peak_per_cluster():
    """One frame of 8 tokens, quota 5, d = 0.4: the 3 most relevant are salient; the other 5 are
    three copies of a and two of b, whose first copies are the density peaks (context tokens)."""
    e = basis(4, 4)
    feats = torch.stack([e[2], e[0], e[3], e[1], e[0], e[1], e[0], e[2]])[None]
    relevance = torch.tensor([0.9, 0.1, 0.8, 0.0, 0.2, 0.1, 0.3, 1.0])
    kept, merge = FastVIDMerger().merge(feats, layout_of(1, (2, 4)), Segments.single(1), 5, relevance=relevance)
    assert kept.tolist() == [0, 1, 2, 3, 7]
    assert pairs(merge) == {(4, 1), (6, 1), (5, 3)}


def test_fastvid_gives_context_budget_to_anchor_frames_only():
    feats = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(3))
    relevance = torch.zeros(32)
    relevance[[0, 8, 16, 24]] = 1.0  # one salient token per frame
    kept, _ = FastVIDMerger(d=0.5).merge(feats, layout_of(4, (2, 4)), Segments.single(4), 8, relevance=relevance)
    frames = torch.div(kept, 8, rounding_mode="floor")
    assert {0, 8, 16, 24} <= set(kept.tolist())  # retain 2 per frame: 1 salient + 1 context
    assert torch.bincount(frames, minlength=4).tolist() == [1, 1, 1, 5]  # context only on frame 3


# -- HoliTom ------------------------------------------------------------------------------------


def test_holitom_windows_cover_the_static_stretch():
    feats = static_video(5, 4)
    feats[3:] = torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(4))
    feats[4] = feats[3]
    assert StaticWindowSegmenter().segment(feats, layout_of(5, (2, 2))).starts == (0, 3)


def test_holitom_dynamic_programme_prefers_single_frames_when_nothing_is_static():
    assert best_windows(torch.zeros(4, 4), 1024) == [0, 1, 2, 3]


def test_holitom_merges_static_runs_then_keeps_attended_dynamic_tokens():
    """Window [0, 2] is static at every position (4 units), frame 3 alone is dynamic (4 units).
    With 6 tokens each segment keeps 3: three static centres and frame 3's most attended tokens."""
    feats = static_video(4, 4)
    feats[3] = torch.randn(4, 8, generator=torch.Generator().manual_seed(6))
    relevance = torch.zeros(16)
    relevance[[12, 13, 15]] = torch.tensor([0.5, 1.0, 0.7])
    kept, merge = HoliTomMerger().merge(feats, layout_of(4, (2, 2)), Segments((0, 3), 4), 6, relevance=relevance)
    assert kept[kept >= 12].tolist() == [12, 13, 15] and kept[kept < 4].numel() == 3
    sources = dict(pairs(merge))
    assert set(range(4, 12)) <= set(sources) and all(sources[s] < 4 for s in range(4, 12))


def test_holitom_merges_only_the_most_similar_static_positions_when_the_count_is_large():
    feats = static_video(3, 4)
    feats[1:, 3] += 0.1 * torch.randn(8, generator=torch.Generator().manual_seed(7))  # still > tau
    kept, merge = HoliTomMerger().merge(feats, layout_of(3, (2, 2)), Segments.single(3), 6)
    assert kept.tolist() == [0, 1, 2, 3, 7, 11]
    assert {s for s, _ in pairs(merge)} == {4, 5, 6, 8, 9, 10}


# -- VidCom2 ------------------------------------------------------------------------------------


def vidcom2_video() -> torch.Tensor:
    """Four frames of 8 tokens: frames 0-2 alike, frame 3 far from the video centre."""
    gen = torch.Generator().manual_seed(8)
    common = torch.randn(8, 16, generator=gen)
    feats = common.expand(4, 8, 16) + 0.05 * torch.randn(4, 8, 16, generator=gen)
    feats[3] = -common + 0.05 * torch.randn(8, 16, generator=gen)
    return feats


def test_vidcom2_gives_the_unique_frame_the_larger_budget():
    feats = vidcom2_video()
    allocator = UniquenessAllocator()
    summary = allocator.summarize(feats, Segments(tuple(range(4)), 4))
    assert int(summary[:, 0].argmax()) == 3
    # q = 1/2: the unique frame keeps 1.75 q of its tokens, the others 0.75 q (softmax ~ one-hot)
    assert allocator.allocate([8, 8, 8, 8], 16, summary) == [3, 3, 3, 7]


def test_vidcom2_keeps_the_most_distinct_token_of_a_frame():
    e = basis(4, 4)
    frame = torch.stack([e[0] + e[1], e[0] + e[1], e[2] + e[3], e[0] + e[1]])  # token 2 is the outlier
    layout = layout_of(2, (2, 2))
    feats = torch.stack([frame, frame]).reshape(8, 4)
    picks = DistinctTokenSelector().select_segments(
        [feats[:4], feats[4:]], [1, 1], [context_of(layout, torch.arange(4)), context_of(layout, torch.arange(4, 8))])
    assert [p.tolist() for p in picks] == [[2], [2]]
