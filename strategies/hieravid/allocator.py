"""HieraVid level 1: per-segment budget offsets (the MV score from MMG-Vid)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from prunekit.interfaces import BudgetAllocator, StageConfig
from prunekit.ops.apportion import apportion
from prunekit.ops.similarity import cosine
from prunekit.strategies.registration import register_stage
from prunekit.types import Segments


def mv_scores(segment_features: torch.Tensor, k: float) -> torch.Tensor:
    """z-scored ``MV_i = k * cos(f_i, mean of earlier) + (1 - k) * (1 - cos(f_i, mean of later))``."""
    feats = segment_features.float()
    count = feats.shape[0]
    if count < 2:
        return torch.zeros(count, device=feats.device)
    idx = torch.arange(count, dtype=feats.dtype, device=feats.device)[:, None]
    csum = feats.cumsum(0)
    earlier = torch.cat([torch.zeros_like(feats[:1]), csum[:-1]]) / idx.clamp_min(1)
    later = (csum[-1] - csum) / (count - 1 - idx).clamp_min(1)
    first = torch.arange(count, device=feats.device) == 0
    a1 = cosine(feats, earlier).masked_fill(first, 0.0)  # no earlier segments
    a2 = cosine(feats, later).masked_fill(first.flip(0), 0.0)  # no later segments
    mv = k * a1 + (1 - k) * (1 - a2)
    std = mv.std(unbiased=False)
    # where, not `if float(std)`: the caller reads the result back once
    return torch.where(std > 0, (mv - mv.mean()) / std.clamp_min(1e-30), torch.zeros_like(mv))


@register_stage
class MVOffsetAllocator(BudgetAllocator):
    """Each segment keeps ``clamp(q + scale * MV_i, lo, hi)`` of its live tokens (q = the stage's
    overall keep ratio), then counts are rescaled by largest remainder so the total is exact.

    The authors floor each segment's count and so miss the nominal budget; prunekit does not.
    """

    class Config(StageConfig):
        name: Literal["mv_offset"] = "mv_offset"
        k: float = Field(0.5, ge=0.0, le=1.0, description="weight of the similarity to earlier segments in MV")
        scale: float = Field(0.1, ge=0.0, description="keep-ratio offset per unit of z-scored MV")
        min_ratio: float = Field(0.05, gt=0.0, le=1.0, description="lowest keep ratio of a segment before rescaling")
        max_ratio: float = Field(0.95, gt=0.0, le=1.0, description="highest keep ratio of a segment before rescaling")

    def summarize(self, features: torch.Tensor, segments: Segments) -> torch.Tensor:
        """``[S]`` z-scored MV of each segment's mean input feature, on the CPU: computed (and read
        back) once per sample, so the stages inside the LLM allocate without touching the GPU."""
        return mv_scores(super().summarize(features, segments), self.config.k).cpu()

    def allocate(self, live_sizes: list[int], total_keep: int,
                 segment_features: torch.Tensor) -> list[int]:
        cfg = self.config
        q = total_keep / max(1, sum(live_sizes))
        ratios = (q + cfg.scale * segment_features.float().cpu()).clamp(cfg.min_ratio, cfg.max_ratio)
        weights = [r * s for r, s in zip(ratios.tolist(), live_sizes)]
        return apportion(weights, total_keep, [min(1, s) for s in live_sizes], live_sizes)
