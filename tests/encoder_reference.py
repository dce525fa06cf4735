"""An independent reference for encoder-level stages on LLaVA-OneVision, written without any hook.

It runs SigLIP by hand: patch embeddings, tower layers ``0..j-1`` on every frame, then each kept
frame becomes the mean of its group (the encoder stage's decision) and layers ``j..`` run on the
kept frames only. The projector and the 2x2 bilinear pooling follow, and the LLM input is the
prompt's embeddings with the kept frames' tokens written into their own placeholder slots; the
dropped frames' slots are simply absent. Kept tokens keep their original positions.
"""

from __future__ import annotations

import torch
from torch import nn

from prunekit.adapter import find_adapter
from prunekit.pipeline import Pipeline
from tests.reference import LLMInputs


def encoder_llm_inputs(model: nn.Module, inputs: dict, pipeline: Pipeline) -> LLMInputs:
    """What the LLM of ``model`` receives for ``inputs`` (batch 1, one video) under ``pipeline``'s encoder stage."""
    adapter = find_adapter(model)
    core = model.model
    tower = core.vision_tower
    pixels = inputs["pixel_values_videos"][0]  # [F, C, H, W]
    frames = pixels.shape[0]
    per_frame = adapter.vision_tower().tokens_per_frame
    with torch.no_grad():
        hidden = tower.embeddings(pixels)  # [F, T, D]
        kept = torch.arange(frames)
        for index, layer in enumerate(tower.encoder.layers):
            if index == pipeline.encoder.layer:
                reduction = pipeline.reduce_frames(hidden, per_frame, adapter.num_layers)
                if reduction is not None:
                    kept, groups = reduction.kept, _groups(reduction.kept, reduction.merge, frames)
                    hidden = torch.stack([hidden[group].mean(0) for group in groups])
            hidden = layer(hidden, None)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        features = core.apply_pooling(core.multi_modal_projector(hidden))  # [K, P, D]
        ids = inputs["input_ids"]
        embeds = model.get_input_embeddings()(ids).clone()
        slots = torch.nonzero(ids[0] == model.config.video_token_id).flatten()  # F * P tokens + the newline
        video = slots[:-1].view(frames, per_frame)
        embeds[0, video[kept]] = features
        embeds[0, slots[-1]] = core.image_newline
    dropped = torch.ones(frames, dtype=torch.bool)
    dropped[kept] = False
    present = torch.tensor([i for i in range(ids.shape[1]) if i not in set(video[dropped].flatten().tolist())])
    layout = adapter.layouts(ids, None)[0].keep_frames(kept)
    positions = torch.arange(ids.shape[1])[None]
    return LLMInputs(embeds, positions, layout, present, frames * per_frame)


def _groups(kept: torch.Tensor, merge, frames: int) -> list[list[int]]:  # noqa: ANN001
    """Original frames making up every kept frame: itself and the frames merged into it."""
    groups = {int(k): [int(k)] for k in kept}
    for source, target in zip(merge.source.tolist(), merge.target.tolist()):
        groups[target].append(source)
    return [groups[int(k)] for k in kept]
