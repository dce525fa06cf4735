"""prunekit-example-plugin: a frame selector and a preset, registered through prunekit's hooks.

prunekit loads this module through the ``prunekit`` entry point declared in ``pyproject.toml``
and calls the two ``@prunekit.hookimpl`` functions below with a registry that records this
distribution as the source of everything registered. Third-party names are namespaced
(``example.``) so they can never collide with built-ins.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

import prunekit
from prunekit.interfaces import FrameSelector, StageConfig
from prunekit.registry import ScopedRegistry
from prunekit.types import SelectionContext

__all__ = ["TopNormSelector", "topnorm_30"]


class TopNormSelector(FrameSelector):
    """Keeps the tokens with the largest L2 norm in each segment (earliest token first on ties)."""

    class Config(StageConfig):
        """Parameters of ``example.topnorm``; the ``name`` default is the registered name."""

        name: Literal["example.topnorm"] = "example.topnorm"
        p: float = Field(2.0, gt=0, description="norm order (2 = L2)")

    # This selector scores tokens by their features alone, so the runtime need not compute
    # last-query attention for it.
    needs_relevance = False

    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        """Indices of the ``keep`` largest-norm rows of ``features [n, D]``, in sequence order."""
        norms = torch.linalg.vector_norm(features.float(), ord=self.config.p, dim=-1)  # [n]
        # stable sort: among equal norms the earliest token wins, so results are deterministic
        order = torch.argsort(norms, descending=True, stable=True)
        return torch.sort(order[:keep]).values


def topnorm_30() -> prunekit.PipelineConfig:
    """Keep the 30% largest-norm visual tokens before the LLM (an example, not a method)."""
    return prunekit.PipelineConfig.parse({
        "name": "example.topnorm-30",
        "description": "Example plugin: keep the 30% largest-L2-norm visual tokens before the LLM.",
        "selector": {"name": "example.topnorm"},
        "scheduler": {"name": "fixed", "layers": [0], "keep_fractions": [0.3]},
        "budget": {"retain": 0.3, "mode": "input"},
    })


@prunekit.hookimpl
def prunekit_register_strategies(registry: ScopedRegistry) -> None:
    """Register the selector under its Config's ``name`` (``example.topnorm``)."""
    registry.register_stage(TopNormSelector)


@prunekit.hookimpl
def prunekit_register_presets(registry: ScopedRegistry) -> None:
    """Register the preset factory; prunekit calls it each time the preset is requested."""
    registry.register_preset("example.topnorm-30", topnorm_30)
