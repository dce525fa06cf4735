"""Analytic prefill FLOPs, FastV's formula: per layer ``4 n d^2 + 2 n^2 d + 2 n d m``.

Linear-attention layers (Qwen3.5's Gated DeltaNet) have no ``n^2`` term: they cost ``4 n d^2 + 2 n d m``
plus ``4 n s`` for the recurrent state update, ``s`` being the state size (value heads x key dim x value dim).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


def flops(tokens_per_layer: Sequence[int], hidden_size: int, intermediate_size: int,
          linear_layers: Collection[int] = (), state_size: int = 0) -> float:
    """Prefill FLOPs of a decoder whose layer ``l`` sees ``tokens_per_layer[l]`` tokens (text included).

    ``n`` tokens, hidden size ``d``, FFN size ``m``: attention projections ``4 n d^2``, attention
    ``2 n^2 d``, FFN ``2 n d m`` (Chen et al., FastV, ECCV 2024, Eq. 5). Layers in ``linear_layers`` replace
    the attention term with ``4 n state_size`` (linear attention: a fixed-size state, cost linear in ``n``).
    """
    d, m = hidden_size, intermediate_size
    total = 0
    for layer, n in enumerate(tokens_per_layer):
        mixing = 4 * n * state_size if layer in linear_layers else 2 * n * n * d
        total += 4 * n * d * d + mixing + 2 * n * d * m
    return float(total)


def flops_ratio(visual_per_layer: Sequence[int], n_visual: int, n_text: int, hidden_size: int,
                intermediate_size: int, linear_layers: Collection[int] = (), state_size: int = 0) -> float:
    """FLOPs of the pruned prefill over the unpruned one (text tokens counted in both)."""
    shape = (hidden_size, intermediate_size, linear_layers, state_size)
    pruned = flops([v + n_text for v in visual_per_layer], *shape)
    full = flops([n_visual + n_text] * len(visual_per_layer), *shape)
    return pruned / full
