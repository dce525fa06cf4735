"""DyCoke's temporal token merging (TTM) before the LLM."""

from __future__ import annotations

from typing import Literal

import torch

from prunekit.interfaces import FrameSelector, StageConfig
from prunekit.ops.apportion import apportion
from prunekit.ops.ranking import spread_scores, top_indices
from prunekit.ops.similarity import cosine
from prunekit.strategies.preset_fields import PRE_LLM, before_llm, declare_preset
from prunekit.strategies.registration import register_stage
from prunekit.types import SelectionContext

DYCOKE_CITATION = (
    "Tao et al., DyCoke: Dynamic Compression of Tokens for Fast Video Large Language Models, CVPR 2025.")

declare_preset(
    "dycoke",
    "DyCoke (CVPR 2025): temporal token merging in 4-frame windows before the LLM (K=0.7).",
    description=(
        f"DyCoke TTM, {PRE_LLM} (default 47.5% = (1 + 3 * 0.3) / 4 for K=0.7): in windows of 4 "
        "frames keep the first frame and the tokens of frames 1-3 least similar to their reference "
        "frame. DyCoke's decode-time dynamic KV selection is not included; DyCoke's own 'retained "
        "ratio' counts decode-time tokens."),
    citation=DYCOKE_CITATION, segmenter={"name": "fixed_length", "frames_per_segment": 4},
    selector={"name": "dycoke_ttm"}, scheduler=before_llm(0.475))


def reference_frame(offset: torch.Tensor) -> torch.Tensor:
    """DyCoke's pairing inside a window, by frame offset from the window start: odd frames compare
    with the frame before (1 -> 0, 3 -> 2), even frames with the frame two before (2 -> 0); the first
    frame has no reference (-1)."""
    return torch.where(offset % 2 == 1, offset - 1, offset - 2).clamp_min(-1)


@register_stage
class TemporalMergeSelector(FrameSelector):
    """DyCoke's TTM (Tao et al., CVPR 2025) inside one window (segment, 4 frames in the preset).

    The window's first frame is kept whole; every other frame keeps its tokens *least* similar
    (cosine) to the token at the same grid position in its reference frame (1 -> 0, 2 -> 0, 3 -> 2).
    Despite the name, the reference code drops the redundant tokens rather than averaging them,
    and so does this stage. DyCoke keeps ``int((1 - K) * P)`` tokens per pruned frame (input
    retention ``(1 + 3 (1 - K)) / 4``, 47.5 % at K = 0.7); prunekit splits the window's count: the
    first frame whole, the rest evenly over the other frames, so any budget is exact. Below one frame
    per window (retain < 25 %, which DyCoke cannot reach) the first frame keeps evenly spread tokens.
    DyCoke's second stage, decode-time dynamic KV-cache selection, is not included: prunekit's
    runtime does not re-select cache entries during decoding. The reference code's loop
    ``range(0, F - 4, 4)`` skips the 2 -> 0 comparison in the last window (that frame stays whole)
    and drops the last frame of an odd-length video; prunekit treats every window alike.
    """

    class Config(StageConfig):
        name: Literal["dycoke_ttm"] = "dycoke_ttm"

    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        device = features.device
        frame = context.frame.to(device)
        offset = frame - frame.min()
        frames = torch.unique(offset)  # sorted offsets present
        members = [torch.nonzero(offset == f).flatten() for f in frames.tolist()]
        first = members[0]
        if keep <= first.numel():
            return torch.sort(first[top_indices(spread_scores(first.numel(), device), keep)]).values
        rest = members[1:]
        shares = apportion([1.0] * len(rest), keep - first.numel(), [0] * len(rest), [m.numel() for m in rest])
        lookup = self._lookup(offset, context.position.to(device), context.grid)
        picks = [first]
        for member, share in zip(rest, shares, strict=True):
            ref = lookup[reference_frame(offset[member]), context.position.to(device)[member]]  # [m]
            sim = torch.full((member.numel(),), float("-inf"), device=device)
            found = ref >= 0
            sim[found] = cosine(features[member[found]], features[ref[found]])
            picks.append(member[top_indices(-sim, share)])
        return torch.sort(torch.cat(picks)).values

    @staticmethod
    def _lookup(offset: torch.Tensor, position: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``[W, P]`` row of the token at (frame offset, position), -1 where absent (row -1 = none)."""
        table = torch.full((int(offset.max()) + 2, grid[0] * grid[1]), -1, dtype=torch.long,
                           device=offset.device)
        table[offset, position] = torch.arange(offset.numel(), device=offset.device)
        return table
