"""VisionZip: dominant tokens by attention plus contextual tokens merged by similarity."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from prunekit.interfaces import StageConfig, TokenMerger
from prunekit.merging.plan import Group, MergePlan, quotas, scores_or_spread, segment_ids
from prunekit.ops.cluster import most_similar
from prunekit.ops.nosync import true_indices
from prunekit.ops.ranking import top_indices
from prunekit.strategies.preset_fields import PER_FRAME, PRE_LLM, before_llm, declare_preset
from prunekit.strategies.registration import register_stage
from prunekit.types import MergeMap, Segments, VideoLayout

VISIONZIP_CITATION = (
    "Yang et al., VisionZip: Longer is Better but Not Necessary in Vision Language Models, CVPR 2025.")

declare_preset(
    "visionzip",
    "VisionZip (CVPR 2025), per frame: 54/64 dominant tokens by attention, the rest merged into context.",
    description=(
        f"VisionZip, {PRE_LLM} (default 25%, 49 of 196 tokens per frame). Per frame: 54/64 of the "
        "quota are dominant tokens (layer-0 last-query attention replaces SigLIP attention), the "
        "rest are contextual tokens into which the other tokens are merged by similarity."),
    citation=VISIONZIP_CITATION, segmenter=PER_FRAME, merger={"name": "visionzip"},
    selector={"name": "top_relevance"}, scheduler=before_llm(0.25))


def contextual_targets(count: int, available: int, device: torch.device) -> torch.Tensor:
    """VisionZip's targets: every ``max(1, available // count)``-th remaining token, first ``count``."""
    step = max(1, available // max(1, count))
    return torch.arange(0, available, step, device=device)[:count]


@register_stage
class VisionZipMerger(TokenMerger):
    """Yang et al., "VisionZip: Longer is Better but Not Necessary in Vision Language Models"
    (CVPR 2025), as ported to SigLIP video models by HoliTom's authors (per frame, 54/64 dominant).

    In each segment (one frame in the ``visionzip`` preset) with quota ``k``: the
    ``int(k * dominant_ratio)`` tokens with the highest relevance are *dominant* and kept; of the
    rest, every ``step``-th becomes a *contextual* target and every other token is merged into its
    most cosine-similar target. Adaptations: SigLIP has no CLS token and prunekit sees only the LLM
    input, so relevance is the layer-0 last-query attention instead of the vision tower's attention
    (evenly spread tokens without it), and similarity uses the input embeddings instead of the
    vision tower's keys; a contextual token is the mean of its group (VisionZip adds the target to
    the group mean). Segment quotas are proportional, so the count is exact.
    """

    class Config(StageConfig):
        name: Literal["visionzip"] = "visionzip"
        dominant_ratio: float = Field(54 / 64, ge=0.0, le=1.0,
            description="share of each quota kept as dominant (most attended) tokens; the rest are contextual")

    needs_relevance = True

    def merge(self, features: torch.Tensor, layout: VideoLayout, segments: Segments, keep: int,
              relevance: torch.Tensor | None = None) -> tuple[torch.Tensor, MergeMap]:
        flat = features.reshape(-1, features.shape[-1])  # [N, D]
        groups = segment_ids(segments.bounds, layout.tokens_per_frame, flat.device)
        plan = MergePlan()
        for ids, quota in zip(groups, quotas([g.numel() for g in groups], keep), strict=True):
            self._zip(Group.tokens(ids, flat), quota, scores_or_spread(relevance, ids), plan)
        return plan.result()

    def _zip(self, group: Group, quota: int, score: torch.Tensor, plan: MergePlan) -> None:
        dominant_num = int(quota * self.config.dominant_ratio)
        dominant = top_indices(score, dominant_num)
        rest = torch.ones(len(group), dtype=torch.bool, device=score.device)
        rest.index_fill_(0, dominant, False)
        # remaining units, in sequence order; their number is known on the host (no read-back)
        rest = true_indices(rest, len(group) - dominant.numel())
        targets = contextual_targets(quota - dominant_num, rest.numel(), score.device)
        plan.add(group, dominant)
        if targets.numel():
            sub = Group(group.rep[rest], group.members[rest], group.feats[rest])
            plan.add(sub, targets, most_similar(sub.feats, targets), all_assigned=True)
