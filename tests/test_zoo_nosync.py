"""Pre-LLM mergers that read nothing back from the device, with the same result as before."""

from __future__ import annotations

import pytest
import torch

from prunekit.merging.plan import Group, MergePlan, quotas, scores_or_spread, segment_ids
from prunekit.ops.cluster import most_similar
from prunekit.strategies.visionzip import VisionZipMerger, contextual_targets
from prunekit.types import Segments, VideoLayout
from tests.test_sync_free import ReadBackCounter


def visionzip_with_boolean_masks(merger: VisionZipMerger, features: torch.Tensor, layout: VideoLayout,
                                 segments: Segments, keep: int, relevance: torch.Tensor):  # noqa: ANN201
    """VisionZip's merge as written before issue 24 (`nonzero` and boolean masks): the reference."""
    flat = features.reshape(-1, features.shape[-1])
    plan = MergePlan()
    groups = segment_ids(segments.bounds, layout.tokens_per_frame, flat.device)
    for ids, quota in zip(groups, quotas([g.numel() for g in groups], keep), strict=True):
        group, score = Group.tokens(ids, flat), scores_or_spread(relevance, ids)
        dominant_num = int(quota * merger.config.dominant_ratio)
        dominant = torch.sort(torch.argsort(-score.float(), stable=True)[:dominant_num]).values
        rest = torch.ones(len(group), dtype=torch.bool)
        rest[dominant] = False
        rest = torch.nonzero(rest).flatten()
        targets = contextual_targets(quota - dominant_num, rest.numel(), flat.device)
        plan.kept.append(group.rep[dominant])
        if targets.numel():
            sub = Group(group.rep[rest], group.members[rest], group.feats[rest])
            assign = most_similar(sub.feats, targets)
            rep = sub.rep[targets]
            plan.kept.append(rep)
            other = torch.ones(len(sub), dtype=torch.bool)
            other[targets] = False
            plan.source.append(sub.members[other].reshape(-1))
            plan.target.append(rep[assign[other]])
    return plan.result()


@pytest.mark.parametrize("keep", [5, 16, 40])
def test_visionzip_reads_nothing_back_and_merges_as_before(keep: int) -> None:
    gen = torch.Generator().manual_seed(keep)
    layout = VideoLayout.contiguous(offset=3, num_frames=4, grid=(4, 4), seq_len=70)
    features = torch.randn(4, 16, 8, generator=gen)
    relevance = torch.rand(64, generator=gen)
    segments = Segments((0, 1, 2, 3), 4)
    merger = VisionZipMerger()
    counter = ReadBackCounter()
    with counter:
        kept, merge = merger.merge(features, layout, segments, keep, relevance=relevance)
    assert counter.seen == []
    ref_kept, ref_merge = visionzip_with_boolean_masks(merger, features, layout, segments, keep, relevance)
    assert kept.numel() == keep and torch.equal(kept, ref_kept)
    assert torch.equal(merge.source, ref_merge.source) and torch.equal(merge.target, ref_merge.target)
