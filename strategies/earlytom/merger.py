"""Early temporal frame merging inside the vision tower (after EarlyTom's inner-encoder frame merging)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field

from prunekit.interfaces import EncoderStage, EncoderStageConfig
from prunekit.types import MergeMap

EARLYTOM_CITATION = (
    "Wang et al., EarlyTom: Early Token Compression Completes Fast Video Understanding, CVPR 2026, "
    "arXiv 2605.30010.")


class EarlyFrameMerger(EncoderStage):
    """Folds near-identical frames into the kept frame before them at an early vision-tower layer.

    Frame similarity is the mean cosine similarity of same-position tokens. Greedily, the frame most
    similar to its nearest kept predecessor is folded into it (its hidden states averaged in) until
    ``keep_frames`` of the frames (at least what the budget needs) remain; with ``threshold``, only
    frames at least that similar fold, so a video without redundancy keeps more frames. The first
    frame always stays. Differences from EarlyTom: plain means instead of similarity-weighted ones,
    one greedy pass instead of EMA-smoothed streaming segments, and its spatial selection is the
    pipeline's layer-0 selector.
    """

    class Config(EncoderStageConfig):
        name: Literal["early_frame_merge"] = "early_frame_merge"
        keep_frames: float = Field(0.5, gt=0, le=1, description="fraction of the frames that continue "
                                                                "(raised to what the budget needs)")
        threshold: float | None = Field(None, ge=-1, le=1, description="fold only frames at least this "
                                                                       "similar to their kept predecessor")

    def reduce(self, hidden: torch.Tensor, min_frames: int) -> tuple[torch.Tensor, MergeMap]:
        frames = hidden.shape[0]
        target = min(frames, max(min_frames, math.ceil(self.config.keep_frames * frames)))
        similarity = frame_similarity(hidden).cpu()  # [F, F], one host copy per video
        steps = torch.arange(1, frames)
        score = torch.full((frames,), -math.inf)  # similarity of each kept frame to its kept predecessor
        score[1:] = similarity[steps, steps - 1]
        pred, succ = torch.arange(-1, frames - 1), torch.arange(1, frames + 1)
        group = torch.arange(frames)  # the kept frame every frame has folded into so far
        for _ in range(frames - target):
            frame = int(score.argmax())  # ties: the earliest frame
            if self.config.threshold is not None and float(score[frame]) < self.config.threshold:
                break
            before, after = int(pred[frame]), int(succ[frame])
            score[frame] = -math.inf
            succ[before] = after
            if after < frames:
                pred[after] = before
                score[after] = similarity[after, before]
            group[group == frame] = before
        source = torch.nonzero(group != torch.arange(frames)).flatten()
        kept = torch.nonzero(group == torch.arange(frames)).flatten()
        return kept, MergeMap(source, group[source])

def frame_similarity(hidden: torch.Tensor) -> torch.Tensor:
    """``[F, F]`` mean cosine similarity of same-position tokens between frames of ``hidden [F, T, D]``."""
    unit = torch.nn.functional.normalize(hidden.float(), dim=-1)  # [F, T, D]
    per_position = torch.einsum("ftd,gtd->fg", unit, unit)  # summed over positions
    return per_position / hidden.shape[1]
