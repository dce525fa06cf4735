"""Random-weight Qwen3-VL and Qwen3.5 models (dense and MoE) and their processor-free video inputs.

Part of `prunekit.adapters.random_models` (which dispatches here). Qwen3 families put every temporal patch of a video
in its own block: ``<timestamp text> <|vision_start|> frame tokens <|vision_end|>``.
"""

from __future__ import annotations

import torch
from torch import nn

QWEN3_FAMILIES = ("qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe")
#: text tokens standing for each frame block's timestamp (``<t seconds>``) in processor-free inputs
TIMESTAMP_TOKENS = 3

_MOE_TINY = dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32)


def _tiny_text(family: str) -> dict:
    common = dict(vocab_size=200, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6, pad_token_id=0,
                  bos_token_id=None, eos_token_id=None, tie_word_embeddings=False)
    if family.startswith("qwen3_vl"):
        text = dict(common, num_hidden_layers=4, head_dim=16,
                    rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [2, 3, 3],
                                     "mrope_interleaved": True})
        return dict(text, **_MOE_TINY, decoder_sparse_step=1) if family.endswith("moe") else text
    # Qwen3.5: 8 layers, full attention at 3 and 7, partial rotary (a quarter of head_dim 32 = 8 dims)
    text = dict(common, num_hidden_layers=8, head_dim=32, num_attention_heads=2, num_key_value_heads=1,
                linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=16,
                linear_num_key_heads=2, linear_num_value_heads=4,
                rope_parameters={"rope_type": "default", "rope_theta": 1e7, "mrope_section": [2, 1, 1],
                                 "mrope_interleaved": True, "partial_rotary_factor": 0.25})
    return dict(text, **_MOE_TINY, shared_expert_intermediate_size=32) if family.endswith("moe") else text


def _real_text(family: str, size: str) -> tuple[dict, dict]:
    if size == "8b" and family == "qwen3_vl":  # Qwen/Qwen3-VL-8B-Instruct
        text = dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                    num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=262144,
                    rms_norm_eps=1e-6, tie_word_embeddings=False,
                    rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [24, 20, 20],
                                     "mrope_interleaved": True})
        vision = dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, patch_size=16,
                      out_hidden_size=4096, num_position_embeddings=2304, deepstack_visual_indexes=[8, 16, 24])
        return text, vision
    if size == "9b" and family == "qwen3_5":  # Qwen3.5-9B: transformers' Qwen3_5TextConfig defaults
        return dict(tie_word_embeddings=False), dict(depth=27, hidden_size=1152, intermediate_size=4304,
                                                     num_heads=16, patch_size=16, out_hidden_size=4096)
    raise ValueError(f"no real-size config for {family!r} at {size!r}; use 'tiny', 'qwen3_vl' at '8b' or "
                     "'qwen3_5' at '9b'.")


def build_qwen3_model(family: str, shape: str = "tiny", attn: str = "sdpa", seed: int = 0,
                      num_layers: int | None = None) -> nn.Module:
    """A randomly initialised Qwen3-VL / Qwen3.5 model (``family`` in `QWEN3_FAMILIES`), in eval mode."""
    import transformers

    names = {"qwen3_vl": "Qwen3VL", "qwen3_vl_moe": "Qwen3VLMoe", "qwen3_5": "Qwen3_5", "qwen3_5_moe": "Qwen3_5Moe"}
    if family not in names:
        raise ValueError(f"unknown family {family!r}; choose from {QWEN3_FAMILIES}.")
    config_cls = getattr(transformers, f"{names[family]}Config")
    model_cls = getattr(transformers, f"{names[family]}ForConditionalGeneration")
    torch.manual_seed(seed)
    if shape == "tiny":
        text = _tiny_text(family)
        vision = dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16,
                      out_hidden_size=64, num_position_embeddings=64)
        if family.startswith("qwen3_vl"):
            vision["deepstack_visual_indexes"] = [0, 1, 2]
        ids = dict(image_token_id=190, video_token_id=191, vision_start_token_id=192, vision_end_token_id=193)
    else:
        text, vision = _real_text(family, shape)
        ids = {}
    if num_layers is not None:
        text["num_hidden_layers"] = num_layers
    from prunekit.adapters._random_init import instantiate

    return instantiate(model_cls, config_cls(text_config=text, vision_config=vision, **ids), attn)


def qwen3_video_kwargs(model: nn.Module, num_frames: int, prompt_before: int, prompt_after: int,
                       gen: torch.Generator, height: int, width: int, dtype: torch.dtype) -> dict:
    """``input_ids`` with one timestamped block per temporal patch, pixels, grid and token types (batch 1)."""
    config = model.config
    vision = config.vision_config
    patch, merge, tp = vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size
    if height % (patch * merge) or width % (patch * merge):
        raise ValueError(f"height and width must be multiples of {patch * merge} for this model.")
    t, h, w = (num_frames + tp - 1) // tp, height // patch, width // patch
    per_frame = h * w // merge ** 2
    vocab = min(config.get_text_config().vocab_size, 180)
    text = lambda n: torch.randint(3, vocab, (n,), generator=gen)  # noqa: E731
    frame = torch.cat([torch.tensor([config.vision_start_token_id]),
                       torch.full((per_frame,), config.video_token_id), torch.tensor([config.vision_end_token_id])])
    blocks = [torch.cat([text(TIMESTAMP_TOKENS), frame]) for _ in range(t)]
    ids = torch.cat([text(prompt_before), *blocks, text(prompt_after)])
    pixels = torch.randn(t * h * w, vision.in_channels * tp * patch * patch, generator=gen).to(dtype)
    mm_types = (ids == config.video_token_id).long() * 2
    return dict(input_ids=ids[None], pixel_values_videos=pixels, video_grid_thw=torch.tensor([[t, h, w]]),
                mm_token_type_ids=mm_types[None])
