"""PruneVid: DPC-KNN temporal segments, static/dynamic token merging, then attention pruning.

The ``prunevid`` preset composes `DPCSegmenter` + `PruneVidMerger` before the LLM with the
``top_relevance`` selector (``per_frame``) at layer 10. PruneVid ranks at layer 10 by the maximum
over heads and question tokens of the text-to-video attention and also prunes the KV cache of
layers 0-10; prunekit ranks by the head-averaged last-query attention and keeps the earlier layers'
cache entries (its runtime never edits caches of layers that already ran).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from prunekit.interfaces import Segmenter, StageConfig, TokenMerger
from prunekit.merging.plan import MergePlan, quotas
from prunekit.merging.static_tokens import cluster_group, limit_static, split_segments
from prunekit.ops.apportion import apportion
from prunekit.ops.cluster import dpc_knn
from prunekit.ops.similarity import l2_normalize
from prunekit.strategies.preset_fields import declare_preset
from prunekit.strategies.registration import register_stage
from prunekit.types import MergeMap, Segments, VideoLayout

PRUNEVID_CITATION = (
    "Huang et al., PruneVid: Visual Token Pruning for Efficient Video Large Language Models, ACL 2025.")

declare_preset(
    "prunevid",
    "PruneVid (ACL 2025): segment + static/dynamic merge before the LLM, attention prune at layer 10.",
    description=(
        "PruneVid: DPC-KNN segments (F/4 clusters), static tokens (tau 0.8) averaged over time, "
        "DPC-KNN spatial merge before the LLM (default 17% enter the LLM, PruneVid's LLaVA-OV "
        "setting); at layer 10 keep alpha=0.4 of every frame's tokens by last-query attention. "
        "Ratio counts tokens entering the LLM; a layer-averaged budget keeps the shape."),
    citation=PRUNEVID_CITATION, segmenter={"name": "dpc_segments"}, merger={"name": "prunevid"},
    selector={"name": "top_relevance", "per_frame": True},
    scheduler={"name": "fixed", "layers": [0, 10], "keep_fractions": [0.17, 0.17 * 0.4],
               "reference_depth": 28})


def _runs(labels: list[int]) -> list[tuple[int, int, int]]:
    """``(label, first, end)`` of every run of equal labels."""
    out, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            out.append((labels[start], start, i))
            start = i
    return out


def refine_labels(labels: list[int]) -> list[int]:
    """PruneVid's ``refine_clusters``: each cluster keeps only its longest run(s) (none if they are
    all single frames); every other stretch takes the label of its longer neighbouring run (the
    left one on ties, label 0 without neighbours)."""
    runs = _runs(labels)
    longest: dict[int, int] = {}
    for label, a, b in runs:
        longest[label] = max(longest.get(label, 0), b - a)
    out = list(labels)
    for label, a, b in runs:
        if longest[label] == 1 or b - a < longest[label]:
            out[a:b] = [-1] * (b - a)
    i = 0
    while i < len(out):
        if out[i] != -1:
            i += 1
            continue
        j = i
        while j < len(out) and out[j] == -1:
            j += 1
        left = _side_run(out, i - 1, -1)
        right = _side_run(out, j, 1)
        pick = left if left[1] >= right[1] and left[0] is not None else right
        out[i:j] = [pick[0] if pick[0] is not None else 0] * (j - i)
        i = j
    return out


def _side_run(labels: list[int], at: int, step: int) -> tuple[int | None, int]:
    """Label at ``at`` and the length of its run going in direction ``step``."""
    if not 0 <= at < len(labels):
        return None, 0
    label, length = labels[at], 0
    while 0 <= at < len(labels) and labels[at] == label:
        length, at = length + 1, at + step
    return label, length


@register_stage
class DPCSegmenter(Segmenter):
    """PruneVid's temporal segmentation (Huang et al., ACL 2025): DPC-KNN clusters the frames'
    mean features into ``int(F * segment_ratio)`` clusters (k = ``knn``), the labels are refined
    into contiguous stretches, and every run of equal labels is a segment."""

    class Config(StageConfig):
        name: Literal["dpc_segments"] = "dpc_segments"
        segment_ratio: float = Field(0.25, gt=0.0, le=1.0,
            description="clusters per frame: int(F * segment_ratio) segments before refinement")
        knn: int = Field(7, ge=1, description="neighbours k of the DPC-KNN density over the frames")

    def segment(self, features: torch.Tensor, layout: VideoLayout) -> Segments:
        num_frames = layout.num_frames
        clusters = max(1, int(num_frames * self.config.segment_ratio))
        _, labels = dpc_knn(features.float().mean(1), clusters, self.config.knn)
        runs = _runs(refine_labels(labels.tolist()))
        return Segments(tuple(a for _, a, _ in runs), num_frames)


def mean_pairwise_similarity(frames: torch.Tensor) -> torch.Tensor:
    """``[P]`` mean cosine similarity over all pairs of distinct frames of ``frames [W, P, D]``."""
    width = frames.shape[0]
    if width < 2:
        return torch.full(frames.shape[1:2], float("-inf"), device=frames.device)
    x = l2_normalize(frames)
    total = torch.einsum("wpd,tpd->p", x, x)  # sum over all ordered pairs, self pairs included
    return (total - width) / (width * (width - 1))


@register_stage
class PruneVidMerger(TokenMerger):
    """PruneVid's merge before the LLM, per segment (Huang et al., ACL 2025).

    Steps:

    1. a position is static when its mean pairwise cosine over the segment's frames exceeds
       ``tau``; static tokens are averaged over time into the first frame's token;
    2. the static group and each frame's dynamic tokens are clustered with DPC-KNN (k = ``knn``)
       and every cluster is averaged into its centre.

    PruneVid clusters each group to ``cluster_ratio`` = 0.5 of its size and leaves groups of at
    most ``min_tokens`` = 14 tokens alone, so its count is data-dependent. prunekit gives every
    group a share of the stage's count in proportion to its size (small groups whole when the
    count allows), and merges only the most similar static positions when the temporal merge alone
    would go below the count, so the count is exact.
    """

    class Config(StageConfig):
        name: Literal["prunevid"] = "prunevid"
        tau: float = Field(0.8, ge=-1.0, le=1.0, description="mean pairwise cosine above which a position is static")
        knn: int = Field(7, ge=1, description="neighbours k of the DPC-KNN density inside a group")
        min_tokens: int = Field(14, ge=0,
            description="groups of at most this many tokens are kept whole when the count allows")

    def merge(self, features: torch.Tensor, layout: VideoLayout, segments: Segments, keep: int,
              relevance: torch.Tensor | None = None) -> tuple[torch.Tensor, MergeMap]:
        bounds = segments.bounds
        scores = [mean_pairwise_similarity(features[a:b]) for a, b in bounds]
        static = limit_static(scores, [b - a for a, b in bounds], self.config.tau, layout.num_visual - keep)
        units = split_segments(features.reshape(layout.num_visual, -1), layout.tokens_per_frame, bounds, static)
        plan = MergePlan()
        for seg, quota in zip(units, quotas([len(u) for u in units], keep), strict=True):
            sizes = [len(g) for g in seg.groups]
            whole = [s if s <= self.config.min_tokens else 0 for s in sizes]
            lower = whole if sum(whole) <= quota else [0] * len(sizes)
            for group, share in zip(seg.groups, apportion(sizes, quota, lower, sizes), strict=True):
                cluster_group(group, share, self.config.knn, plan)
        return plan.result()
