"""LLaVA-Video-7B-Qwen2 with its original grid token layout (a newline after every row of every frame).

transformers has no faithful class for it: HF conversions load as LLaVA-OneVision (196 tokens per
frame + one newline; use the ``llava_onevision`` adapter for those). This module adds a small model
class reproducing LLaVA-NeXT's ``get_2dPool`` + ``add_token_per_grid`` (``mm_spatial_pool_mode``
``"average"``: 13x13 + 13 newlines = 182 tokens per frame; ``"bilinear"``: 14x14 + 14 = 210), the
matching processor, and the adapter.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import transformers
from torch import nn
from transformers import (
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionModel,
    LlavaOnevisionProcessor,
)

from prunekit.adapters.llava_onevision import siglip_tower, stack_layouts, video_runs
from prunekit.errors import InvalidInputError, UnsupportedModelError
from prunekit.model_adapter import ModelAdapter, VisionTower
from prunekit.types import VideoLayout

PoolMode = Literal["average", "bilinear"]
_TRANSFORMERS = tuple(int(p) for p in transformers.__version__.split(".")[:2])


def pooled_side(config: LlavaOnevisionConfig) -> int:
    """Rows (= columns) of a frame's token grid after stride-2 pooling."""
    side = config.vision_config.image_size // config.vision_config.patch_size
    mode = getattr(config, "spatial_pool_mode", "average")
    return side // 2 if mode == "average" else math.ceil(side / 2)


class LlavaVideoModel(LlavaOnevisionModel):
    """LLaVA-OneVision's model with LLaVA-Video's pooling and per-row newlines for videos."""

    def apply_pooling(self, image_features: torch.Tensor) -> torch.Tensor:
        side = self.config.vision_config.image_size // self.config.vision_config.patch_size
        frames, _, dim = image_features.shape
        grid = image_features.view(frames, side, side, dim).permute(0, 3, 1, 2)
        if getattr(self.config, "spatial_pool_mode", "average") == "average":
            grid = nn.functional.avg_pool2d(grid, 2)
        else:
            grid = nn.functional.interpolate(grid, size=[math.ceil(side / 2)] * 2, mode="bilinear")
        return grid.permute(0, 2, 3, 1)  # [BF, h, w, D]

    def get_video_features(self, pixel_values_videos: torch.Tensor, vision_feature_layer=None,  # noqa: ANN001
                           vision_feature_select_strategy=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
        batch, frames = pixel_values_videos.shape[:2]
        kwargs.update(return_dict=True, output_hidden_states=True)
        outputs = self.vision_tower(pixel_values_videos.flatten(0, 1), **kwargs)
        layer = vision_feature_layer if vision_feature_layer is not None else self.config.vision_feature_layer
        features = outputs.hidden_states[layer]
        strategy = vision_feature_select_strategy or self.config.vision_feature_select_strategy
        if strategy == "default":
            features = features[:, 1:]
        grid = self.apply_pooling(self.multi_modal_projector(features))  # [BF, h, w, D]
        newline = self.image_newline.view(1, 1, 1, -1).expand(grid.shape[0], grid.shape[1], 1, -1)
        grid = torch.cat([grid, newline.to(grid.dtype)], dim=2)  # a newline after every row
        outputs.pooler_output = grid.reshape(batch, -1, grid.shape[-1])
        return outputs


class LlavaVideoForConditionalGeneration(LlavaOnevisionForConditionalGeneration):
    """LLaVA-Video-7B-Qwen2 (grid newlines). Set ``config.spatial_pool_mode`` to "average" or "bilinear"."""

    def __init__(self, config: LlavaOnevisionConfig) -> None:
        if _TRANSFORMERS < (5, 18):
            raise UnsupportedModelError(
                "the LLaVA-Video grid layout needs transformers >= 5.18 (older releases append the video newline "
                "outside get_video_features); upgrade transformers, or load the HF conversion as LLaVA-OneVision.")
        super().__init__(config)
        self.model = LlavaVideoModel(config)
        self.post_init()


class LlavaVideoProcessor(LlavaOnevisionProcessor):
    """Expands ``<video>`` to ``F * h * (w + 1)`` placeholders (the grid layout)."""

    spatial_pool_mode: PoolMode = "average"

    def replace_video_token(self, video_inputs: dict, video_idx: int, **kwargs) -> str:  # noqa: ANN003
        frames = video_inputs["pixel_values_videos"][video_idx].shape[0]
        side = math.isqrt(self.num_image_tokens)
        rows = side // 2 if self.spatial_pool_mode == "average" else math.ceil(side / 2)
        return self.video_token * (frames * rows * (rows + 1))


class LlavaVideoAdapter(ModelAdapter):
    """Grid layout: ``h`` rows of ``w`` tokens + 1 newline per frame.

    ``newline="prune"`` (default, as the authors do) treats the newline column as ordinary visual
    tokens (grid ``h x (w+1)``: 182 or 210 per frame); ``newline="keep"`` makes newlines layout tokens
    that are never scored, merged or pruned (grid ``h x w``).
    """

    name = "llava_video"
    model_classes = ("LlavaVideoForConditionalGeneration",)

    def __init__(self, model: nn.Module, newline: Literal["prune", "keep"] = "prune") -> None:
        super().__init__(model)
        if newline not in ("prune", "keep"):
            raise InvalidInputError(f"newline must be 'prune' or 'keep', got {newline!r}.")
        self.newline = newline

    def vision_tower(self) -> VisionTower:
        """SigLIP, as for LLaVA-OneVision; a dropped frame takes its row newlines with it."""
        rows = pooled_side(self.model.config)
        per_frame = rows * (rows + 1) if self.newline == "prune" else rows * rows
        return siglip_tower(self.model, per_frame, frame_layout_tokens=self.newline == "keep")

    def layouts(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None) -> list[VideoLayout | None]:
        rows = pooled_side(self.model.config)
        width = rows + 1
        per_frame = rows * width
        out: list[VideoLayout | None] = []
        for row in input_ids:
            blocks, newlines = [], []
            for start, end in video_runs(row == self.model.config.video_token_id):
                if (end - start) % per_frame:
                    raise InvalidInputError(f"a video block of {end - start} tokens is not a whole number of "
                                            f"{rows}x({rows}+1) frames; use LlavaVideoProcessor.")
                index = torch.arange(start, end).view(-1, rows, width)
                if self.newline == "keep":
                    newlines += index[:, :, -1].flatten().tolist()
                    index = index[:, :, :-1]
                blocks.append(index.flatten(1))
            grid = (rows, width) if self.newline == "prune" else (rows, rows)
            out.append(stack_layouts(blocks, grid, row.numel(), newlines) if blocks else None)
        return out
