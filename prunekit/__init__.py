"""prunekit: composable, budget-exact visual-token pruning for video LLMs.

Names are imported on first use (PEP 562), so ``prunekit --help`` and ``prunekit --version`` start
without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from prunekit._version import __version__
from prunekit.errors import (
    BudgetError,
    ConfigError,
    InvalidInputError,
    PrunekitError,
    UnknownStrategyError,
    UnsupportedModelError,
    VideoDecodeError,
)
from prunekit.flops import flops, flops_ratio  # eager: the functions, not the same-named submodule (no torch)
from prunekit.hookspecs import hookimpl

if TYPE_CHECKING:  # the same names, for type checkers and the API reference
    from prunekit import presets, tiny, video
    from prunekit.budget import Budget
    from prunekit.config import PipelineConfig
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

_LAZY: dict[str, str] = {
    "Budget": "prunekit.budget",
    "PipelineConfig": "prunekit.config", "Pipeline": "prunekit.pipeline",
    "PruneHandle": "prunekit.runtime", "apply": "prunekit.runtime", "is_pruned": "prunekit.runtime",
    "MergeMap": "prunekit.types", "Segments": "prunekit.types", "Stage": "prunekit.types",
    "VideoLayout": "prunekit.types",
}
_SUBMODULES = ("presets", "tiny", "video")


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        return importlib.import_module(f"prunekit.{name}")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'prunekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def list_strategies(kind: str | None = None) -> list[tuple[str, str, str]]:
    """``(kind, name, source distribution)`` of every registered stage (and preset), optionally of one kind."""
    from prunekit.plugins import get_registry

    return [(e.kind, e.name, e.source) for e in get_registry().entries(kind) if e.kind != "adapter"]
