"""The pre-LLM keep: one pure function from a video's merged embeddings to the tokens that survive.

Serving engines (vLLM) see only the vision tower's output and the video grid, never the prompt or
the LLM, so only pipelines whose every stage acts before the LLM without reading last-query
attention can run there. `check_pre_llm` says whether a pipeline qualifies; `keep_before_llm`
runs its layer-0 stage at an exact count through the same `Pipeline.start` / `Pipeline.step` calls
the Hugging Face runtime makes, so both engines keep the same tokens for the same embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from prunekit.errors import BudgetError, ConfigError, InvalidInputError
from prunekit.pipeline import Pipeline
from prunekit.types import MergeMap, Stage, VideoLayout

__all__ = ["PreLLMKeep", "check_pre_llm", "keep_before_llm", "video_layout"]


@dataclass(frozen=True)
class PreLLMKeep:
    """What survives: sorted visual ids ``keep`` of the raster (t, h, w) order, after ``merge``."""

    keep: torch.Tensor  # [k] sorted, unique
    merge: MergeMap

    def apply(self, features: torch.Tensor) -> torch.Tensor:
        """``features [N, D]`` (the merged embeddings or one DeepStack level) -> ``[k, D]`` kept rows."""
        return self.merge.apply(features)[self.keep.to(features.device)]


def check_pre_llm(pipeline: Pipeline, num_layers: int = 1_000) -> None:
    """Raise `ConfigError` unless every stage of ``pipeline`` acts before the LLM on embeddings alone.

    A stage inside the LLM needs the LLM's hidden states, and a selector or merger that reads
    last-query attention needs the prompt's text tokens; neither exists where an engine hands over
    the vision tower's output.
    """
    name = pipeline.config.name
    if pipeline.needs_relevance:
        raise ConfigError(
            f"strategy {name!r} ranks tokens by the last query token's attention, which needs the prompt and "
            "the LLM's first layer; only stages that read the video embeddings alone can run before the LLM "
            "in a serving engine. Choose a strategy without relevance (e.g. divprune, dycoke, vidcom2, uniform).")
    try:
        stages = pipeline.scheduler.plan(10_000, num_layers, pipeline.budget, min_keep=1)
    except BudgetError as exc:
        raise ConfigError(f"strategy {name!r} cannot be planned before the LLM: {exc}") from None
    inside = sorted({s.layer for s in stages if s.layer > 0})
    if inside:
        raise ConfigError(
            f"strategy {name!r} prunes inside the LLM (at layers {inside}); a serving engine can run only "
            "stages before the LLM. Choose a strategy whose scheduler prunes at layer 0 only.")


def video_layout(num_frames: int, grid: tuple[int, int]) -> VideoLayout:
    """Layout of one video's merged tokens stored back to back in (t, h, w) raster order."""
    h, w = grid
    return VideoLayout.contiguous(0, num_frames, (h, w), num_frames * h * w)


def keep_before_llm(pipeline: Pipeline, features: torch.Tensor, grid: tuple[int, int], keep: int) -> PreLLMKeep:
    """Run ``pipeline``'s pre-LLM stage on one video, keeping exactly ``keep`` tokens.

    Args:
        pipeline: a pipeline that passes `check_pre_llm`.
        features: ``[N, D]`` merged embeddings in (t, h, w) raster order, ``N = t * h * w``.
        grid: ``(h, w)`` merged tokens per frame.
        keep: exact number of tokens to keep (a serving engine fixes it before the features exist).

    Returns:
        A `PreLLMKeep`; its ``keep`` has exactly ``keep`` sorted ids (all ids when ``keep == N``).
    """
    h, w = grid
    if features.ndim != 2 or h * w <= 0 or features.shape[0] % (h * w):
        raise InvalidInputError(
            f"features must be [t * {h} * {w}, D] for a {h}x{w} token grid, got {tuple(features.shape)}.")
    n = features.shape[0]
    if not 0 < keep <= n:
        raise BudgetError(f"keep must be in [1, {n}] for a video of {n} tokens, got {keep}.")
    layout = video_layout(n // (h * w), grid)
    plan = pipeline.start(features.view(layout.num_frames, h * w, -1), layout, num_layers=1)
    if keep == n:
        return PreLLMKeep(torch.arange(n, device=features.device), MergeMap.empty())
    if keep < len(plan.segments):
        raise BudgetError(
            f"{len(plan.segments)} segments must each keep a token but only {keep} of {n} are kept; ask for "
            "a higher retention or a strategy with fewer segments.")
    plan.stages = [Stage(0, keep)]  # the engine's count, not the scheduler's fraction
    result = pipeline.step(plan, 0, features)
    plan.verify()
    return PreLLMKeep(result.keep, result.merge)


def apply_to_levels(kept: PreLLMKeep, levels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The same keep (and merge) on every level (Qwen3-VL's DeepStack features, each ``[N, D_l]``)."""
    return [kept.apply(level) for level in levels]
