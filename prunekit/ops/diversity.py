"""Greedy max-min diversity (farthest-point) selection, as in DivPrune.

Alvar et al., "DivPrune: Diversity-based Visual Token Pruning for Large Multimodal Models"
(CVPR 2025): the first pick is the item farthest from its nearest neighbour; every next pick is
the item whose distance to the already selected set is largest.
"""

from __future__ import annotations

import torch


def max_min_diversity(dist: torch.Tensor, keep: int) -> torch.Tensor:
    """Sorted indices of ``keep`` items chosen greedily by max-min distance from ``dist [n, n]``.

    Ties go to the lowest index. Selected items are excluded from later picks, so the result has
    exactly ``keep`` distinct items even when many items coincide.
    """
    n = dist.shape[0]
    if keep >= n:
        return torch.arange(n, device=dist.device)
    dist = dist.float()
    chosen = torch.empty(keep, dtype=torch.long, device=dist.device)
    if keep == 0:
        return chosen
    off_diag = dist.masked_fill(torch.eye(n, dtype=torch.bool, device=dist.device), float("inf"))
    gap = off_diag.min(-1).values if n > 1 else torch.zeros(1, device=dist.device)  # [n] NN distance
    chosen[0] = gap.argmax()
    to_set = dist[chosen[0]].clone()  # [n] distance to the selected set
    taken = torch.zeros(n, dtype=torch.bool, device=dist.device)
    taken[chosen[0]] = True
    for i in range(1, keep):
        j = to_set.masked_fill(taken, float("-inf")).argmax()
        chosen[i] = j
        taken[j] = True
        to_set = torch.minimum(to_set, dist[j])
    return torch.sort(chosen).values
