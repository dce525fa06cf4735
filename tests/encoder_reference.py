"""An independent reference for encoder-level stages on LLaVA-OneVision and LLaVA-Video, written without hooks.

It runs SigLIP by hand: patch embeddings, tower layers ``0..j-1`` on every frame, then each kept
frame becomes the mean of its group (the encoder stage's decision) and layers ``j..`` run on the
kept frames only. The projector and the 2x2 bilinear pooling follow, and the LLM input is the
prompt's embeddings with the kept frames' tokens written into their own placeholder slots; the
dropped frames' slots are simply absent. Kept tokens keep their original positions.
"""

from __future__ import annotations

import torch
from torch import nn

from prunekit.model_adapter import find_adapter
from prunekit.pipeline import Pipeline
from tests.reference import LLMInputs


def encoder_llm_inputs(model: nn.Module, inputs: dict, pipeline: Pipeline, **adapter_options: object) -> LLMInputs:
    """What the LLM of ``model`` receives for ``inputs`` (batch 1, one video) under ``pipeline``'s encoder stage."""
    adapter = find_adapter(model, **adapter_options)
    core = model.model
    tower = core.vision_tower
    access = adapter.vision_tower()
    pixels = inputs["pixel_values_videos"][0]  # [F, C, H, W]
    frames = pixels.shape[0]
    with torch.no_grad():
        hidden = tower.embeddings(pixels)  # [F, T, D]
        kept = torch.arange(frames)
        layer_at = pipeline.encoder.tower_layer(len(tower.encoder.layers))
        for index, layer in enumerate(tower.encoder.layers):
            if index == layer_at:
                reduction = pipeline.reduce_frames(hidden, access.tokens_per_frame, adapter.num_layers)
                if reduction is not None:
                    kept, groups = reduction.kept, _groups(reduction.kept, reduction.merge, frames)
                    hidden = torch.stack([hidden[group].mean(0) for group in groups])
            hidden = layer(hidden, None)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        blocks = _frame_blocks(core, core.multi_modal_projector(hidden))  # [K, tokens of a frame's block, D]
        ids = inputs["input_ids"]
        embeds = model.get_input_embeddings()(ids).clone()
        slots = torch.nonzero(ids[0] == model.config.video_token_id).flatten()
        trailing = slots.numel() - frames * blocks.shape[1]  # LLaVA-OV: one newline after the video
        video = slots[: slots.numel() - trailing].view(frames, -1)
        embeds[0, video[kept]] = blocks
        if trailing:
            embeds[0, slots[-1]] = core.image_newline
    dropped = torch.ones(frames, dtype=torch.bool)
    dropped[kept] = False
    gone = set(video[dropped].flatten().tolist())
    present = torch.tensor([i for i in range(ids.shape[1]) if i not in gone])
    full = adapter.layouts(ids, None)[0]
    positions = torch.arange(ids.shape[1])[None]
    return LLMInputs(embeds, positions, full.keep_frames(kept), present, full.num_visual)


def _frame_blocks(core: nn.Module, projected: torch.Tensor) -> torch.Tensor:
    """Each kept frame's tokens as they sit in the sequence: LLaVA-OV's pooled grid, or LLaVA-Video's
    pooled rows with a newline after every row."""
    pooled = core.apply_pooling(projected)
    if pooled.ndim == 3:  # LLaVA-OneVision: [K, P, D]
        return pooled
    newline = core.image_newline.view(1, 1, 1, -1).expand(pooled.shape[0], pooled.shape[1], 1, -1)
    return torch.cat([pooled, newline], 2).flatten(1, 2)  # LLaVA-Video: [K, h * (w + 1), D]


def _groups(kept: torch.Tensor, merge, frames: int) -> list[list[int]]:  # noqa: ANN001
    """Original frames making up every kept frame: itself and the frames merged into it."""
    groups = {int(k): [int(k)] for k in kept}
    for source, target in zip(merge.source.tolist(), merge.target.tolist()):
        groups[target].append(source)
    return [groups[int(k)] for k in kept]
