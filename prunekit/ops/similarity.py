"""Cosine similarities used by segmenters, mergers and selectors."""

from __future__ import annotations

import torch


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows scaled to unit norm (zero rows stay zero), computed in float32 or wider."""
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def same_position_similarity(features: torch.Tensor) -> torch.Tensor:
    """``[F, P]`` cosine of each token with the token at the same grid position one frame earlier.

    Frame 0 has no predecessor; its row is ``-inf`` so it is never "similar".
    """
    x = l2_normalize(features)  # [F, P, D]
    sim = torch.full(x.shape[:2], float("-inf"), dtype=x.dtype, device=x.device)
    if x.shape[0] > 1:
        sim[1:] = (x[1:] * x[:-1]).sum(-1)
    return sim


def cosine_matrix(x: torch.Tensor) -> torch.Tensor:
    """``[..., n, n]`` pairwise cosine similarity of ``x [..., n, D]``."""
    x = l2_normalize(x)
    return x @ x.transpose(-1, -2)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of matching rows of ``a`` and ``b``."""
    return (l2_normalize(a) * l2_normalize(b)).sum(-1)


def same_position_runs(removed: torch.Tensor) -> torch.Tensor:
    """``[F, P]`` frame that each token merges into: the last kept frame at or before it, same position."""
    frames = torch.arange(removed.shape[0], device=removed.device)[:, None].expand_as(removed)
    kept_frame = torch.where(removed, torch.full_like(frames, -1), frames)
    return kept_frame.cummax(0).values
