"""Static/dynamic split of a segment, shared by PruneVid and HoliTom.

A grid position is *static* in a multi-frame segment when its per-position similarity score
(method-specific) exceeds ``tau``; its tokens become one unit averaged over time and represented
by the segment's first frame. The other tokens stay *dynamic*, one group per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from prunekit.merging.plan import Group, MergePlan
from prunekit.ops.cluster import dpc_knn


@dataclass(frozen=True)
class SegmentUnits:
    """One segment after the temporal merge: its static group and one dynamic group per frame."""

    static: Group
    dynamic: list[Group]

    @property
    def groups(self) -> list[Group]:
        """The static group first, then the frames' dynamic groups."""
        return [self.static, *self.dynamic]

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups)


def limit_static(scores: list[torch.Tensor], widths: list[int], tau: float,
                 max_removed: int) -> list[torch.Tensor]:
    """Static masks ``[P]`` per segment: positions scoring above ``tau``, the highest scores first,
    as long as the tokens removed by the temporal merge (``width - 1`` per position) fit
    ``max_removed`` (so that at least the stage's count survives)."""
    flat = torch.cat(scores)  # [S * P]
    cost = torch.cat([torch.full_like(s, w - 1) for s, w in zip(scores, widths, strict=True)])
    cand = torch.nonzero(flat > tau).flatten()
    order = cand[torch.argsort(-flat[cand], stable=True)]
    take = order[torch.cumsum(cost[order], 0) <= max_removed]
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask.index_fill_(0, take, True)
    return list(mask.split([s.numel() for s in scores]))


def split_segments(flat: torch.Tensor, per_frame: int, bounds: list[tuple[int, int]],
                   static: list[torch.Tensor]) -> list[SegmentUnits]:
    """Units of every segment given its static mask ``[P]`` (``flat [N, D]`` token features)."""
    out = []
    for (first, end), mask in zip(bounds, static, strict=True):
        ids = torch.arange(first * per_frame, end * per_frame, device=flat.device).view(end - first, per_frame)
        runs = ids[:, mask].T  # [n_static, W]: column 0 is the first frame
        static_group = Group(runs[:, 0], runs, flat[runs].float().mean(1))
        dynamic = [Group.tokens(row[~mask], flat) for row in ids]
        out.append(SegmentUnits(static_group, dynamic))
    return out


def cluster_group(group: Group, quota: int, knn: int, plan: MergePlan) -> None:
    """Keep ``quota`` DPC-KNN centres of ``group`` and merge every other unit into its nearest one."""
    if len(group) == 0 or quota <= 0:
        return
    centers, assign = dpc_knn(group.feats, quota, knn)
    plan.add(group, centers, assign)
