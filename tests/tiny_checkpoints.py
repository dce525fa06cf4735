"""Tiny random checkpoints saved to folders, with offline word-level tokenizers (shared by the tests).

Everything is built from configs: no download. The LLaVA-OneVision checkpoint has 56 px frames
(4 x 4 patches of 14 px, pooled to 2 x 2 = 4 visual tokens per frame) and a 4-layer Qwen2 LM.
"""

from __future__ import annotations

from pathlib import Path


def word_tokenizer(words: list[str], specials: list[str], chat_template: str | None = None):  # noqa: ANN201
    """A ``PreTrainedTokenizerFast`` over ``words`` (``words[0]`` is the unknown token) plus ``specials``."""
    import tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab={w: i for i, w in enumerate(words)},
                                                          unk_token=words[0]))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token=words[0], pad_token="<|endoftext|>",
                                  eos_token="<|im_end|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", *specials]})
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def qwen2_text_config(tok, **extra) -> dict:  # noqa: ANN001
    """A 4-layer, 64-wide Qwen2 text config for ``tok``'s vocabulary."""
    return dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=4096, bos_token_id=None,
                eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"), **extra)


def save_tiny_llava_ov(out: Path, words: list[str], chat_template: str | None = None) -> Path:
    """A random LLaVA-OneVision checkpoint and its processor in ``out`` (seeded: the same weights every time)."""
    import torch
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    tok = word_tokenizer(words, ["<image>", "<video>"], chat_template)
    extra = {} if chat_template is None else {"chat_template": chat_template}
    proc = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": 56, "width": 56}, image_grid_pinpoints=[[56, 56]]),
        video_processor=LlavaOnevisionVideoProcessor(size={"height": 56, "width": 56}), tokenizer=tok,
        num_image_tokens=16, vision_feature_select_strategy="full", **extra)
    config = LlavaOnevisionConfig(
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=56, patch_size=14),
        text_config=dict(model_type="qwen2", tie_word_embeddings=False, **qwen2_text_config(tok)),
        image_token_id=tok.convert_tokens_to_ids("<image>"), video_token_id=tok.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-1, vision_feature_select_strategy="full", image_grid_pinpoints=[[56, 56]])
    torch.manual_seed(0)
    LlavaOnevisionForConditionalGeneration(config).eval().save_pretrained(out)
    proc.save_pretrained(out)
    return out
