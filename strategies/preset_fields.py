"""Pieces the peer methods' presets share, and `declare_preset`, which turns one method's
``(summary, PipelineConfig fields)`` into a registered preset.

"Input" ratios count the visual tokens that enter the LLM; "layer-averaged" ratios count visual
tokens summed over all layers / (N * L). Any `Budget` replaces the default fractions (their shape is
kept); in-LLM-only methods (FastV, PDrop) cannot take ``mode="input"`` and raise `BudgetError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prunekit.config import PipelineConfig
from prunekit.strategies.registration import register_preset

PRE_LLM = "before the LLM (layer 0); the ratio counts visual tokens entering the LLM"
PER_FRAME = {"name": "fixed_length", "frames_per_segment": 1}


def before_llm(fraction: float) -> dict[str, Any]:
    """A fixed scheduler keeping ``fraction`` of the visual tokens at layer 0."""
    return {"name": "fixed", "layers": [0], "keep_fractions": [fraction]}


def declare_preset(name: str, summary: str, **fields: Any) -> Callable[[], PipelineConfig]:
    """Register preset ``name`` (described by the one-line ``summary``) building a `PipelineConfig` from
    ``fields``; returns its factory."""

    def factory() -> PipelineConfig:
        return PipelineConfig.parse({"name": name, **fields})

    factory.__name__, factory.__doc__ = name, summary
    return register_preset(name, factory, summary)
