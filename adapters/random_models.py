"""Random-weight models of the supported architectures, built from configs (no download).

Used by the tests (tiny shapes, CPU) and the efficiency benchmark (7B shapes, GPU). Inputs are
built without a processor: placeholder token ids plus pixel tensors of the right shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunekit.adapters._random_init import instantiate

_TRANSFORMERS_MAJOR = int(__import__("transformers").__version__.split(".")[0])
FAMILIES = ("llava_onevision", "llava_video", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "qwen3_5",
            "qwen3_5_moe")
VOCAB, IMG, VID, VSTART, VEND = 200, 190, 191, 192, 193


def _text_config(shape: str) -> dict:
    if shape == "tiny":
        return dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                    rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=None, eos_token_id=None,
                    pad_token_id=0)
    if shape == "7b":  # Qwen2-7B, the LLM of LLaVA-OV-7B / LLaVA-Video-7B / Qwen2-VL-7B
        return dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                    num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                    rms_norm_eps=1e-6, tie_word_embeddings=False)
    raise ValueError(f"unknown shape {shape!r}; use 'tiny' or '7b'.")


@dataclass(frozen=True)
class VideoInputs:
    """Model inputs for one or more videos, built without a processor."""

    kwargs: dict
    num_frames: int


def build_model(family: str, shape: str = "tiny", attn: str = "sdpa", seed: int = 0,
                num_layers: int | None = None, spatial_pool_mode: str = "average") -> nn.Module:
    """A randomly initialised model of ``family`` at ``shape`` ("tiny" or "7b"; Qwen3 families: "tiny",
    "8b" for qwen3_vl, "9b" for qwen3_5), in eval mode.

    ``spatial_pool_mode`` applies to ``llava_video`` only ("average": 182 tokens per 7B frame,
    "bilinear": 210).
    """
    if family.startswith("qwen3"):
        from prunekit.adapters.random_models_qwen3 import build_qwen3_model

        return build_qwen3_model(family, shape, attn, seed, num_layers)
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
    )

    torch.manual_seed(seed)
    text = _text_config(shape)
    if num_layers is not None:
        text["num_hidden_layers"] = num_layers
    tiny = shape == "tiny"
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    if family in ("llava_onevision", "llava_video"):
        vision = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, image_size=56 if family == "llava_onevision" else 70,
                      patch_size=14) if tiny else dict(
            model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304, num_hidden_layers=26,
            num_attention_heads=16, image_size=384, patch_size=14)
        config = LlavaOnevisionConfig(
            vision_config=vision, text_config=dict(model_type="qwen2", **text),
            image_token_id=IMG if tiny else 151646, video_token_id=VID if tiny else 151647,
            vision_feature_layer=-1, vision_feature_select_strategy="full",
            image_grid_pinpoints=[[vision["image_size"], vision["image_size"]]])
        cls = LlavaOnevisionForConditionalGeneration
        if family == "llava_video":
            from prunekit.adapters.llava_video import LlavaVideoForConditionalGeneration

            config.spatial_pool_mode = spatial_pool_mode
            cls = LlavaVideoForConditionalGeneration
    elif family in ("qwen2_vl", "qwen2_5_vl"):
        section = [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16] if tiny else [16, 24, 24]
        section[0] += head_dim // 2 - sum(section)
        if _TRANSFORMERS_MAJOR >= 5:
            text = dict(text, rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": section})
        else:  # transformers 4.x spells M-RoPE through rope_scaling
            text = dict(text, rope_theta=1e6, rope_scaling={"type": "mrope", "mrope_section": section})
        ids = dict(image_token_id=IMG, video_token_id=VID, vision_start_token_id=VSTART, vision_end_token_id=VEND) \
            if tiny else {}
        if family == "qwen2_vl":
            vision = dict(depth=2, embed_dim=32, hidden_size=text["hidden_size"], num_heads=2, mlp_ratio=2,
                          patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3) if tiny else \
                dict(depth=32, embed_dim=1280, hidden_size=text["hidden_size"], num_heads=16, mlp_ratio=4)
            config, cls = Qwen2VLConfig(text_config=text, vision_config=vision, **ids), Qwen2VLForConditionalGeneration
        else:
            vision = dict(depth=2, hidden_size=32, intermediate_size=64, out_hidden_size=text["hidden_size"],
                          num_heads=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                          fullatt_block_indexes=[1], tokens_per_second=2) if tiny else \
                dict(out_hidden_size=text["hidden_size"], tokens_per_second=2)
            config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
            cls = Qwen2_5_VLForConditionalGeneration
    else:
        raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}.")
    return instantiate(cls, config, attn)


def video_inputs(model: nn.Module, num_frames: int, prompt_before: int = 3, prompt_after: int = 5,
                 seed: int = 0, height: int | None = None, width: int | None = None,
                 dtype: torch.dtype = torch.float32) -> VideoInputs:
    """``input_ids`` with video placeholders between random text, plus pixel tensors, for batch 1."""
    gen = torch.Generator().manual_seed(seed)
    config = model.config
    name = type(model).__name__
    text = lambda n: torch.randint(3, min(config.get_text_config().vocab_size, 180), (n,), generator=gen)  # noqa: E731
    if name.startswith("Qwen3"):
        from prunekit.adapters.random_models_qwen3 import qwen3_video_kwargs

        kwargs = qwen3_video_kwargs(model, num_frames, prompt_before, prompt_after, gen, height or 64, width or 96,
                                    dtype)
        return VideoInputs(kwargs, num_frames)
    if name.startswith("Llava"):
        size = config.vision_config.image_size
        side = -(-(size // config.vision_config.patch_size) // 2)
        count = num_frames * side * side + 1
        if name.startswith("LlavaVideo"):
            from prunekit.adapters.llava_video import pooled_side

            rows = pooled_side(config)
            count = num_frames * rows * (rows + 1)
        ids = torch.cat([text(prompt_before), torch.full((count,), config.video_token_id), text(prompt_after)])
        pixels = torch.randn(1, num_frames, 3, size, size, generator=gen).to(dtype)
        kwargs = dict(input_ids=ids[None], pixel_values_videos=pixels)
    else:
        height, width = height or 56, width or 84
        t, h, w = (num_frames + 1) // 2, height // 14, width // 14
        count = t * h * w // 4
        start, end = config.vision_start_token_id, config.vision_end_token_id
        ids = torch.cat([text(prompt_before), torch.tensor([start]), torch.full((count,), config.video_token_id),
                         torch.tensor([end]), text(prompt_after)])
        pixels = torch.randn(t * h * w, 3 * 2 * 14 * 14, generator=gen).to(dtype)
        mm_types = (ids == config.video_token_id).long() * 2
        kwargs = dict(input_ids=ids[None], pixel_values_videos=pixels, video_grid_thw=torch.tensor([[t, h, w]]))
        if _TRANSFORMERS_MAJOR >= 5:  # required from 5.3, unknown in 4.x
            kwargs["mm_token_type_ids"] = mm_types[None]
        if name.startswith("Qwen2_5"):
            kwargs["second_per_grid_ts"] = torch.tensor([1.0])
    return VideoInputs(kwargs, num_frames)


def batch_inputs(samples: list[VideoInputs], pad_token_id: int = 0) -> dict:
    """Left-pad several single-sample inputs into one batch (with an ``attention_mask``)."""
    length = max(s.kwargs["input_ids"].shape[1] for s in samples)
    ids, mask, types = [], [], []
    for s in samples:
        row = s.kwargs["input_ids"][0]
        pad = length - row.numel()
        ids.append(torch.cat([torch.full((pad,), pad_token_id), row]))
        mask.append(torch.cat([torch.zeros(pad, dtype=torch.long), torch.ones(row.numel(), dtype=torch.long)]))
        if "mm_token_type_ids" in s.kwargs:
            types.append(torch.cat([torch.zeros(pad, dtype=torch.long), s.kwargs["mm_token_type_ids"][0]]))
    out = dict(input_ids=torch.stack(ids), attention_mask=torch.stack(mask))
    first = samples[0].kwargs
    if "video_grid_thw" in first:
        out["pixel_values_videos"] = torch.cat([s.kwargs["pixel_values_videos"] for s in samples])
        out["video_grid_thw"] = torch.cat([s.kwargs["video_grid_thw"] for s in samples])
        if types:
            out["mm_token_type_ids"] = torch.stack(types)
        if "second_per_grid_ts" in first:
            out["second_per_grid_ts"] = torch.cat([s.kwargs["second_per_grid_ts"] for s in samples])
    else:
        frames = {s.kwargs["pixel_values_videos"].shape[1] for s in samples}
        if len(frames) != 1:
            raise ValueError(f"LLaVA-OneVision batches need the same frame count per video, got {sorted(frames)}.")
        out["pixel_values_videos"] = torch.cat([s.kwargs["pixel_values_videos"] for s in samples])
    return out
