"""Analytic prefill FLOPs, FastV's formula: per layer ``4 n d^2 + 2 n^2 d + 2 n d m``."""

from __future__ import annotations

from collections.abc import Sequence


def flops(tokens_per_layer: Sequence[int], hidden_size: int, intermediate_size: int) -> float:
    """Prefill FLOPs of a decoder whose layer ``l`` sees ``tokens_per_layer[l]`` tokens (text included).

    ``n`` tokens, hidden size ``d``, FFN size ``m``: attention projections ``4 n d^2``, attention
    ``2 n^2 d``, FFN ``2 n d m`` (Chen et al., FastV, ECCV 2024, Eq. 5).
    """
    d, m = hidden_size, intermediate_size
    return float(sum(4 * n * d * d + 2 * n * n * d + 2 * n * d * m for n in tokens_per_layer))


def flops_ratio(visual_per_layer: Sequence[int], n_visual: int, n_text: int, hidden_size: int,
                intermediate_size: int) -> float:
    """FLOPs of the pruned prefill over the unpruned one (text tokens counted in both)."""
    pruned = flops([v + n_text for v in visual_per_layer], hidden_size, intermediate_size)
    full = flops([n_visual + n_text] * len(visual_per_layer), hidden_size, intermediate_size)
    return pruned / full
