"""Sanity-baseline frame selectors: evenly spaced and uniformly random tokens."""

from __future__ import annotations

from typing import Literal

import torch

from prunekit.interfaces import FrameSelector, StageConfig
from prunekit.types import SelectionContext


class UniformSelector(FrameSelector):
    """Keeps ``keep`` tokens evenly spaced in sequence order (a spatio-temporal stride)."""

    class Config(StageConfig):
        name: Literal["uniform"] = "uniform"

    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        n = features.shape[0]
        return ((torch.arange(keep, dtype=torch.float64) + 0.5) * n / keep).floor().long().clamp_max(n - 1)


class RandomSelector(FrameSelector):
    """Keeps ``keep`` tokens drawn uniformly without replacement (seeded by the pipeline)."""

    class Config(StageConfig):
        name: Literal["random"] = "random"

    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        perm = torch.randperm(features.shape[0], generator=context.generator)
        return torch.sort(perm[:keep]).values
