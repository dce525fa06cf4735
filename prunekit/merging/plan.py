"""Building blocks shared by the zoo's mergers: token groups, per-group quotas, merge plans.

A *unit* is one candidate token of a merger: a single visual token, or a static run (the same grid
position over several frames, averaged over time) represented by its first-frame token. A `Group`
holds units that compete for one quota (e.g. one frame's dynamic tokens). Reducers pick the kept
units of a group and assign every other unit to a kept one (merged) or to none (dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from prunekit.ops.apportion import apportion
from prunekit.ops.nosync import true_indices
from prunekit.ops.ranking import spread_scores
from prunekit.types import MergeMap


@dataclass(frozen=True)
class Group:
    """Units competing for one quota.

    Attributes:
        rep: ``[u]`` visual id that represents each unit (kept if the unit is kept).
        members: ``[u, w]`` visual ids of each unit (column 0 is ``rep``).
        feats: ``[u, D]`` mean feature of each unit's members.
    """

    rep: torch.Tensor
    members: torch.Tensor
    feats: torch.Tensor

    @classmethod
    def tokens(cls, ids: torch.Tensor, flat: torch.Tensor) -> Group:
        """Single-token units for visual ``ids`` with features taken from ``flat [N, D]``."""
        return cls(ids, ids[:, None], flat[ids].float())

    def __len__(self) -> int:
        return int(self.rep.numel())


@dataclass
class MergePlan:
    """Accumulates kept ids and (source -> target) merges; `result` returns what a merger returns."""

    kept: list[torch.Tensor] = field(default_factory=list)
    source: list[torch.Tensor] = field(default_factory=list)
    target: list[torch.Tensor] = field(default_factory=list)

    def add(self, group: Group, kept: torch.Tensor, assign: torch.Tensor | None = None,
            all_assigned: bool = False) -> None:
        """Keep units ``kept`` (distinct indices into ``group``); fold each other unit ``u`` with
        ``assign[u] >= 0`` into kept unit ``kept[assign[u]]``; drop units with ``assign[u] < 0``.

        ``all_assigned``: the caller guarantees ``assign >= 0`` everywhere, so the number of merged
        units is known on the host and nothing is read back from the device.
        """
        rep = group.rep[kept]
        self.kept.append(rep)
        self._fold(group.members[kept, 1:], rep)
        if assign is None:
            return
        other = torch.ones(len(group), dtype=torch.bool, device=group.rep.device)
        other.index_fill_(0, kept, False)
        if all_assigned:
            other = true_indices(other, len(group) - kept.numel())  # the same ascending rows as other.nonzero()
        else:
            other &= assign >= 0
        self._fold(group.members[other], rep[assign[other]])

    def _fold(self, members: torch.Tensor, targets: torch.Tensor) -> None:  # members [u, w], targets [u]
        if members.numel():
            self.source.append(members.reshape(-1))
            self.target.append(targets[:, None].expand_as(members).reshape(-1))

    def result(self) -> tuple[torch.Tensor, MergeMap]:
        """Sorted kept visual ids and the merge map."""
        empty = torch.zeros(0, dtype=torch.long)
        kept = torch.sort(torch.cat(self.kept) if self.kept else empty).values
        if not self.source:
            return kept, MergeMap.empty()
        return kept, MergeMap(source=torch.cat(self.source), target=torch.cat(self.target))


def quotas(sizes: list[int], total: int, at_least_one: bool = True) -> list[int]:
    """Counts proportional to ``sizes`` summing to ``total`` (largest remainder), each ``<= size``
    and, with ``at_least_one``, ``>= 1`` for every non-empty entry."""
    lower = [min(1, s) if at_least_one else 0 for s in sizes]
    return apportion(sizes, total, lower, sizes)


def segment_ids(segments_bounds: list[tuple[int, int]], per_frame: int,
                device: torch.device) -> list[torch.Tensor]:
    """Visual ids of every segment ``[(first, end), ...]`` (frame-major)."""
    return [torch.arange(a * per_frame, b * per_frame, device=device) for a, b in segments_bounds]


def scores_or_spread(relevance: torch.Tensor | None, ids: torch.Tensor) -> torch.Tensor:
    """Relevance of visual ``ids``; without relevance an evenly spread ranking over ``ids``."""
    if relevance is None:
        return spread_scores(ids.numel(), device=ids.device)
    return relevance.to(ids.device)[ids].float()
