"""Deterministic top-k and an evenly spread fallback ranking."""

from __future__ import annotations

import torch


def top_indices(score: torch.Tensor, count: int) -> torch.Tensor:
    """Sorted indices of the ``count`` largest scores (ties: the earlier index wins)."""
    order = torch.argsort(-score.float(), stable=True)
    return torch.sort(order[:count]).values


def spread_scores(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``[n]`` scores whose top-k, for every k, is spread evenly over ``0..n-1``.

    The score of item i is minus its bit-reversed index (van der Corput order), so the top 2^j
    items are every (n / 2^j)-th one. Used where a scoring signal (e.g. attention) is missing.
    """
    bits = max(1, (n - 1).bit_length())
    idx = torch.arange(n, device=device)
    rev = torch.zeros_like(idx)
    for b in range(bits):
        rev |= ((idx >> b) & 1) << (bits - 1 - b)
    return -rev.float()
