"""Greedy MAP inference for (conditional) determinantal point processes, batched over segments.

Implements the incremental-Cholesky greedy algorithm of Chen, Zhang & Zhou, "Fast Greedy MAP
Inference for Determinantal Point Process to Improve Recommendation Diversity" (NeurIPS 2018).
All segments run as one padded batch: one loop over greedy steps, no loop over segments and no
host synchronisation inside the loop.
"""

from __future__ import annotations

import torch

from prunekit.ops.similarity import cosine_matrix


def conditional_kernel(features: torch.Tensor, relevance: torch.Tensor | None) -> torch.Tensor:
    """``L = diag(r) S diag(r)`` with ``S`` the cosine similarity of ``features [..., n, D]``."""
    sim = cosine_matrix(features)  # [..., n, n]
    if relevance is None:
        return sim
    r = relevance.to(sim.dtype)
    return r[..., :, None] * sim * r[..., None, :]


def greedy_map(kernel: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor,
               fill_score: torch.Tensor | None = None, eps: float = 1e-6) -> list[torch.Tensor]:
    """Select ``keep[b]`` items per batch row by greedy DPP MAP; exact counts guaranteed.

    Args:
        kernel: ``[B, n, n]`` PSD kernels (padded rows/cols are ignored through ``valid``).
        keep: ``[B]`` items to select per row (``<= valid[b].sum()``).
        valid: ``[B, n]`` which items exist.
        fill_score: ``[B, n]`` ranking used to fill the remaining slots once the kernel is
            numerically exhausted (rank-deficient); defaults to the kernel diagonal.
        eps: marginal-gain threshold below which the greedy stops.

    Returns:
        One sorted index tensor per batch row.
    """
    bsz, n, _ = kernel.shape
    kernel = kernel.float()
    device = kernel.device
    k_max = int(keep.max()) if bsz else 0
    rows = torch.arange(bsz, device=device)
    keep = keep.to(device)
    d2 = torch.diagonal(kernel, dim1=-2, dim2=-1).clone()  # [B, n] marginal gains
    d2 = d2.masked_fill(~valid, float("-inf"))
    chol = kernel.new_zeros(bsz, k_max, n)  # [B, k, n] incremental Cholesky rows
    chosen = torch.full((bsz, k_max), -1, dtype=torch.long, device=device)
    active = torch.ones(bsz, dtype=torch.bool, device=device)
    for step in range(k_max):
        j = d2.argmax(-1)  # [B]
        gain = d2[rows, j]
        ok = active & (step < keep) & (gain > eps)
        chosen[:, step] = torch.where(ok, j, -1)
        active = ok
        c_j = chol[rows, :step, j]  # [B, step]
        proj = torch.einsum("bi,bin->bn", c_j, chol[:, :step])
        e = (kernel[rows, j] - proj) / gain.clamp_min(eps).sqrt()[:, None]
        e = torch.where(ok[:, None], e, torch.zeros_like(e))
        chol[:, step] = e
        d2 = d2 - e.square()
        d2[rows, j] = float("-inf")
    if fill_score is None:
        fill_score = torch.diagonal(kernel, dim1=-2, dim2=-1)
    return _fill_to_count(chosen, keep, valid, fill_score)


def _fill_to_count(chosen: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor,
                   fill_score: torch.Tensor) -> list[torch.Tensor]:
    """Complete each row's greedy picks with the best-scoring unpicked valid items."""
    out = []
    chosen, keep, valid, fill_score = chosen.cpu(), keep.cpu(), valid.cpu(), fill_score.float().cpu()
    for b in range(chosen.shape[0]):
        k = int(keep[b])
        picked = chosen[b][chosen[b] >= 0][:k]
        missing = k - picked.numel()
        if missing > 0:
            score = fill_score[b].clone().nan_to_num(nan=float("-inf"))
            score[~valid[b]] = float("-inf")
            score[picked] = float("-inf")
            # stable ranking: highest score first, lowest index on ties
            order = torch.argsort(-score, stable=True)
            extra = order[:missing]
            picked = torch.cat([picked, extra])
        out.append(torch.sort(picked).values)
    return out
