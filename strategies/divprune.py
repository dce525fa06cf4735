"""DivPrune: keep a max-min diverse subset of the visual tokens."""

from __future__ import annotations

from typing import Literal

import torch

from prunekit.interfaces import FrameSelector, StageConfig
from prunekit.ops.diversity import max_min_diversity
from prunekit.ops.similarity import cosine_matrix
from prunekit.strategies.preset_fields import PRE_LLM, before_llm, declare_preset
from prunekit.strategies.registration import register_stage
from prunekit.types import SelectionContext

DIVPRUNE_CITATION = (
    "Alvar et al., DivPrune: Diversity-based Visual Token Pruning for Large Multimodal Models, CVPR 2025.")

declare_preset(
    "divprune",
    "DivPrune (CVPR 2025): greedy max-min diverse subset of all visual tokens before the LLM.",
    description=(
        f"DivPrune, {PRE_LLM} (default SUBSET_RATIO 9.8%): greedy max-min cosine-distance "
        "diversity over all visual tokens of the video."),
    citation=DIVPRUNE_CITATION, selector={"name": "max_min_diversity"}, scheduler=before_llm(0.098))


@register_stage
class MaxMinDiversitySelector(FrameSelector):
    """DivPrune (Alvar et al., CVPR 2025): with cosine distance ``1 - cos`` between the tokens'
    features, pick first the token farthest from its nearest neighbour, then repeatedly the token
    farthest from the already kept set (greedy max-min diversity). Ties go to the earlier token;
    kept tokens are never picked twice, so the count is exact."""

    class Config(StageConfig):
        name: Literal["max_min_diversity"] = "max_min_diversity"

    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        return max_min_diversity(1.0 - cosine_matrix(features), keep)
