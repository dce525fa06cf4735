"""HoliTom: global temporal segmentation, static temporal merge and spatial merge before the LLM."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from prunekit.interfaces import Segmenter, StageConfig, TokenMerger
from prunekit.merging.plan import MergePlan, quotas, scores_or_spread
from prunekit.merging.static_tokens import cluster_group, limit_static, split_segments
from prunekit.ops.ranking import top_indices
from prunekit.ops.similarity import same_position_similarity
from prunekit.strategies.preset_fields import PRE_LLM, before_llm, declare_preset
from prunekit.strategies.registration import register_stage
from prunekit.types import MergeMap, Segments, VideoLayout

HOLITOM_CITATION = (
    "Shao et al., HoliTom: Holistic Token Merging for Fast Video Large Language Models, NeurIPS 2025.")

declare_preset(
    "holitom",
    "HoliTom (NeurIPS 2025): global static windows, temporal + spatial merge before the LLM (10%).",
    description=(
        f"HoliTom without its inner-LLM merge, {PRE_LLM} (default 10% with tau=0.65; the paper "
        "uses tau=0.8 at 15-25%): dynamic-programming static windows, static tokens averaged over "
        "time and DPC-KNN merged, dynamic tokens kept by layer-0 attention."),
    citation=HOLITOM_CITATION, segmenter={"name": "static_windows", "tau": 0.65},
    merger={"name": "holitom", "tau": 0.65}, selector={"name": "top_relevance"},
    scheduler=before_llm(0.10))


def static_counts(sim: torch.Tensor, tau: float) -> torch.Tensor:
    """``[F, F]``: entry ``(s, e)`` is the number of positions whose same-position similarity stays
    above ``tau`` over frames ``s..e``, times ``e - s`` (the tokens a static merge of the window
    removes); 0 for ``e <= s``. ``sim [F, P]`` is the similarity to the previous frame."""
    num_frames = sim.shape[0]
    out = torch.zeros(num_frames, num_frames)
    above = (sim > tau).float().cpu()  # [F, P]
    for start in range(num_frames - 1):
        alive = torch.cumprod(above[start + 1:], 0).sum(1)  # [F - start - 1]
        out[start, start + 1:] = alive * torch.arange(1, num_frames - start)
    return out


def best_windows(counts: torch.Tensor, max_window: int) -> list[int]:
    """HoliTom's dynamic programme: contiguous windows maximising the total static count; returns
    the first frame of every window. Ties prefer shorter windows (and single frames)."""
    num_frames = counts.shape[0]
    best, start_of = [0.0] * num_frames, [0] * num_frames
    table = counts.tolist()
    for i in range(num_frames):
        best[i], start_of[i] = (best[i - 1] if i else 0.0), i
        for size in range(2, min(i + 1, max_window) + 1):
            j = i - size
            value = (best[j] if j >= 0 else 0.0) + table[j + 1][i]
            if value > best[i]:
                best[i], start_of[i] = value, j + 1
    starts, i = [], num_frames - 1
    while i >= 0:
        starts.append(start_of[i])
        i = start_of[i] - 1
    return starts[::-1]


@register_stage
class StaticWindowSegmenter(Segmenter):
    """HoliTom's global temporal segmentation (Shao et al., NeurIPS 2025): windows chosen by dynamic
    programming to maximise the number of tokens a static merge removes, where a window ``[s, e]``
    scores (positions whose same-position cosine stays above ``tau`` throughout) x (``e - s``)."""

    class Config(StageConfig):
        name: Literal["static_windows"] = "static_windows"
        tau: float = Field(0.8, ge=-1.0, le=1.0,
            description="same-position cosine a static position keeps throughout a window")
        max_window: int = Field(1024, ge=1, description="longest window, in frames")

    def segment(self, features: torch.Tensor, layout: VideoLayout) -> Segments:
        counts = static_counts(same_position_similarity(features), self.config.tau)
        return Segments(tuple(best_windows(counts, self.config.max_window)), layout.num_frames)


@register_stage
class HoliTomMerger(TokenMerger):
    """HoliTom's outer-LLM merge per segment window (Shao et al., NeurIPS 2025).

    Steps:

    1. temporal: positions whose same-position cosine stays above ``tau`` over the whole window
       are static; each static run is averaged into the window's first-frame token;
    2. the stage's count is then split over segments and, inside a segment, over the static
       group and each frame's dynamic tokens in proportion to their sizes (HoliTom rescales its
       ratio by the same rule, then rounds per frame; prunekit apportions, so the count is exact);
    3. dynamic tokens: the most relevant of each frame are kept (HoliTom's default D = 0);
    4. static tokens: DPC-KNN centres are kept and every other static unit is merged into its
       nearest centre; like HoliTom, the density uses k = min(``knn``, centres kept).

    If the static merge alone would remove more tokens than the stage allows, only the most
    similar static positions are merged. Adaptations: relevance is layer-0 last-query attention
    (HoliTom: the SigLIP last layer's attention); merged tokens are plain means (HoliTom's default
    weights the centre by beta = 0.6 unless ``NO_BETA=1``). HoliTom's inner-LLM merge (layer 18,
    r = 0.5) is not included: prunekit merges only before the LLM.
    """

    class Config(StageConfig):
        name: Literal["holitom"] = "holitom"
        tau: float = Field(0.8, ge=-1.0, le=1.0,
            description="same-position cosine a static position keeps over the window")
        knn: int = Field(7, ge=1, description="neighbours k of the DPC-KNN density (at most the centres kept)")

    needs_relevance = True

    def merge(self, features: torch.Tensor, layout: VideoLayout, segments: Segments, keep: int,
              relevance: torch.Tensor | None = None) -> tuple[torch.Tensor, MergeMap]:
        per_frame = layout.tokens_per_frame
        sim = same_position_similarity(features)  # [F, P]
        bounds = segments.bounds
        scores = [sim[a + 1:b].min(0).values if b - a > 1 else torch.full_like(sim[0], float("-inf"))
                  for a, b in bounds]
        static = limit_static(scores, [b - a for a, b in bounds], self.config.tau, layout.num_visual - keep)
        units = split_segments(features.reshape(layout.num_visual, -1), per_frame, bounds, static)
        plan = MergePlan()
        for seg, quota in zip(units, quotas([len(u) for u in units], keep), strict=True):
            shares = quotas([len(g) for g in seg.groups], quota, at_least_one=False)
            # HoliTom's merge_tokens_by_density: k = min(K, cluster_num), not min(K, tokens)
            cluster_group(seg.static, shares[0], min(self.config.knn, shares[0]), plan)
            for group, share in zip(seg.dynamic, shares[1:], strict=True):
                plan.add(group, top_indices(scores_or_spread(relevance, group.rep), share))
        return plan.result()
