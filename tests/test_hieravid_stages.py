"""HieraVid's stages on small inputs whose right answer is worked out by hand (hieravid.md)."""

from __future__ import annotations

import itertools

import pytest
import torch

from prunekit import Segments, VideoLayout
from prunekit.ops.dpp import conditional_kernel, greedy_map
from prunekit.strategies.hieravid.allocator import MVOffsetAllocator, mv_scores
from prunekit.strategies.hieravid.merger import SamePositionMerger
from prunekit.strategies.hieravid.segmenter import SimilaritySegmenter, frame_scores
from prunekit.strategies.hieravid.selector import ConditionalDPPSelector, relevance_spread
from prunekit.types import SelectionContext

E1, E2, E3 = torch.eye(3)


def _video(frames: list[list[torch.Tensor]]) -> tuple[torch.Tensor, VideoLayout]:
    """``[F, P, D]`` features from per-frame token lists, with a 1 x P contiguous layout."""
    feats = torch.stack([torch.stack(tokens) for tokens in frames])
    num_frames, per_frame = feats.shape[:2]
    return feats, VideoLayout.contiguous(0, num_frames, (1, per_frame), num_frames * per_frame)


# -- level 1: segmentation ----------------------------------------------------------------------


def test_segmenter_cuts_where_a_frame_stops_resembling_its_predecessor() -> None:
    a, b, c = E1, E2, E3
    feats, layout = _video([
        [a, a, a, a, a],
        [a, a, a, a, a],      # 5/5 similar: same segment
        [b, b, b, b, b],      # 0/5: cut at 2
        [b, b, c, c, c],      # 2/5 = 0.4, not below beta: same segment
        [b, c, a, a, a],      # only position 1 (c -> c) matches: 1/5 < 0.4: cut at 4
        [b, c, a, a, a],
    ])
    scores = frame_scores(feats, tau=0.6)
    assert scores.tolist() == pytest.approx([0.0, 1.0, 0.0, 0.4, 0.2, 1.0])
    assert SimilaritySegmenter().segment(feats, layout) == Segments((0, 2, 4), 6)


def test_segmenter_uses_tau_on_cosine_similarity() -> None:
    near = torch.tensor([0.7, (1 - 0.49) ** 0.5, 0.0])   # cos with E1 = 0.7 > 0.6
    far = torch.tensor([0.5, 0.75 ** 0.5, 0.0])          # cos with E1 = 0.5 < 0.6
    feats, layout = _video([[E1, E1], [near, near], [E1, E1], [far, far]])
    # frame 1 vs 0: 0.7 (similar); frame 2 vs 1: 0.7 (similar); frame 3 vs 2: 0.5 (cut)
    assert SimilaritySegmenter().segment(feats, layout).starts == (0, 3)
    assert SimilaritySegmenter(tau=0.4).segment(feats, layout).starts == (0,)
    assert SimilaritySegmenter(tau=0.8).segment(feats, layout).starts == (0, 1, 2, 3)


def test_segmenter_treats_zero_frames_as_dissimilar_and_one_frame_as_one_segment() -> None:
    zero = torch.zeros(3)
    feats, layout = _video([[E1, E1], [zero, zero], [zero, zero]])
    assert SimilaritySegmenter().segment(feats, layout).starts == (0, 1, 2)
    feats, layout = _video([[E1, E2]])
    assert SimilaritySegmenter().segment(feats, layout) == Segments.single(1)


# -- level 1: same-position merge ---------------------------------------------------------------


def test_merger_averages_a_run_into_its_first_token() -> None:
    # one grid position; frames 1 and 2 are near-copies of frame 0, frame 3 is a new scene
    x0, x1, x2, x3 = (torch.tensor(v) for v in ([1.0, 0.0], [1.0, 0.1], [1.0, 0.3], [0.0, 1.0]))
    feats, layout = _video([[x0], [x1], [x2], [x3]])
    kept, merge = SamePositionMerger().merge(feats, layout, Segments.single(4), keep=2)
    assert kept.tolist() == [0, 3]
    assert merge.source.tolist() == [1, 2] and merge.target.tolist() == [0, 0]
    merged = merge.apply(feats.reshape(4, 2))
    assert torch.allclose(merged[0], (x0 + x1 + x2) / 3)       # the run's mean sits on frame 0
    assert torch.equal(merged[3], x3)                          # untouched tokens are unchanged


def test_merger_splits_runs_at_kept_tokens() -> None:
    # frame 2 differs from frame 1 (kept), frame 3 repeats frame 2: two runs, 1 -> 0 and 3 -> 2
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    feats, layout = _video([[a], [a], [b], [b]])
    kept, merge = SamePositionMerger().merge(feats, layout, Segments.single(4), keep=2)
    assert kept.tolist() == [0, 2]
    assert merge.source.tolist() == [1, 3] and merge.target.tolist() == [0, 2]


def test_merger_never_removes_a_segments_first_frame() -> None:
    # four identical frames, but frame 2 opens a segment: only frames 1 and 3 can go
    feats, layout = _video([[E1], [E1], [E1], [E1]])
    kept, merge = SamePositionMerger().merge(feats, layout, Segments((0, 2), 4), keep=1)
    assert kept.tolist() == [0, 2]                             # keeps more than asked: nothing else is eligible
    assert merge.source.tolist() == [1, 3] and merge.target.tolist() == [0, 2]


def test_merger_removes_the_most_similar_tokens_first_per_position() -> None:
    # two positions; position 0 repeats exactly, position 1 drifts: remove position 0's copies first
    drift = [torch.tensor([1.0, 0.0]), torch.tensor([0.8, 0.6]), torch.tensor([0.0, 1.0])]
    same = torch.tensor([0.3, 0.7])
    feats, layout = _video([[same, drift[0]], [same, drift[1]], [same, drift[2]]])
    kept, merge = SamePositionMerger().merge(feats, layout, Segments.single(3), keep=4)
    assert kept.tolist() == [0, 1, 3, 5]                       # ids 2 and 4 (position 0, frames 1-2) merged
    assert merge.target.tolist() == [0, 0]


# -- level 1: MV budget offsets ------------------------------------------------------------------


def _mv_reference(feats: torch.Tensor, k: float) -> torch.Tensor:
    """hieravid.md level 1, step 4, written out with loops (float64)."""
    f = feats.double()
    count = f.shape[0]

    def cos(u: torch.Tensor, v: torch.Tensor) -> float:
        return float(u @ v / (u.norm() * v.norm()))

    mv = []
    for i in range(count):
        a1 = cos(f[i], f[:i].mean(0)) if i > 0 else 0.0
        a2 = cos(f[i], f[i + 1:].mean(0)) if i < count - 1 else 0.0
        mv.append(k * a1 + (1 - k) * (1 - a2))
    mv_t = torch.tensor(mv, dtype=torch.float64)
    return (mv_t - mv_t.mean()) / mv_t.std(unbiased=False)


def test_mv_scores_follow_the_formula() -> None:
    feats = torch.stack([E1, E1, E2])
    # a1 = [0, 1, 0]; a2 = [cos(e1, (e1+e2)/2) = 1/sqrt(2), 0, 0]; MV = [0.1464, 1.0, 0.5] before z-scoring
    assert torch.allclose(mv_scores(feats, 0.5).double(), _mv_reference(feats, 0.5), atol=1e-6)
    gen = torch.Generator().manual_seed(3)
    for count, k in ((2, 0.5), (5, 0.2), (9, 0.9)):
        feats = torch.randn(count, 6, generator=gen)
        assert torch.allclose(mv_scores(feats, k).double(), _mv_reference(feats, k), atol=1e-5)


def test_mv_scores_are_zero_for_one_segment_or_no_spread() -> None:
    assert mv_scores(torch.randn(1, 4), 0.5).tolist() == [0.0]
    # orthogonal segments: a1 = a2 = 0 everywhere, MV = 0.5 for all, std 0 -> no offsets
    assert mv_scores(torch.stack([E1, E2, E3]), 0.5).tolist() == [0.0] * 3


def test_mv_scores_of_identical_segments_favour_the_last() -> None:
    # by the formula's boundary rule (a1 = 0 first, a2 = 0 last): MV = [0, 0.5, 0.5, 1]
    z = mv_scores(torch.stack([E1, E1, E1, E1]), 0.5)
    expected = torch.tensor([0.0, 0.5, 0.5, 1.0])
    assert torch.allclose(z, (expected - expected.mean()) / expected.std(unbiased=False), atol=1e-6)


def test_mv_allocator_shifts_budget_toward_high_mv_segments_and_sums_exactly() -> None:
    # z = [-1.149, 1.289, -0.139]; ratios 0.3 + 0.1 z = [0.185, 0.429, 0.286] of 100 tokens each;
    # floors 18 + 42 + 28 = 88, the two units left go to the largest remainders (.885, .606)
    counts = MVOffsetAllocator().allocate([100, 100, 100], 90, mv_scores(torch.stack([E1, E1, E2]), 0.5))
    assert counts == [18, 43, 29]


@pytest.mark.parametrize(("sizes", "total"), [([100, 50, 10], 40), ([7, 1, 300, 2], 4), ([5, 5], 10),
                                              ([1000, 3, 3, 3, 3], 11), ([640], 17)])
def test_mv_allocator_counts_sum_exactly_within_bounds(sizes: list[int], total: int) -> None:
    feats = torch.randn(len(sizes), 8, generator=torch.Generator().manual_seed(len(sizes)))
    counts = MVOffsetAllocator().allocate(sizes, total, mv_scores(feats, 0.5))
    assert sum(counts) == total
    assert all(1 <= c <= s for c, s in zip(counts, sizes, strict=True))


def test_mv_allocator_summary_is_the_mv_of_segment_means_on_the_host() -> None:
    feats = torch.randn(6, 4, 8, generator=torch.Generator().manual_seed(0))
    segments = Segments((0, 2, 5), 6)
    means = torch.stack([feats[a:b].mean((0, 1)) for a, b in segments.bounds])
    summary = MVOffsetAllocator(k=0.3).summarize(feats, segments)
    assert summary.device.type == "cpu"
    assert torch.allclose(summary, mv_scores(means, 0.3), atol=1e-6)


def test_mv_allocator_clamps_ratios() -> None:
    # with a huge scale, the low-MV segment would go negative: it is clamped to min_ratio (5%)
    counts = MVOffsetAllocator(scale=10.0).allocate([100, 100, 100], 90, mv_scores(torch.stack([E1, E1, E2]), 0.5))
    assert sum(counts) == 90
    assert counts[0] == min(counts) and counts[0] >= 1


# -- level 2: conditional DPP ------------------------------------------------------------------


def _greedy_reference(kernel: torch.Tensor, k: int) -> list[int]:
    """Greedy MAP by brute force: each step adds the item maximising det(L[S + i]) (float64)."""
    kernel = kernel.double()
    chosen: list[int] = []
    for _ in range(k):
        best, best_det = -1, -float("inf")
        for i in range(kernel.shape[0]):
            if i in chosen:
                continue
            idx = torch.tensor([*chosen, i])
            det = float(torch.linalg.det(kernel[idx][:, idx]))
            if det > best_det:
                best, best_det = i, det
        chosen.append(best)
    return sorted(chosen)


def _random_psd(n: int, gen: torch.Generator) -> torch.Tensor:
    a = torch.randn(n, n + 2, generator=gen, dtype=torch.float64)
    return a @ a.T / (n + 2) + 0.05 * torch.eye(n, dtype=torch.float64)


@pytest.mark.parametrize("seed", range(20))
def test_greedy_map_equals_brute_force_log_det_greedy(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    n = 3 + seed % 8
    kernel = _random_psd(n, gen)
    for k in range(1, n + 1):
        picked = greedy_map(kernel[None], torch.tensor([k]), torch.ones(1, n, dtype=torch.bool))[0]
        assert picked.tolist() == _greedy_reference(kernel, k), f"n={n}, k={k}"


def test_greedy_map_batches_kernels_of_different_sizes_like_separate_calls() -> None:
    gen = torch.Generator().manual_seed(7)
    sizes, keeps = [4, 9, 6], [2, 5, 6]
    kernels = [_random_psd(n, gen) for n in sizes]
    padded = torch.zeros(3, 9, 9, dtype=torch.float64)
    valid = torch.zeros(3, 9, dtype=torch.bool)
    for b, kern in enumerate(kernels):
        padded[b, : sizes[b], : sizes[b]] = kern
        valid[b, : sizes[b]] = True
    picks = greedy_map(padded, torch.tensor(keeps), valid)
    for kern, k, pick in zip(kernels, keeps, picks, strict=True):
        assert pick.tolist() == _greedy_reference(kern, k)


def test_greedy_map_fills_by_score_once_the_kernel_is_exhausted() -> None:
    # rank-2 kernel over 5 items: two greedy picks, then the fill score decides the rest
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [0.5, 0.5]])
    kernel = v @ v.T
    fill = torch.tensor([[0.0, 0.0, 0.9, 0.1, 0.5]])
    picked = greedy_map(kernel[None], torch.tensor([4]), torch.ones(1, 5, dtype=torch.bool), fill_score=fill)[0]
    # greedy: item 3 (largest diagonal, 4), then item 0 (first of the e1 items); then fill: 2 (0.9), 4 (0.5)
    assert picked.tolist() == [0, 2, 3, 4]


def _context(relevance: torch.Tensor | None, llm_stage: int = 1) -> SelectionContext:
    n = 0 if relevance is None else relevance.numel()
    return SelectionContext(frame=torch.zeros(n, dtype=torch.long), position=torch.arange(n), grid=(1, max(n, 1)),
                            relevance=relevance, layer=7, llm_stage=llm_stage)


@pytest.mark.parametrize(("relevance", "keep", "expected"), [
    ("attention", 1, [1]),            # most attended token
    ("negated_attention", 1, [3]),    # least attended token (the authors' sign)
    ("none", 1, [0]),                 # plain DPP on identical tokens: first index
    ("attention", 2, [1, 2]),         # identical tokens exhaust the kernel: fill by relevance
    ("negated_attention", 2, [0, 3]),
])
def test_dpp_relevance_sign_options(relevance: str, keep: int, expected: list[int]) -> None:
    feats = torch.ones(4, 3)  # identical tokens: S is all ones, so relevance alone decides
    r = torch.tensor([0.1, 1.0, 0.5, 0.0])
    selector = ConditionalDPPSelector(relevance=relevance)
    assert selector.select(feats, keep, _context(r)).tolist() == expected
    assert selector.needs_relevance == (relevance != "none")


def test_dpp_prefers_diverse_tokens_when_relevance_ties() -> None:
    feats = torch.stack([E1, E1 * 2, E2, E1 * 3, E1 + E2])
    picked = ConditionalDPPSelector().select(feats, 2, _context(torch.ones(5))).tolist()
    # one token of the e1 direction and the orthogonal e2: never two copies, never the in-between one
    assert 2 in picked and len({0, 1, 3} & set(picked)) == 1


def test_conditional_kernel_is_diag_r_s_diag_r() -> None:
    feats = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    r = torch.tensor([1.0, 0.5, 0.0])
    s = 2 ** -0.5
    expected = torch.tensor([[1.0, 0.5 * s, 0.0], [0.5 * s, 0.25, 0.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(conditional_kernel(feats, r), expected, atol=1e-6)


# -- level 2 variant: relevance spread ------------------------------------------------------------


@pytest.mark.parametrize(("relevance", "keep", "expected"), [
    ([0.1, 0.9, 0.5, 0.2, 0.3, 0.8], 3, [1, 2, 5]),           # buckets {0,1} {2,3} {4,5}
    ([0.0, 0.0, 1.0, 0.5, 0.2, 0.1, 0.3], 3, [0, 2, 6]),      # 7 tokens: [0, 2) [2, 4) [4, 7)
    ([0.0, 0.0, 0.0, 1.0] + [0.0] * 6, 3, [0, 3, 6]),          # 10 tokens: [0, 3) [3, 6) [6, 10)
    ([0.3, 0.3, 0.3, 0.3], 2, [0, 2]),                         # ties: the bucket's first token
    ([0.5, 0.1, 0.2], 3, [0, 1, 2]),                           # keep = n keeps everything
])
def test_relevance_spread_keeps_the_most_relevant_token_per_bucket(
        relevance: list[float], keep: int, expected: list[int]) -> None:
    assert relevance_spread(torch.tensor(relevance), len(relevance), keep).tolist() == expected


def test_relevance_spread_buckets_are_the_authors_floor_boundaries() -> None:
    """Bucket b is [floor(b*n/k), floor((b+1)*n/k)) as in the authors' ``main.py``, also when k
    does not divide n: a one-hot relevance at a bucket's start is kept, and so are the other
    buckets' first tokens."""
    for n in range(1, 40):
        for k in range(1, n + 1):
            for b in range(k):
                start = b * n // k
                relevance = torch.zeros(n)
                relevance[start] = 1.0
                expected = [c * n // k for c in range(k)]
                assert relevance_spread(relevance, n, k).tolist() == expected, (n, k, b)


def test_relevance_spread_is_used_only_at_the_first_llm_stage() -> None:
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(6, 4, generator=gen)
    r = torch.tensor([0.1, 0.9, 0.5, 0.2, 0.3, 0.8])
    spread = ConditionalDPPSelector(first_stage="relevance_spread")
    dpp = ConditionalDPPSelector(first_stage="dpp")
    assert spread.select(feats, 3, _context(r, llm_stage=0)).tolist() == [1, 2, 5]
    for stage in (1, 2):
        assert torch.equal(spread.select(feats, 3, _context(r, llm_stage=stage)),
                           dpp.select(feats, 3, _context(r, llm_stage=stage)))
    # with the authors' negated sign the spread keeps each bucket's least attended token
    negated = ConditionalDPPSelector(first_stage="relevance_spread", relevance="negated_attention")
    assert negated.select(feats, 3, _context(r, llm_stage=0)).tolist() == [0, 3, 4]


def test_dpp_selection_is_invariant_to_segment_batching() -> None:
    gen = torch.Generator().manual_seed(1)
    segs = [torch.randn(n, 5, generator=gen) for n in (7, 3, 12)]
    rels = [torch.rand(f.shape[0], generator=gen) for f in segs]
    keeps = [4, 3, 5]
    selector = ConditionalDPPSelector()
    batched = selector.select_segments(segs, keeps, [_context(r) for r in rels])
    for f, r, k, pick in zip(segs, rels, keeps, batched, strict=True):
        assert torch.equal(pick, selector.select(f, k, _context(r)))
    assert all(len(set(p.tolist())) == k for p, k in zip(batched, keeps, strict=True))


def test_brute_force_reference_is_itself_exhaustive_for_k_one() -> None:
    """Sanity check of the reference: for k = 1 the best set is the largest diagonal entry."""
    kernel = _random_psd(6, torch.Generator().manual_seed(11))
    best = max(range(6), key=lambda i: float(kernel[i, i]))
    assert _greedy_reference(kernel, 1) == [best]
    # and for k = 2 greedy can only pick among the pairs containing that item
    pairs = [p for p in itertools.combinations(range(6), 2) if best in p]
    best_pair = max(pairs, key=lambda p: float(torch.linalg.det(kernel[list(p)][:, list(p)])))
    assert _greedy_reference(kernel, 2) == sorted(best_pair)
