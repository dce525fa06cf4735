"""Tiny random-weight Qwen2.5-VL and Qwen3-VL checkpoints (video processors included), built offline.

8 frames of 112 x 112 px give a 4 x 8 x 8 patch grid: 4 temporal frames of 4 x 4 = 64 video tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WORDS = ["<unk>", "describe", "the", "video", "a", "cat", "dog", "runs", "sits", "seconds"]
SPECIALS = ["<|endoftext|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|image_pad|>"]
PROMPTS = {
    "qwen2_5_vl": "<|im_start|> describe <|vision_start|><|video_pad|><|vision_end|> the video",
    # vLLM 0.32 finds a pruned Qwen3-VL video's positions from the first <|vision_start|> after the
    # timestamps; a wrapping <|vision_start|> (transformers >= 5.10 expands only <|video_pad|>) misleads
    # it, for vLLM's own EVS too (docs/vllm.md). The bare placeholder avoids that.
    "qwen3_vl": "<|im_start|> describe <|video_pad|> the video",
}
FRAMES, SIDE, FPS = 8, 112, 2.0
PIXELS = SIDE * SIDE


def tokenizer():  # noqa: ANN201
    """A word-level tokenizer with Qwen's special tokens."""
    import tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<|endoftext|>",
                                  eos_token="<|im_end|>")
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[2:]})
    return tok


def video() -> tuple[np.ndarray, dict]:
    """A seeded random video ``[8, 112, 112, 3]`` uint8 and the metadata vLLM's Qwen processors need."""
    frames = np.random.default_rng(0).integers(0, 256, size=(FRAMES, SIDE, SIDE, 3), dtype=np.uint8)
    meta = {"fps": FPS, "duration": FRAMES / FPS, "total_num_frames": FRAMES, "frames_indices": list(range(FRAMES)),
            "video_backend": "opencv", "do_sample_frames": False}
    return frames, meta


def _ids(tok) -> dict:  # noqa: ANN001
    ids = {name: tok.convert_tokens_to_ids(f"<|{name}|>") for name in
           ("vision_start", "vision_end", "video_pad", "image_pad")}
    return dict(vision_start_token_id=ids["vision_start"], vision_end_token_id=ids["vision_end"],
                video_token_id=ids["video_pad"], image_token_id=ids["image_pad"])


def _text(tok, mrope: list[int]) -> dict:  # noqa: ANN001
    return dict(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=64, max_position_embeddings=4096,
                eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), bos_token_id=None, tie_word_embeddings=False,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope})


def save_qwen2_5_vl(out: Path) -> Path:
    """Save a seeded tiny ``Qwen2_5_VLForConditionalGeneration`` with its processor into ``out``."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = tokenizer()
    config = Qwen2_5_VLConfig(
        text_config=_text(tok, [8, 12, 12]),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=128,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1], tokens_per_second=2, in_chans=3),
        **_ids(tok))
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(config).eval().save_pretrained(out)
    size = {"shortest_edge": PIXELS, "longest_edge": PIXELS}
    Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(size=size),
                        video_processor=Qwen2VLVideoProcessor(size=size, do_sample_frames=False),
                        tokenizer=tok).save_pretrained(out)
    return out


def save_qwen3_vl(out: Path) -> Path:
    """Save a seeded tiny ``Qwen3VLForConditionalGeneration`` (DeepStack at vision layers 0 and 1)."""
    import torch
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tok = tokenizer()
    text = _text(tok, [8, 12, 12])
    text["rope_parameters"]["mrope_interleaved"] = True
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=128,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64,
                           deepstack_visual_indexes=[0, 1], in_channels=3),
        **_ids(tok))
    torch.manual_seed(0)
    Qwen3VLForConditionalGeneration(config).eval().save_pretrained(out)
    size = {"shortest_edge": PIXELS, "longest_edge": PIXELS * FRAMES}
    Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(size=size, patch_size=14),
                     video_processor=Qwen3VLVideoProcessor(size=size, patch_size=14, do_sample_frames=False),
                     tokenizer=tok).save_pretrained(out)
    return out
