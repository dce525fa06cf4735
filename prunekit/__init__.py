"""prunekit: composable, budget-exact visual-token pruning for video LLMs."""

from __future__ import annotations

from prunekit import presets, tiny, video
from prunekit._version import __version__
from prunekit.budget import Budget
from prunekit.config import PipelineConfig
from prunekit.errors import (
    BudgetError,
    ConfigError,
    InvalidInputError,
    PrunekitError,
    UnknownStrategyError,
    UnsupportedModelError,
    VideoDecodeError,
)
from prunekit.flops import flops, flops_ratio
from prunekit.hookspecs import hookimpl
from prunekit.pipeline import Pipeline
from prunekit.runtime import PruneHandle, apply, is_pruned
from prunekit.types import MergeMap, Segments, Stage, VideoLayout

__all__ = [
    "__version__",
    "Budget",
    "Pipeline",
    "apply",
    "is_pruned",
    "PruneHandle",
    "PipelineConfig",
    "VideoLayout",
    "Segments",
    "MergeMap",
    "Stage",
    "presets",
    "video",
    "tiny",
    "list_strategies",
    "hookimpl",
    "flops",
    "flops_ratio",
    "PrunekitError",
    "BudgetError",
    "ConfigError",
    "InvalidInputError",
    "UnknownStrategyError",
    "UnsupportedModelError",
    "VideoDecodeError",
]


def list_strategies(kind: str | None = None) -> list[tuple[str, str, str]]:
    """``(kind, name, source distribution)`` of every registered stage (and preset), optionally of one kind."""
    from prunekit.plugins import get_registry

    return [(e.kind, e.name, e.source) for e in get_registry().entries(kind) if e.kind != "adapter"]
