"""The trivial segmenter: the whole video is one segment."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from prunekit.interfaces import Segmenter, StageConfig
from prunekit.strategies.registration import register_stage
from prunekit.types import Segments, VideoLayout


@register_stage
class SingleSegmenter(Segmenter):
    """Treats the whole video as one segment (image-style methods)."""

    class Config(StageConfig):
        name: Literal["single"] = "single"

    def segment(self, features: torch.Tensor, layout: VideoLayout) -> Segments:
        return Segments.single(layout.num_frames)


@register_stage
class FixedLengthSegmenter(Segmenter):
    """Cuts the video into segments of ``frames_per_segment`` frames (the last may be shorter)."""

    class Config(StageConfig):
        name: Literal["fixed_length"] = "fixed_length"
        frames_per_segment: int = Field(4, ge=1, description="frames per segment (1: every frame is a segment)")

    def segment(self, features: torch.Tensor, layout: VideoLayout) -> Segments:
        step = max(1, self.config.frames_per_segment)
        return Segments(tuple(range(0, layout.num_frames, step)), layout.num_frames)
