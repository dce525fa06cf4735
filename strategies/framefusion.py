"""FrameFusion's cascaded same-position merge (its pruning step is the top-relevance selector)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from prunekit.budget import Budget
from prunekit.errors import BudgetError
from prunekit.interfaces import StageConfig, TokenMerger
from prunekit.ops.nosync import index_add
from prunekit.ops.ranking import top_indices
from prunekit.ops.similarity import cosine, same_position_runs
from prunekit.strategies.preset_fields import declare_preset
from prunekit.strategies.registration import register_stage
from prunekit.types import MergeMap, Segments, Stage, VideoLayout

FRAMEFUSION_CITATION = (
    "Fu et al., FrameFusion: Combining Similarity and Importance for Video Token Reduction on Large "
    "Visual Language Models, ICCV 2025.")
DEFAULT_COST = 0.3  # FrameFusion's default cost, used when a pipeline has no budget

declare_preset(
    "framefusion",
    "FrameFusion (ICCV 2025): same-position merge before the LLM, then one last-token top-k prune.",
    description=(
        "FrameFusion: cascaded merge of tokens whose same-position similarity to the previous "
        "token is >= 0.6, before the LLM, in rounds while >= 10% of the tokens qualify, up to "
        "1 - cost of them; if the merge alone does not reach the cost, one last-token top-k prune "
        "at the layer where merging stopped (ranked by the previous layer's attention), down to "
        "the exact budget. Ratio: FrameFusion's cost, the layer-averaged visual-token budget "
        "(default 0.3). With mode='input' the merge is topped up by layer-0 attention."),
    citation=FRAMEFUSION_CITATION, merger={"name": "cascaded_similarity"},
    selector={"name": "top_relevance", "attention_layer": "previous"},
    scheduler={"name": "fixed", "layers": [0], "keep_fractions": [0.3]},
    budget={"retain": 0.3, "mode": "layer_average"})


def previous_live(live: torch.Tensor) -> torch.Tensor:
    """``[F, P]`` frame of the nearest earlier live token at the same position (-1 if none)."""
    frames = torch.arange(live.shape[0], device=live.device)[:, None].expand_as(live)
    last = torch.where(live, frames, torch.full_like(frames, -1)).cummax(0).values
    return torch.cat([torch.full_like(last[:1], -1), last[:-1]])


def pruning_ratio(ratios: list[float], cost: float, num_layers: int) -> float:
    """FrameFusion's ``_compute_pruning_ratio``: the share of the live tokens to remove at the next
    layer so that ``num_layers`` layers average ``cost``, after merge rounds that removed ``ratios``
    of the then-live tokens (round i counted as one layer of the survivors)."""
    live, spent = 1.0, 0.0
    for r in ratios:
        live *= 1.0 - r
        spent += live
    remain = num_layers * cost - spent
    if remain < 0:
        raise BudgetError(f"FrameFusion's merge rounds {ratios} already spent more than cost={cost} over "
                          f"{num_layers} layers; ask for a larger budget.")
    need = remain / ((num_layers - len(ratios)) * live)
    return 0.0 if need > 1 else 1.0 - need


@register_stage
class CascadedSimilarityMerger(TokenMerger):
    """FrameFusion's merge (Fu et al., ICCV 2025): a visual token whose cosine similarity to the
    previous live token at the same grid position is at least ``similarity_lower_bound`` (0.6) is
    averaged into it; runs fold into their first token, which keeps its original position.

    Under a layer-averaged budget (FrameFusion's ``cost``) the merger plans the stages itself, as
    thu-nics/FrameFusion does: merge round i removes every similar token while fewer than
    `pruning_ratio` (1 - cost in round 1) of the live tokens qualify, and stops after a round with
    fewer than ``ratio_lower_bound`` (10 %); when more qualify, the most similar ones up to that
    bound merge and nothing is pruned. Otherwise the tokens are pruned once, at the layer where
    merging stopped (round r ends after layer r - 1's attention: prunekit's stage at layer r, ranked
    by layer r - 1's attention), down to the exact budget. prunekit runs all rounds on the input
    embeddings (FrameFusion's later rounds compare hidden states after each layer) and merges stay
    inside segments. With ``mode="input"`` it merges up to the stage's count and the selector
    removes the rest before the LLM.
    """

    class Config(StageConfig):
        name: Literal["cascaded_similarity"] = "cascaded_similarity"
        similarity_lower_bound: float = Field(0.6, ge=-1.0, le=1.0,
            description="cosine to the previous live token at the same position from which a token merges")
        ratio_lower_bound: float = Field(0.1, ge=0.0, le=1.0,
            description="merge rounds stop after one that merged fewer than this share of the tokens")

    def plan_stages(self, features: torch.Tensor, segments: Segments, num_layers: int,
                    budget: Budget | None, min_keep: int = 1) -> list[Stage] | None:
        """FrameFusion's data-dependent stages for ``features [F, P, D]``: the merge before the LLM,
        then (if the merge did not reach the cost) one pruning stage. None under an input budget."""
        if budget is not None and budget.mode == "input":
            return None
        cost = DEFAULT_COST if budget is None else budget.retain
        n = features.shape[0] * features.shape[1]
        feats, live, opens = self._start(features, segments)
        ratios: list[float] = []
        prune = True
        while len(ratios) < num_layers - 1:  # the pruning stage needs a layer after the last round
            try:
                bound = pruning_ratio(ratios, cost, num_layers)
            except BudgetError:  # the rounds so far overspent the cost: prune (earlier, below)
                break
            sim = self._similarity(feats, live, opens)
            count, n_live = int((sim >= self.config.similarity_lower_bound).sum()), int(live.sum())
            if count < bound * n_live:
                merged = sim >= self.config.similarity_lower_bound
                ratios.append(count / n_live)
            else:
                merged = self._most_similar(sim, int(bound * n_live))
                prune = False
            if merged.any():
                self._fold(feats, live, merged)
                live &= ~merged
            if not prune or ratios[-1] < self.config.ratio_lower_bound:
                break
        after_merge = int(live.sum())
        stages = [Stage(0, after_merge)] if after_merge < n else []
        if prune:
            total = cost * n * num_layers  # visual token-layers the budget allows
            rounds = len(ratios)
            # FrameFusion's code raises once its rounds overspent the cost; prune at the last layer that meets it
            while rounds > 0 and total - rounds * after_merge < min_keep * (num_layers - rounds):
                rounds -= 1
            if rounds == 0:
                return [Stage(0, max(min_keep, min(after_merge, round(total / num_layers))))]
            keep = max(min_keep, min(after_merge, round((total - rounds * after_merge) / (num_layers - rounds))))
            if keep < after_merge:
                stages.append(Stage(rounds, keep))
        return stages

    def merge(self, features: torch.Tensor, layout: VideoLayout, segments: Segments, keep: int,
              relevance: torch.Tensor | None = None) -> tuple[torch.Tensor, MergeMap]:
        num_frames, per_frame = features.shape[:2]
        feats, live, opens = self._start(features, segments)
        budget = max(0, num_frames * per_frame - keep)
        while budget > 0:  # same rounds as `plan_stages`, whose merge count is ``budget`` here
            sim = self._similarity(feats, live, opens)
            above = sim >= self.config.similarity_lower_bound
            count = int(above.sum())
            stop = count == 0 or count >= budget or count < self.config.ratio_lower_bound * int(live.sum())
            if count > budget:
                above = self._most_similar(sim, budget)
            if count:
                self._fold(feats, live, above)
            live &= ~above
            budget -= int(above.sum())
            if stop:
                break
        removed = ~live
        target_frame = same_position_runs(removed)  # [F, P]
        positions = torch.arange(per_frame, device=features.device)[None].expand_as(target_frame)
        target_ids = (target_frame * per_frame + positions).flatten()
        source = torch.nonzero(removed.flatten()).flatten()
        return torch.nonzero(live.flatten()).flatten(), MergeMap(source, target_ids[source])

    @staticmethod
    def _start(features: torch.Tensor, segments: Segments) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Running means ``[F, P, D]``, the live mask ``[F, P]`` and the segment-opening frames ``[F]``."""
        num_frames, per_frame = features.shape[:2]
        live = torch.ones(num_frames, per_frame, dtype=torch.bool, device=features.device)
        opens = torch.zeros(num_frames, dtype=torch.bool, device=features.device)
        opens[list(segments.starts)] = True
        return features.float().clone(), live, opens

    @staticmethod
    def _similarity(feats: torch.Tensor, live: torch.Tensor, opens: torch.Tensor) -> torch.Tensor:
        """``[F, P]`` cosine similarity to the previous live token at the same position (-inf: none)."""
        prev = previous_live(live)  # [F, P]
        eligible = live & (prev >= 0) & ~opens[:, None]
        pos = torch.arange(live.shape[1], device=live.device)[None].expand_as(prev)
        sim = torch.full(live.shape, float("-inf"), device=live.device)
        sim[eligible] = cosine(feats[eligible], feats[prev[eligible], pos[eligible]])
        return sim

    @staticmethod
    def _most_similar(sim: torch.Tensor, count: int) -> torch.Tensor:
        """Mask of the ``count`` highest similarities (ties: the earlier token)."""
        chosen = torch.zeros(sim.shape, dtype=torch.bool, device=sim.device)
        chosen.view(-1).index_fill_(0, top_indices(sim.flatten(), count), True)
        return chosen

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
