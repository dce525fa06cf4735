"""Sanity-baseline frame selectors: evenly spaced and uniformly random tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from prunekit.config import PipelineConfig
from prunekit.interfaces import FrameSelector, StageConfig
from prunekit.strategies.registration import register_preset, register_stage
from prunekit.types import SelectionContext


@register_stage
class UniformSelector(FrameSelector):
    """Keeps ``keep`` tokens evenly spaced in sequence order (a spatio-temporal stride)."""

    class Config(StageConfig):
        name: Literal["uniform"] = "uniform"

    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        n = features.shape[0]
        return ((torch.arange(keep, dtype=torch.float64) + 0.5) * n / keep).floor().long().clamp_max(n - 1)


@register_stage
class RandomSelector(FrameSelector):
    """Keeps ``keep`` tokens drawn uniformly without replacement (seeded by the pipeline)."""

    class Config(StageConfig):
        name: Literal["random"] = "random"

    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        perm = torch.randperm(features.shape[0], generator=context.generator)
        return torch.sort(perm[:keep]).values


def baseline(selector: str) -> Callable[[], PipelineConfig]:
    """A sanity baseline keeping 30% of the tokens before the LLM with a trivial selector."""

    def factory() -> PipelineConfig:
        return PipelineConfig.parse({
            "name": selector,
            "description": f"Sanity baseline: {selector} token selection before the LLM (30% by default).",
            "selector": {"name": selector},
            "scheduler": {"name": "fixed", "layers": [0], "keep_fractions": [0.3]},
            "budget": {"retain": 0.3, "mode": "input"},
        })

    factory.__doc__ = f"Sanity baseline: {selector} token selection before the LLM."
    return factory


register_preset("uniform", baseline("uniform"))
register_preset("random", baseline("random"))
