"""DivPrune: keep a max-min diverse subset of the visual tokens."""

from __future__ import annotations

from typing import Literal

import torch

from prunekit.interfaces import FrameSelector, StageConfig
from prunekit.ops.diversity import max_min_diversity
from prunekit.ops.similarity import cosine_matrix
from prunekit.types import SelectionContext

DIVPRUNE_CITATION = (
    "Alvar et al., DivPrune: Diversity-based Visual Token Pruning for Large Multimodal Models, CVPR 2025.")


class MaxMinDiversitySelector(FrameSelector):
    """DivPrune (Alvar et al., CVPR 2025): with cosine distance ``1 - cos`` between the tokens'
    features, pick first the token farthest from its nearest neighbour, then repeatedly the token
    farthest from the already kept set (greedy max-min diversity). Ties go to the earlier token;
    kept tokens are never picked twice, so the count is exact."""

    class Config(StageConfig):
        name: Literal["max_min_diversity"] = "max_min_diversity"

    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        return max_min_diversity(1.0 - cosine_matrix(features), keep)
