"""FrameFusion's cascaded same-position merge (its pruning step is the top-relevance selector)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from prunekit.interfaces import StageConfig, TokenMerger
from prunekit.ops.nosync import index_add
from prunekit.ops.ranking import top_indices
from prunekit.ops.similarity import cosine, same_position_runs
from prunekit.strategies.preset_fields import declare_preset
from prunekit.strategies.registration import register_stage
from prunekit.types import MergeMap, Segments, VideoLayout

FRAMEFUSION_CITATION = (
    "Fu et al., FrameFusion: Combining Similarity and Importance for Video Token Reduction on Large "
    "Visual Language Models, ICCV 2025.")

declare_preset(
    "framefusion",
    "FrameFusion (ICCV 2025): same-position merge before the LLM, last-token top-k after layer 2.",
    description=(
        "FrameFusion: cascaded merge of tokens whose same-position similarity to the previous "
        "frame is >= 0.6, before the LLM (up to 30% of the tokens, pruned by layer-0 attention if "
        "fewer qualify), then last-token top-k pruning from layer 2. Ratio: FrameFusion's cost, "
        "the layer-averaged visual-token budget (default 0.3)."),
    citation=FRAMEFUSION_CITATION, merger={"name": "cascaded_similarity"},
    selector={"name": "top_relevance"},
    scheduler={"name": "fixed", "layers": [0, 2], "keep_fractions": [0.7, 0.27]},
    budget={"retain": 0.3, "mode": "layer_average"})


def previous_live(live: torch.Tensor) -> torch.Tensor:
    """``[F, P]`` frame of the nearest earlier live token at the same position (-1 if none)."""
    frames = torch.arange(live.shape[0], device=live.device)[:, None].expand_as(live)
    last = torch.where(live, frames, torch.full_like(frames, -1)).cummax(0).values
    return torch.cat([torch.full_like(last[:1], -1), last[:-1]])


@register_stage
class CascadedSimilarityMerger(TokenMerger):
    """FrameFusion's merge (Fu et al., ICCV 2025): a visual token whose cosine similarity to the
    previous live token at the same grid position is at least ``similarity_lower_bound`` (0.6) is
    averaged into it; runs fold into their first token, which keeps its original position.

    FrameFusion merges on the LLM input before layer 0, then again after the attention of the next
    layers while at least ``ratio_lower_bound`` (10 %) of the tokens merge, never beyond the budget.
    prunekit repeats those rounds on the input embeddings (later rounds compare merged means, not
    deeper hidden states) and stops at the stage's count: when more tokens qualify, the most
    similar merge. When fewer qualify, the merger keeps more and the pipeline's selector removes
    the rest at layer 0 (FrameFusion would prune them slightly later, with its last-token top-k).
    A merged token is the plain mean of its run (FrameFusion averages pairwise per round). Merges
    stay inside segments.
    """

    class Config(StageConfig):
        name: Literal["cascaded_similarity"] = "cascaded_similarity"
        similarity_lower_bound: float = Field(0.6, ge=-1.0, le=1.0)
        ratio_lower_bound: float = Field(0.1, ge=0.0, le=1.0)

    def merge(self, features: torch.Tensor, layout: VideoLayout, segments: Segments, keep: int,
              relevance: torch.Tensor | None = None) -> tuple[torch.Tensor, MergeMap]:
        num_frames, per_frame = features.shape[:2]
        feats = features.float().clone()  # [F, P, D] running means
        live = torch.ones(num_frames, per_frame, dtype=torch.bool, device=features.device)
        opens = torch.zeros(num_frames, dtype=torch.bool, device=features.device)
        opens[list(segments.starts)] = True
        budget = max(0, num_frames * per_frame - keep)
        while budget > 0:
            merged, stop = self._round(feats, live, opens, budget)
            live &= ~merged
            budget -= int(merged.sum())
            if stop:
                break
        removed = ~live
        target_frame = same_position_runs(removed)  # [F, P]
        positions = torch.arange(per_frame, device=features.device)[None].expand_as(target_frame)
        target_ids = (target_frame * per_frame + positions).flatten()
        source = torch.nonzero(removed.flatten()).flatten()
        return torch.nonzero(live.flatten()).flatten(), MergeMap(source, target_ids[source])

    def _round(self, feats: torch.Tensor, live: torch.Tensor, opens: torch.Tensor,
               budget: int) -> tuple[torch.Tensor, bool]:
        """One merge round (``feats`` updated in place): the merged mask and whether to stop."""
        cfg = self.config
        prev = previous_live(live)  # [F, P]
        eligible = live & (prev >= 0) & ~opens[:, None]
        pos = torch.arange(live.shape[1], device=live.device)[None].expand_as(prev)
        sim = torch.full(live.shape, float("-inf"), device=live.device)
        sim[eligible] = cosine(feats[eligible], feats[prev[eligible], pos[eligible]])
        above = sim >= cfg.similarity_lower_bound
        count = int(above.sum())
        stop = count == 0 or count >= budget or count < cfg.ratio_lower_bound * int(live.sum())
        if count > budget:
            above = torch.zeros_like(above)
            above.view(-1).index_fill_(0, top_indices(sim.flatten(), budget), True)
        if count:
            self._fold(feats, live, above)
        return above, stop

    @staticmethod
    def _fold(feats: torch.Tensor, live: torch.Tensor, merged: torch.Tensor) -> None:
        """Average every run of ``merged`` tokens into the live token before it (same position)."""
        frame = same_position_runs(merged | ~live)  # last surviving frame at or before each token
        pos = torch.arange(live.shape[1], device=live.device)[None].expand_as(frame)
        dst = frame[merged] * live.shape[1] + pos[merged]
        flat = feats.view(-1, feats.shape[-1])
        sums = index_add(flat.clone(), dst, feats[merged])
        counts = torch.ones(flat.shape[0], device=feats.device).index_add_(
            0, dst, torch.ones_like(dst, dtype=feats.dtype))
        flat.copy_(sums / counts[:, None])
