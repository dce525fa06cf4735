"""Last-query attention recomputed from a layer's q/k projections, so SDPA/flash attention stay on."""

from __future__ import annotations

import torch
from torch import nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """RoPE helper: ``[-x2, x1]``."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def merge_mrope(cos: torch.Tensor, section: list[int]) -> torch.Tensor:
    """Recombine Qwen-VL's ``[3, B, L, hd]`` rotary tables (transformers <= 5.10) into ``[B, L, hd]``."""
    chunks = cos.split(list(section) * 2, dim=-1)
    return torch.cat([chunk[i % 3] for i, chunk in enumerate(chunks)], dim=-1)


def last_query_attention(layer: nn.Module, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                         key_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Head-averaged attention of the last token over all tokens at the input of ``layer``: ``[B, L]``.

    Equals the last row of the layer's eager attention weights (averaged over heads), computed with
    one extra ``k_proj`` over the sequence (< 1% of a decoder layer) instead of ``L x L`` weights.
    """
    attn = layer.self_attn
    if cos.ndim == 4:  # transformers <= 5.10 Qwen-VL: [3, B, L, hd]
        section = attn.config.rope_parameters.get("mrope_section") if hasattr(attn.config, "rope_parameters") \
            else attn.config.rope_scaling["mrope_section"]
        cos, sin = merge_mrope(cos, section), merge_mrope(sin, section)
    x = layer.input_layernorm(hidden)
    bsz, length, _ = x.shape
    hd = attn.head_dim
    q = attn.q_proj(x[:, -1:]).view(bsz, 1, -1, hd).transpose(1, 2)  # [B, H, 1, hd]
    k = attn.k_proj(x).view(bsz, length, -1, hd).transpose(1, 2)  # [B, Hkv, L, hd]
    q = q * cos[:, None, -1:] + rotate_half(q) * sin[:, None, -1:]
    k = k * cos[:, None] + rotate_half(k) * sin[:, None]
    heads, kv_heads = q.shape[1], k.shape[1]
    scores = (q.reshape(bsz, kv_heads, heads // kv_heads, hd) @ k.transpose(-1, -2)) * attn.scaling
    if key_valid is not None:  # [B, L]
        scores = scores.masked_fill(~key_valid[:, None, None, :], float("-inf"))
    return scores.softmax(-1, dtype=torch.float32).mean((1, 2))  # [B, L]
