"""FastVID: dynamic temporal segmentation and density-based spatio-temporal pruning."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from prunekit.interfaces import Segmenter, StageConfig, TokenMerger
from prunekit.merging.plan import Group, MergePlan, quotas, scores_or_spread
from prunekit.ops.apportion import apportion
from prunekit.ops.cluster import density_peaks, most_similar
from prunekit.ops.ranking import top_indices
from prunekit.ops.similarity import cosine
from prunekit.strategies.preset_fields import PRE_LLM, before_llm, declare_preset
from prunekit.strategies.registration import register_stage
from prunekit.types import MergeMap, Segments, VideoLayout

FASTVID_CITATION = (
    "Shen et al., FastVID: Dynamic Density Pruning for Fast Video Large Language Models, NeurIPS 2025.")

declare_preset(
    "fastvid",
    "FastVID (NeurIPS 2025): DySeg segments, salient + density context tokens, anchor merge (10%).",
    description=(
        f"FastVID, {PRE_LLM} (default retention 10%): DySeg (c=8, tau=0.9), per frame 60% salient "
        "tokens by layer-0 attention and 40% density-peak context tokens on anchor frames (every "
        "4th from the segment end) into which the segment's other tokens merge."),
    citation=FASTVID_CITATION, segmenter={"name": "dyseg"}, merger={"name": "fastvid"},
    selector={"name": "top_relevance"}, scheduler=before_llm(0.10))


@register_stage
class DySegSegmenter(Segmenter):
    """FastVID's DySeg (Shen et al., NeurIPS 2025): cut between frames f and f+1 at the ``c - 1``
    lowest adjacent-frame similarities and wherever the similarity is below ``tau``.

    The frame feature is the mean of the frame's LLM input embeddings (FastVID uses the SigLIP
    attention-pooling head's output, which prunekit's runtime does not expose).
    """

    class Config(StageConfig):
        name: Literal["dyseg"] = "dyseg"
        c: int = Field(8, ge=1, description="at most c segments: cuts at the c - 1 lowest adjacent-frame similarities")
        tau: float = Field(0.9, ge=-1.0, le=1.0,
            description="also cut wherever adjacent frames are less similar than this")

    def segment(self, features: torch.Tensor, layout: VideoLayout) -> Segments:
        frames = features.float().mean(1)  # [F, D]
        sim = cosine(frames[:-1], frames[1:])  # [F - 1]
        lowest = top_indices(-sim, min(self.config.c - 1, sim.numel()))
        cuts = torch.cat([lowest, torch.nonzero(sim < self.config.tau).flatten()])
        return Segments((0, *sorted({int(c) + 1 for c in cuts})), layout.num_frames)


@register_stage
class FastVIDMerger(TokenMerger):
    """FastVID's STPrune + DTM (Shen et al., NeurIPS 2025), per segment.

    Every frame keeps an equal share ``r`` of the segment's quota: ``r - int(r * d)`` *salient*
    tokens (highest relevance) and the rest as *context*. Context budget goes only to anchor frames,
    every ``p``-th frame counted back from the segment's end; an anchor keeps its tokens with the
    largest DPC-KNN density-peak score (k = ``knn``) among its non-salient tokens; every other
    non-salient token of the segment is merged into its most cosine-similar context token.

    Adaptations: relevance is layer-0 last-query attention (FastVID uses the SigLIP pooling head's
    attention); a merged token is the plain mean of its group (FastVID weights the anchor by
    ``max(1 / (n + 1), beta)``, beta = 0.6, and lets a dropped token join one group per anchor
    frame); quotas are apportioned so the total is exact (FastVID floors per frame and per anchor).
    """

    class Config(StageConfig):
        name: Literal["fastvid"] = "fastvid"
        d: float = Field(0.4, ge=0.0, le=1.0,
            description="share of each frame's quota that goes to context tokens (the rest is salient)")
        p: int = Field(4, ge=1, description="every p-th frame, counted back from the segment's end, is an anchor")
        knn: int = Field(4, ge=1, description="neighbours k of the density-peak score of an anchor's tokens")

    needs_relevance = True

    def merge(self, features: torch.Tensor, layout: VideoLayout, segments: Segments, keep: int,
              relevance: torch.Tensor | None = None) -> tuple[torch.Tensor, MergeMap]:
        per_frame = layout.tokens_per_frame
        flat = features.reshape(-1, features.shape[-1])  # [N, D]
        sizes = [(b - a) * per_frame for a, b in segments.bounds]
        plan = MergePlan()
        for (first, end), quota in zip(segments.bounds, quotas(sizes, keep), strict=True):
            frames = list(range(first, end))
            self._segment(flat, frames, per_frame, quota, relevance, plan)
        return plan.result()

    def _segment(self, flat: torch.Tensor, frames: list[int], per_frame: int, quota: int,
                 relevance: torch.Tensor | None, plan: MergePlan) -> None:
        m, cfg = len(frames), self.config
        retain = apportion([1.0] * m, quota, [0] * m, [per_frame] * m)
        salient = [r - int(r * cfg.d) for r in retain]
        anchor = [(m - 1 - j) % cfg.p == 0 for j in range(m)]
        weights = [1.0 if a else 1e-9 for a in anchor]  # non-anchors only take what anchors cannot
        context = apportion(weights, quota - sum(salient), [0] * m, [per_frame - s for s in salient])
        rest: list[torch.Tensor] = []
        targets = [torch.zeros(0, dtype=torch.long, device=flat.device)]
        for f, n_salient, n_context in zip(frames, salient, context, strict=True):
            ids = torch.arange(f * per_frame, (f + 1) * per_frame, device=flat.device)
            kept = top_indices(scores_or_spread(relevance, ids), n_salient)
            plan.add(Group.tokens(ids, flat), kept)
            other = torch.ones(per_frame, dtype=torch.bool, device=flat.device)
            other.index_fill_(0, kept, False)
            other = ids[other]
            if n_context:
                score, _ = density_peaks(flat[other], cfg.knn)
                targets.append(other[top_indices(score, n_context)])
            rest.append(other)
        group = Group.tokens(torch.cat(rest), flat)  # the segment's non-salient tokens
        target_ids = torch.cat(targets)
        local = torch.nonzero(torch.isin(group.rep, target_ids)).flatten()
        if local.numel():
            plan.add(group, local, most_similar(group.feats, local))
