"""Greedy max-min diversity (farthest-point) selection, as in DivPrune.

Alvar et al., "DivPrune: Diversity-based Visual Token Pruning for Large Multimodal Models"
(CVPR 2025): the first pick is the item farthest from its nearest neighbour; every next pick is
the item whose distance to the already selected set is largest.
"""

from __future__ import annotations

import torch

from prunekit.ops import diversity_triton


def max_min_diversity(dist: torch.Tensor, keep: int) -> torch.Tensor:
    """Sorted indices of ``keep`` items chosen greedily by max-min distance from ``dist [n, n]``.

    Ties go to the lowest index. Selected items are excluded from later picks, so the result has
    exactly ``keep`` distinct items even when many items coincide. On a GPU with Triton the greedy
    loop runs as one kernel (`prunekit.ops.diversity_triton`), with the same picks as the torch loop.
    """
    return max_min_diversity_batched(dist[None], keep)[0]


def max_min_diversity_batched(dist: torch.Tensor, keep: int) -> torch.Tensor:
    """`max_min_diversity` of every row of ``dist [B, n, n]``: ``[B, keep]`` sorted indices.

    On a GPU with Triton (rows of at most `diversity_triton.MAX_ITEMS` items) all rows run in one
    kernel launch; otherwise each row runs the torch loop (`max_min_diversity_torch`).
    """
    bsz, n, _ = dist.shape
    if keep >= n:
        return torch.arange(n, device=dist.device).expand(bsz, n)
    if keep > 0 and n <= diversity_triton.MAX_ITEMS and diversity_triton.available(dist):
        dist = dist.float()
        try:
            picks = diversity_triton.max_min_triton(dist, _first_pick(dist), keep)
        except Exception as exc:  # noqa: BLE001 - compile/launch failure: fall back, once, with a warning
            diversity_triton.disable(f"{type(exc).__name__}: {exc}")
        else:
            return torch.sort(picks, -1).values
    return torch.stack([max_min_diversity_torch(d, keep) for d in dist]) if bsz else \
        torch.empty(0, keep, dtype=torch.long, device=dist.device)


def _first_pick(dist: torch.Tensor) -> torch.Tensor:
    """``[..., n, n]`` -> ``[...]`` the item farthest from its nearest neighbour (lowest index on ties)."""
    n = dist.shape[-1]
    if n == 1:
        return torch.zeros(dist.shape[:-2], dtype=torch.long, device=dist.device)
    off_diag = dist.masked_fill(torch.eye(n, dtype=torch.bool, device=dist.device), float("inf"))
    return off_diag.min(-1).values.argmax(-1)  # NN distance of every item, its largest


def max_min_diversity_torch(dist: torch.Tensor, keep: int) -> torch.Tensor:
    """`max_min_diversity` as a torch loop (a few small kernels per greedy step); the reference path."""
    n = dist.shape[0]
    if keep >= n:
        return torch.arange(n, device=dist.device)
    dist = dist.float()
    chosen = torch.empty(keep, dtype=torch.long, device=dist.device)
    if keep == 0:
        return chosen
    chosen[0] = _first_pick(dist)
    to_set = dist[chosen[0]].clone()  # [n] distance to the selected set
    taken = torch.zeros(n, dtype=torch.bool, device=dist.device)
    taken[chosen[0]] = True
    for i in range(1, keep):
        j = to_set.masked_fill(taken, float("-inf")).argmax()
        chosen[i] = j
        taken[j] = True
        to_set = torch.minimum(to_set, dist[j])
    return torch.sort(chosen).values
