"""Registers the peer methods (the strategy zoo)."""

from __future__ import annotations

from collections.abc import Callable

from prunekit.config import PipelineConfig
from prunekit.hookspecs import hookimpl
from prunekit.registry import ScopedRegistry

from prunekit.strategies.divprune import MaxMinDiversitySelector
from prunekit.strategies.dycoke import TemporalMergeSelector
from prunekit.strategies.fastvid import DySegSegmenter, FastVIDMerger
from prunekit.strategies.framefusion import CascadedSimilarityMerger
from prunekit.strategies.holitom import HoliTomMerger, StaticWindowSegmenter
from .presets import PRESETS as _PRESETS
from .presets import SPECS
from prunekit.strategies.prunevid import DPCSegmenter, PruneVidMerger
from prunekit.strategies.fastv import TopRelevanceSelector
from prunekit.strategies.vidcom2 import DistinctTokenSelector, UniquenessAllocator
from prunekit.strategies.visionzip import VisionZipMerger

STAGES: tuple[type, ...] = (
    DySegSegmenter, StaticWindowSegmenter, DPCSegmenter,
    CascadedSimilarityMerger, VisionZipMerger, FastVIDMerger, HoliTomMerger, PruneVidMerger,
    UniquenessAllocator,
    TopRelevanceSelector, MaxMinDiversitySelector, TemporalMergeSelector, DistinctTokenSelector,
)
PRESETS: dict[str, Callable[[], PipelineConfig]] = dict(_PRESETS)


@hookimpl
def prunekit_register_presets(registry: ScopedRegistry) -> None:
    """Register every zoo preset, described by its one-line summary."""
    for name, (summary, _) in SPECS.items():
        registry.register_preset(name, PRESETS[name], description=summary)


@hookimpl
def prunekit_register_strategies(registry: ScopedRegistry) -> None:
    """Register every zoo stage class under its config name."""
    for stage in STAGES:
        registry.register_stage(stage)
