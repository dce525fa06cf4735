"""VidCom2: frame-uniqueness budgets and distinct-token selection before the LLM."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from prunekit.interfaces import BudgetAllocator, FrameSelector, StageConfig
from prunekit.ops.apportion import apportion
from prunekit.ops.nosync import index_add
from prunekit.ops.ranking import top_indices
from prunekit.ops.similarity import l2_normalize
from prunekit.strategies.preset_fields import PER_FRAME, PRE_LLM, before_llm, declare_preset
from prunekit.strategies.registration import register_stage
from prunekit.types import Segments, SelectionContext

VIDCOM2_CITATION = (
    "Liu et al., Video Compression Commander: Plug-and-Play Inference Acceleration for Video Large "
    "Language Models (VidCom2), EMNLP 2025.")

declare_preset(
    "vidcom2",
    "VidCom2 (EMNLP 2025): frame budgets by uniqueness, most distinct tokens per frame (25%).",
    description=(
        f"VidCom2, {PRE_LLM} (default R_RATIO 25%): one segment per frame, budgets weighted by "
        "frame uniqueness, then the tokens least similar to the video and frame centres."),
    citation=VIDCOM2_CITATION, segmenter=PER_FRAME, allocator={"name": "uniqueness"},
    selector={"name": "distinct"}, scheduler=before_llm(0.25))

ALPHAS = (0.125, 0.25, 0.5, 1.0, 2.0)


def low_variance_channels(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """``x [N, D]`` restricted to the ``int(D * ratio)`` channels of lowest variance over the tokens."""
    var = x.float().var(0, unbiased=False)
    return x[:, top_indices(-var, int(x.shape[-1] * ratio))]


def gaussian_similarity(x: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """Multi-scale Gaussian similarity ``sum_a exp(-|x - c|^2 / 2a)`` over VidCom2's five scales."""
    dist = (x - center).square().sum(-1)
    return sum(torch.exp(-dist / (2 * a)) for a in ALPHAS)


def vidcom2_scores(tokens: torch.Tensor, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Similarity of every token ``tokens [N, D]`` to the video centre and to its frame's centre
    (VidCom2: low-variance half of the channels, L2-normalised tokens)."""
    x = l2_normalize(low_variance_channels(tokens))  # [N, D']
    frames, inverse = torch.unique(frame, return_inverse=True)
    sums = index_add(torch.zeros(frames.numel(), x.shape[-1], device=x.device), inverse, x)
    centers = sums / torch.bincount(inverse, minlength=frames.numel())[:, None]
    return gaussian_similarity(x, x.mean(0)), gaussian_similarity(x, centers[inverse])


@register_stage
class UniquenessAllocator(BudgetAllocator):
    """VidCom2's frame budgets (Liu et al., EMNLP 2025): frame uniqueness ``u = -mean`` of its tokens'
    similarity to the video centre; segment ``i`` keeps share ``q (1 + softmax(u / T)_i - 1 / S)``
    of its tokens (``q`` = the stage's keep ratio, ``T`` = ``temperature``, capped at all tokens),
    then largest-remainder apportionment makes the total exact (VidCom2 rounds per frame). Use it
    with one frame per segment (``fixed_length`` with 1 frame), as VidCom2 does."""

    class Config(StageConfig):
        name: Literal["uniqueness"] = "uniqueness"
        temperature: float = Field(0.01, gt=0.0, description="softmax temperature T of the frame uniqueness")

    def summarize(self, features: torch.Tensor, segments: Segments) -> torch.Tensor:
        """``[S, 1]`` uniqueness of each segment (mean over its frames), from the input embeddings."""
        num_frames, per_frame = features.shape[:2]
        frame = torch.arange(num_frames, device=features.device).repeat_interleave(per_frame)
        video_sim, _ = vidcom2_scores(features.reshape(num_frames * per_frame, -1), frame)
        unique = -video_sim.view(num_frames, per_frame).mean(1)  # [F]
        seg = segments.segment_of_frame().to(features.device)
        out = index_add(torch.zeros(len(segments), device=features.device), seg, unique)
        return (out / torch.bincount(seg, minlength=len(segments)))[:, None]

    def allocate(self, live_sizes: list[int], total_keep: int,
                 segment_features: torch.Tensor) -> list[int]:
        u = segment_features[:, 0].float()
        probs = torch.softmax((u - u.max()) / self.config.temperature, 0)
        q = total_keep / max(1, sum(live_sizes))
        scales = (q * (1 + probs - probs.mean())).clamp(max=1.0).tolist()
        weights = [s * n for s, n in zip(scales, live_sizes, strict=True)]
        return apportion(weights, total_keep, [min(1, n) for n in live_sizes], live_sizes)


@register_stage
class DistinctTokenSelector(FrameSelector):
    """VidCom2's token choice (Liu et al., EMNLP 2025): keep the tokens with the *lowest* sum of
    similarity to the video centre and to their frame's centre (the most distinct ones). The video
    centre and the low-variance channels are computed over all segments passed together (the whole
    video before the LLM)."""

    class Config(StageConfig):
        name: Literal["distinct"] = "distinct"

    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        video_sim, frame_sim = vidcom2_scores(features, context.frame.to(features.device))
        return top_indices(-(video_sim + frame_sim), keep)

    def select_segments(self, features: list[torch.Tensor], keeps: list[int],
                        contexts: list[SelectionContext]) -> list[torch.Tensor]:
        """All segments scored together: the video centre and channels cover every segment."""
        if len(features) < 2:
            return [self.select(f, k, c) for f, k, c in zip(features, keeps, contexts, strict=True)]
        device = features[0].device
        frame = torch.cat([c.frame.to(device) for c in contexts])
        video_sim, frame_sim = vidcom2_scores(torch.cat(features), frame)
        score = (video_sim + frame_sim).split([f.shape[0] for f in features])
        return [top_indices(-s, k) for s, k in zip(score, keeps, strict=True)]
