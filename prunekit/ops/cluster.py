"""Density-peaks clustering with k nearest neighbours (DPC-KNN) and nearest-centre assignment.

DPC-KNN (Du, Ding & Jia, "Study on density peaks clustering based on k-nearest neighbors and
principal component analysis", Knowledge-Based Systems 2016) as used for token merging by
PruneVid, HoliTom and FastVID: distances are Euclidean divided by ``sqrt(D)``; a token's density
is ``exp(-mean squared distance to its k nearest neighbours)``; its peak distance ``delta`` is the
distance to the nearest denser token (the densest token gets the largest distance); cluster
centres are the tokens with the largest ``delta * density``.

The reference implementations add ``rand * 1e-6`` to the densities to break ties; here ties are
broken deterministically (the earlier token counts as denser), so results are reproducible.
"""

from __future__ import annotations

import torch

from prunekit.ops.ranking import top_indices
from prunekit.ops.similarity import l2_normalize


def scaled_distances(x: torch.Tensor) -> torch.Tensor:
    """``[..., n, n]`` Euclidean distances of ``x [..., n, D]`` divided by ``sqrt(D)``, computed
    directly (not through a matrix product), so coincident tokens are exactly 0 apart."""
    x = x.float()
    return torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist") / x.shape[-1] ** 0.5


def density_peaks(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DPC-KNN centre scores ``delta * density`` ``[n]`` of ``x [n, D]`` and the distances ``[n, n]``."""
    n = x.shape[0]
    dist = scaled_distances(x)  # [n, n]
    if n == 0:
        return torch.zeros(0, device=x.device), dist
    nearest = torch.topk(dist, min(k, n), dim=-1, largest=False).values  # [n, k], self included
    density = torch.exp(-nearest.square().mean(-1))  # [n]
    rank = torch.empty(n, dtype=torch.long, device=x.device)
    rank[torch.argsort(-density, stable=True)] = torch.arange(n, device=x.device)
    denser = rank[None, :] < rank[:, None]  # [n, n]: column j is denser than row i
    delta = torch.where(denser, dist, torch.full_like(dist, float("inf"))).min(-1).values
    delta = torch.where(torch.isinf(delta), dist.max().expand_as(delta), delta)
    return delta * density, dist


def dpc_knn(x: torch.Tensor, num_clusters: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster ``x [n, D]`` into ``num_clusters``: sorted centre indices ``[c]`` and, for every token,
    the index (into the centres) of its nearest centre ``[n]``; centres belong to themselves."""
    score, dist = density_peaks(x, k)
    centers = top_indices(score, num_clusters)
    return centers, nearest_center(dist, centers)


def nearest_center(dist: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """``[n]`` index into ``centers`` of the closest centre by the distances ``dist [n, n]``."""
    assign = dist[:, centers].argmin(-1)
    assign[centers] = torch.arange(centers.numel(), device=dist.device)
    return assign


def most_similar(x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[n]`` index into ``targets`` of the target with the highest cosine similarity to each row of
    ``x [n, D]`` (``targets`` are row indices of ``x``; each target picks itself)."""
    xn = l2_normalize(x)
    assign = (xn @ xn[targets].T).argmax(-1)  # [n]
    # index_copy_, not assign[targets] = ...: the same values, and no host scalar copy for one target
    return assign.index_copy_(0, targets, torch.arange(targets.numel(), device=x.device))
