"""HieraVid level 1: cut the video where a frame stops resembling its predecessor."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from prunekit.interfaces import Segmenter, StageConfig
from prunekit.ops.similarity import same_position_similarity
from prunekit.strategies.registration import register_stage
from prunekit.types import Segments, VideoLayout


def frame_scores(features: torch.Tensor, tau: float) -> torch.Tensor:
    """``[F]`` share of each frame's tokens whose same-position cosine to the previous frame > tau."""
    sim = same_position_similarity(features)  # [F, P], frame 0 = -inf
    return (sim > tau).float().mean(1)


@register_stage
class SimilaritySegmenter(Segmenter):
    """Frame f > 0 opens a new segment when fewer than ``beta`` of its tokens have same-position
    cosine similarity above ``tau`` with frame f - 1 (HieraVid: tau = 0.6, beta = 0.4)."""

    class Config(StageConfig):
        name: Literal["similarity"] = "similarity"
        tau: float = Field(0.6, ge=-1.0, le=1.0, description="cosine above which a token counts as unchanged")
        beta: float = Field(0.4, ge=0.0, le=1.0, description="a frame with fewer unchanged tokens opens a segment")

    def segment(self, features: torch.Tensor, layout: VideoLayout) -> Segments:
        opens = (frame_scores(features, self.config.tau)[1:] < self.config.beta).cpu()  # one read-back
        cuts = torch.nonzero(opens).flatten() + 1
        return Segments((0, *cuts.tolist()), layout.num_frames)
