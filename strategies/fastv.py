"""Keep the most attended tokens: the pruning step of FastV, PDrop, FrameFusion and PruneVid."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from prunekit.interfaces import FrameSelector, StageConfig
from prunekit.merging.plan import quotas
from prunekit.ops.ranking import spread_scores, top_indices
from prunekit.strategies.preset_fields import declare_preset
from prunekit.strategies.registration import register_stage
from prunekit.types import SelectionContext

FASTV_CITATION = (
    "Chen et al., An Image is Worth 1/2 Tokens After Layer 2: Plug-and-Play Inference Acceleration for "
    "Large Vision-Language Models, ECCV 2024.")

declare_preset(
    "fastv",
    "FastV (ECCV 2024): after layer 2, keep the 50% of visual tokens the last token attends most.",
    description=(
        "FastV, inside the LLM: from layer K=2 on keep the R=50% visual tokens with the highest "
        "head-averaged last-token attention of layer K-1, as FastV's code ranks with the attention "
        "map the previous layer returned. R counts visual tokens kept from layer K on; a budget "
        "is layer-averaged (mode='input' raises: nothing is pruned before the LLM)."),
    citation=FASTV_CITATION, selector={"name": "top_relevance", "attention_layer": "previous"},
    scheduler={"name": "fixed", "layers": [2], "keep_fractions": [0.5]})


@register_stage
class TopRelevanceSelector(FrameSelector):
    """Keeps the ``keep`` tokens with the highest last-query attention (``context.relevance``).

    This is FastV's rule (Chen et al., "An Image is Worth 1/2 Tokens After Layer 2", ECCV 2024:
    head-averaged attention of the last token, top-k image tokens) and PDrop's (Xing et al.,
    "PyramidDrop", CVPR 2025: last instruction token, recomputed q/k). ``per_frame=True`` splits
    ``keep`` over the segment's frames in proportion to their live tokens first, as PruneVid
    (Huang et al., ACL 2025) keeps a share alpha of every frame. Without relevance (a model-free
    run) it keeps evenly spread tokens. Ties go to the earlier token.

    ``attention_layer`` says whose attention ranks the tokens at a stage at layer K: ``"stage"``,
    layer K's own (PDrop's recomputed q/k at the rank layer), or ``"previous"``, layer K-1's
    (FastV's code prunes at layer K with the attention map layer K-1 returned; FrameFusion's
    prunes after the attention of the layer where merging stops). A stage before the LLM has no
    previous layer and uses layer 0's.
    """

    class Config(StageConfig):
        name: Literal["top_relevance"] = "top_relevance"
        per_frame: bool = Field(False,
            description="split the count over the frames in proportion to their live tokens first (PruneVid)")
        attention_layer: Literal["stage", "previous"] = Field(
            "stage", description="attention that ranks the tokens at a stage at layer K: layer K's "
            "('stage', PDrop) or layer K-1's ('previous', FastV)")

    needs_relevance = True

    @property
    def scores_previous_layer(self) -> bool:  # type: ignore[override]
        return self.config.attention_layer == "previous"

    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        n = features.shape[0]
        score = context.relevance.float() if context.relevance is not None else spread_scores(n)
        score = score.to(features.device)
        if not self.config.per_frame:
            return top_indices(score, keep)
        frames, inverse = torch.unique(context.frame.to(features.device), return_inverse=True)
        sizes = torch.bincount(inverse, minlength=frames.numel()).tolist()
        picks = []
        for f, count in enumerate(quotas(sizes, keep, at_least_one=False)):
            member = torch.nonzero(inverse == f).flatten()
            picks.append(member[top_indices(score[member], count)])
        return torch.sort(torch.cat(picks)).values
