"""Greedy MAP inference for (conditional) determinantal point processes, batched over segments.

Implements the incremental-Cholesky greedy algorithm of Chen, Zhang & Zhou, "Fast Greedy MAP
Inference for Determinantal Point Process to Improve Recommendation Diversity" (NeurIPS 2018).
All segments run as one padded batch: one loop over greedy steps, no loop over segments and no
host synchronisation inside the loop. On CUDA tensors with Triton importable, `greedy_map` runs the
whole greedy loop in one persistent kernel (`prunekit.ops.dpp_triton`) instead, one launch per call
(``PRUNEKIT_DPP_BACKEND=torch`` forces this file's torch loop).
"""

from __future__ import annotations

import warnings

import torch

from prunekit.ops import dpp_triton
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
        One sorted index tensor per batch row (on the CPU).
    """
    if dpp_triton.available(kernel):
        fast = _greedy_map_triton(kernel, keep, valid, fill_score, eps)
        if fast is not None:
            return fast
    return greedy_map_torch(kernel, keep, valid, fill_score, eps)


def greedy_map_torch(kernel: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor,
                     fill_score: torch.Tensor | None = None, eps: float = 1e-6) -> list[torch.Tensor]:
    """`greedy_map` as a torch loop over greedy steps (any device; the CPU path)."""
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
        # bmm, not einsum: einsum took ~500x longer on CPU for these shapes
        proj = torch.bmm(c_j.unsqueeze(1), chol[:, :step]).squeeze(1)  # [B, n]
        e = (kernel[rows, j] - proj) / gain.clamp_min(eps).sqrt()[:, None]
        e = torch.where(ok[:, None], e, torch.zeros_like(e))
        chol[:, step] = e
        d2 = d2 - e.square()
        d2[rows, j] = float("-inf")
    if fill_score is None:
        fill_score = torch.diagonal(kernel, dim1=-2, dim2=-1)
    return _fill_to_count(chosen, keep, valid, fill_score)


def _greedy_map_triton(kernel: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor,
                       fill_score: torch.Tensor | None, eps: float) -> list[torch.Tensor] | None:
    """The Triton path: one kernel launch, then one synchronising copy of the picks to the host.

    The fill (rows the greedy left short) runs on the host and copies a row's scores only when
    that row needs it (rare: a numerically exhausted kernel). Returns None when the fast path failed.
    """
    try:
        chosen, count, err = dpp_triton.greedy_map_triton(kernel, torch.as_tensor(keep, device=kernel.device),
                                                          valid.to(kernel.device), eps)
    except Exception as exc:  # noqa: BLE001 - a compiler/driver problem must not break pruning
        dpp_triton.disable(f"{type(exc).__name__}: {exc}")
        return None
    chosen = chosen.cpu()  # the one synchronisation of the call (waits for the kernel)
    count, err = count.cpu(), int(err.cpu())
    if err:
        warnings.warn("prunekit: the Triton DPP kernel could not synchronise its programs (is another kernel "
                      "occupying the GPU?); this call falls back to the torch loop.", RuntimeWarning, stacklevel=3)
        return None
    keep = torch.as_tensor(keep).cpu()
    out = []
    for b in range(chosen.shape[0]):
        picked = chosen[b, : int(count[b])].long()
        missing = int(keep[b]) - picked.numel()
        if missing > 0:
            scores = torch.diagonal(kernel[b]) if fill_score is None else fill_score[b]
            score = scores.float().cpu().nan_to_num(nan=float("-inf"))
            score[~valid[b].cpu()] = float("-inf")
            score[picked] = float("-inf")
            # stable ranking: highest score first, lowest index on ties (as `_fill_to_count`)
            picked = torch.cat([picked, torch.argsort(-score, stable=True)[:missing]])
        out.append(torch.sort(picked).values)
    return out


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
