"""LLaVA-OneVision (and HF conversions of LLaVA-Video-7B-Qwen2): F x P tokens + one newline."""

from __future__ import annotations

import math

import torch

from prunekit.errors import InvalidInputError, UnsupportedModelError
from prunekit.model_adapter import ModelAdapter, VisionTower
from prunekit.types import VideoLayout


def video_runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` of the contiguous True runs in a 1-D bool mask."""
    padded = torch.nn.functional.pad(mask.to(torch.int8).flatten(), (1, 1))
    edges = torch.nonzero(padded.diff() != 0).flatten().tolist()  # alternating run starts and ends
    return list(zip(edges[0::2], edges[1::2]))


def stack_layouts(frames: list[torch.Tensor], grid: tuple[int, int], seq_len: int,
                  layout_tokens: list[int]) -> VideoLayout:
    """One layout from several videos' ``[F_i, P]`` index blocks (frames concatenated in time)."""
    return VideoLayout(token_index=torch.cat(frames), grid=grid, seq_len=seq_len,
                       layout_index=torch.tensor(layout_tokens, dtype=torch.long))


def siglip_tower(model: torch.nn.Module, tokens_per_frame: int, frame_layout_tokens: bool = False) -> VisionTower:
    """The SigLIP tower of a LLaVA-OneVision-style ``model`` as encoder-level stages see it."""
    config = model.config
    tower = model.model.vision_tower
    encoder = getattr(tower, "encoder", None) or getattr(getattr(tower, "vision_model", None), "encoder", None)
    if encoder is None or not hasattr(encoder, "layers"):
        raise UnsupportedModelError(
            f"encoder-level stages need a SigLIP-style vision tower with .encoder.layers; this model's is "
            f"{type(tower).__name__}.")
    layers = list(encoder.layers)
    feature = config.vision_feature_layer
    if not isinstance(feature, int):
        raise UnsupportedModelError(
            f"encoder-level stages support one vision_feature_layer, this model concatenates {feature}.")
    index = feature if feature >= 0 else len(layers) + 1 + feature
    return VisionTower(model.model, tower, layers, index, tokens_per_frame, frame_layout_tokens)


class LlavaOnevisionAdapter(ModelAdapter):
    """``LlavaOnevisionForConditionalGeneration``: each video is ``F * ceil(g/2)^2`` tokens (g = SigLIP
    grid) followed by a single newline token, which is a layout token (never pruned)."""

    name = "llava_onevision"
    model_classes = ("LlavaOnevisionForConditionalGeneration",)

    @property
    def pooled_grid(self) -> tuple[int, int]:
        """Token grid of one frame after the 2x2 bilinear pooling."""
        vision = self.model.config.vision_config
        side = math.ceil(vision.image_size // vision.patch_size / 2)
        return side, side

    def vision_tower(self) -> VisionTower:
        """SigLIP: every frame is its own image in the batch, so frames may leave it between layers."""
        grid = self.pooled_grid
        return siglip_tower(self.model, grid[0] * grid[1])

    def layouts(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None) -> list[VideoLayout | None]:
        video_id = self.model.config.video_token_id
        grid = self.pooled_grid
        per_frame = grid[0] * grid[1]
        out: list[VideoLayout | None] = []
        for row in input_ids:
            blocks, newlines = [], []
            for start, end in video_runs(row == video_id):
                count = end - start - 1
                if count <= 0 or count % per_frame:
                    raise InvalidInputError(
                        f"a video block of {end - start} tokens does not match {per_frame} tokens per frame "
                        "+ 1 newline; was the processor built for this model's vision config?")
                blocks.append(torch.arange(start, end - 1).view(-1, per_frame))
                newlines.append(end - 1)
            out.append(stack_layouts(blocks, grid, row.numel(), newlines) if blocks else None)
        return out
