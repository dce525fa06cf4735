"""Registers the built-in strategies through the same hooks third-party plugins use."""

from __future__ import annotations

from prunekit.hookspecs import hookimpl
from prunekit.registry import ScopedRegistry
from prunekit.strategies.earlytom.merger import EarlyFrameMerger
from prunekit.strategies.earlytom.presets import PRESETS as EARLYTOM_PRESETS
from prunekit.strategies.generic.allocators import ProportionalAllocator
from prunekit.strategies.generic.schedulers import FixedScheduler, ProgressiveScheduler
from prunekit.strategies.generic.segmenters import FixedLengthSegmenter, SingleSegmenter
from prunekit.strategies.generic.selectors import RandomSelector, UniformSelector
from prunekit.strategies.hieravid.allocator import MVOffsetAllocator
from prunekit.strategies.hieravid.merger import SamePositionMerger
from prunekit.strategies.hieravid.segmenter import SimilaritySegmenter
from prunekit.strategies.hieravid.selector import ConditionalDPPSelector
from prunekit.strategies.presets import PRESETS

STAGES = (
    SingleSegmenter, FixedLengthSegmenter, SimilaritySegmenter,
    SamePositionMerger,
    ProportionalAllocator, MVOffsetAllocator,
    UniformSelector, RandomSelector, ConditionalDPPSelector,
    FixedScheduler, ProgressiveScheduler,
    EarlyFrameMerger,
)


@hookimpl
def prunekit_register_strategies(registry: ScopedRegistry) -> None:
    for stage in STAGES:
        registry.register_stage(stage)


@hookimpl
def prunekit_register_presets(registry: ScopedRegistry) -> None:
    for name, factory in {**PRESETS, **EARLYTOM_PRESETS}.items():
        registry.register_preset(name, factory, description=(factory.__doc__ or "").strip())
