"""HieraVid level 1: same-position temporal merge before the LLM."""

from __future__ import annotations

from typing import Literal

import torch

from prunekit.interfaces import StageConfig, TokenMerger
from prunekit.ops.nosync import partition_indices, to_device
from prunekit.ops.similarity import same_position_runs, same_position_similarity
from prunekit.strategies.registration import register_stage
from prunekit.types import MergeMap, Segments, VideoLayout


@register_stage
class SamePositionMerger(TokenMerger):
    """Removes the tokens most similar to the same grid position one frame earlier and averages
    each run of consecutive removed tokens into the run's first (kept) token, which keeps its
    original position. Tokens of a segment's first frame are never removed, so merges stay inside
    segments and every segment keeps at least one frame."""

    class Config(StageConfig):
        name: Literal["same_position"] = "same_position"

    def merge(self, features: torch.Tensor, layout: VideoLayout, segments: Segments,
              keep: int) -> tuple[torch.Tensor, MergeMap]:
        num_frames, per_frame = features.shape[:2]
        sim = same_position_similarity(features)  # [F, P]
        sim.index_fill_(0, to_device(segments.starts, sim.device), float("-inf"))  # index_fill_: no sync
        eligible = (num_frames - len(segments)) * per_frame  # every token outside segments' first frames
        remove = min(max(0, num_frames * per_frame - keep), eligible)
        flat = sim.flatten()
        # stable top-k: highest similarity first, earliest token on ties
        order = torch.argsort(-flat, stable=True)[:remove]
        removed = torch.zeros_like(flat, dtype=torch.bool)
        removed.index_fill_(0, order, True)
        removed = removed.view(num_frames, per_frame)
        target_frame = same_position_runs(removed)  # [F, P]
        positions = torch.arange(per_frame, device=sim.device)[None].expand_as(target_frame)
        target_ids = (target_frame * per_frame + positions).flatten()
        source, kept = partition_indices(removed.flatten(), remove)  # counts known here: no host sync
        return kept, MergeMap(source=source, target=target_ids[source])
