"""Proportional allocation: each segment keeps the same share of its live tokens."""

from __future__ import annotations

from typing import Literal

import torch

from prunekit.interfaces import BudgetAllocator, StageConfig
from prunekit.ops.apportion import apportion
from prunekit.strategies.registration import register_stage


@register_stage
class ProportionalAllocator(BudgetAllocator):
    """Counts proportional to segment sizes (largest remainder), at least one token per segment."""

    class Config(StageConfig):
        name: Literal["proportional"] = "proportional"

    def allocate(self, live_sizes: list[int], total_keep: int,
                 segment_features: torch.Tensor) -> list[int]:
        return apportion(live_sizes, total_keep, [min(1, s) for s in live_sizes], live_sizes)
