"""Last-query attention from a layer's query/key states, so SDPA/flash attention stay on.

Model-agnostic maths only: the adapter projects the queries and keys (`ModelAdapter.query_key`)
and supplies the rotary tables.
"""

from __future__ import annotations

import torch


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """RoPE helper: ``[-x2, x1]``."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x [B, H, L, hd]`` by ``cos, sin [B, L, rd]``; with ``rd < hd`` (partial rotary) the rest passes."""
    cos, sin = cos[:, None], sin[:, None]
    rotary = cos.shape[-1]
    if rotary == x.shape[-1]:
        return x * cos + rotate_half(x) * sin
    rot, rest = x[..., :rotary], x[..., rotary:]
    return torch.cat((rot * cos + rotate_half(rot) * sin, rest), dim=-1)


def last_query_scores(q: torch.Tensor, k: torch.Tensor, scaling: float,
                      key_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Head-averaged softmax attention of one query ``q [B, H, 1, hd]`` over ``k [B, Hkv, L, hd]``: ``[B, L]``.

    Equals the last row of the layer's eager attention weights averaged over heads (grouped-query
    heads share their key head); ``key_valid [B, L]`` masks padding.
    """
    bsz, heads, _, hd = q.shape
    kv_heads = k.shape[1]
    scores = (q.reshape(bsz, kv_heads, heads // kv_heads, hd) @ k.transpose(-1, -2)) * scaling
    if key_valid is not None:  # [B, L]
        scores = scores.masked_fill(~key_valid[:, None, None, :], float("-inf"))
    return scores.softmax(-1, dtype=torch.float32).mean((1, 2))  # [B, L]
