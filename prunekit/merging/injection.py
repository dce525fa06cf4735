"""Per-token features an LLM adds to its hidden states after its first decoder layers (Qwen3-VL's DeepStack).

The model receives them as one ``[B, L]`` row mask plus one ``[n_rows, D]`` tensor per level and adds
level ``i`` to the marked rows after decoder layer ``i``. Pruning must give the levels the same keep
and the same merges as the main features. The functions here are pure (no hooks), so other runtimes
(e.g. a vLLM plugin) can reuse them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from prunekit.types import MergeMap


@dataclass
class LayerInjection:
    """What the LM would add: level ``i`` (``levels[i] [rows.sum(), D]``) goes to ``rows [B, L]`` after layer ``i``."""

    rows: torch.Tensor
    levels: list[torch.Tensor]

    def per_sample(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """For each sample: (sequence indices of its marked rows ``[m]``, its levels ``[n_levels, m, D]``)."""
        out, offset = [], 0
        stacked = torch.stack(self.levels)  # [n_levels, n_rows, D]
        for row in self.rows:
            index = torch.nonzero(row).flatten()
            out.append((index, stacked[:, offset:offset + index.numel()]))
            offset += index.numel()
        return out


def fold_levels(levels: torch.Tensor, rows: torch.Tensor, merge: MergeMap) -> torch.Tensor:
    """``levels [n_levels, m, D]`` with ``merge`` applied to the rows ``rows [n_live]`` of every level.

    ``merge`` indexes the live tokens, ``rows`` says which level row each live token is. A merged target
    becomes the mean of its group in every level, exactly as in the main features.
    """
    if len(merge) == 0:
        return levels
    levels = levels.clone()
    for level in levels:  # [m, D]
        level[rows] = merge.apply(level[rows])
    return levels


def add_level(hidden: torch.Tensor, hidden_rows: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """``hidden [L, D]`` with ``level [k, D]`` added at ``hidden_rows [k]`` (as the model's own add: one sum)."""
    hidden[hidden_rows] = hidden[hidden_rows] + level.to(hidden.dtype)
    return hidden
