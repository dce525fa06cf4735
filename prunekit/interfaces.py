"""The abstract stages that strategies compose. Each stage is configured by a frozen pydantic model.

Stages are pure functions of tensors that return indices or maps, never gathered tensors; the
runtime (``prunekit.runtime``) owns hooks, positions and caches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from prunekit.ops.nosync import host_to_device, index_add, to_device
from prunekit.types import MergeMap, Segments, SelectionContext, Stage, VideoLayout

if TYPE_CHECKING:
    from prunekit.budget import Budget

__all__ = [
    "StageConfig",
    "Component",
    "Segmenter",
    "TokenMerger",
    "BudgetAllocator",
    "FrameSelector",
    "LayerScheduler",
    "EncoderStageConfig",
    "EncoderStage",
]


class StageConfig(BaseModel):
    """Base of every stage config: ``name`` picks the registered implementation."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str


class Component(ABC):
    """A configurable stage. Subclasses set ``kind`` (via their interface) and a ``Config`` class."""

    kind: ClassVar[str]
    Config: ClassVar[type[StageConfig]]

    def __init__(self, config: StageConfig | None = None, **overrides: object) -> None:
        if config is None:
            config = self.Config(**overrides)
        elif overrides:
            config = config.model_copy(update=overrides)
        self.config = config

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items() if k != "name")
        return f"{type(self).__name__}({fields})"


class Segmenter(Component):
    """Splits a video's frames into contiguous temporal segments."""

    kind: ClassVar[str] = "segmenter"

    @abstractmethod
    def segment(self, features: torch.Tensor, layout: VideoLayout) -> Segments:
        """Segment ``features [F, P, D]`` (visual token features per frame)."""


class TokenMerger(Component):
    """Folds redundant tokens into kept ones before the LLM (layer-0 stage only)."""

    kind: ClassVar[str] = "merger"
    needs_relevance: bool = False
    """True if `merge` reads ``relevance`` (the runtime then computes layer-0 last-query attention)."""

    def plan_stages(self, features: torch.Tensor, segments: Segments, num_layers: int,
                    budget: Budget | None, min_keep: int = 1) -> list[Stage] | None:
        """Stages that depend on the data (e.g. FrameFusion prunes where its merging stops), planned
        from the LLM input ``features [F, P, D]``; None (the default) lets the scheduler plan."""
        return None

    @abstractmethod
    def merge(self, features: torch.Tensor, layout: VideoLayout, segments: Segments,
              keep: int, relevance: torch.Tensor | None = None) -> tuple[torch.Tensor, MergeMap]:
        """Reduce ``features [F, P, D]`` to ``keep`` visual tokens by merging.

        Returns the sorted kept visual ids and the merge map (both in visual-id space). A merger
        that cannot reach ``keep`` (e.g. it never merges across segments) may keep more; the
        pipeline then lets the frame selector remove the rest, so counts stay exact. Mergers that
        set `needs_relevance` receive ``relevance [F * P]`` (min-max normalised last-query
        attention at the LLM input, None when unavailable); others are called without it.
        """


class BudgetAllocator(Component):
    """Splits a stage's keep count across segments."""

    kind: ClassVar[str] = "allocator"

    def summarize(self, features: torch.Tensor, segments: Segments) -> torch.Tensor:
        """What `allocate` receives as ``segment_features``, computed once per sample from the LLM
        input embeddings ``features [F, P, D]``. Default: each segment's mean feature ``[S, D]``."""
        seg_of_frame = host_to_device(segments.segment_of_frame(), features.device)
        frame_means = features.float().mean(1)  # [F, D]
        out = torch.zeros(len(segments), features.shape[-1], device=features.device)
        index_add(out, seg_of_frame, frame_means)
        lengths = to_device([end - start for start, end in segments.bounds], features.device, torch.float32)
        return out / lengths[:, None]

    @abstractmethod
    def allocate(self, live_sizes: list[int], total_keep: int,
                 segment_features: torch.Tensor) -> list[int]:
        """Per-segment keep counts summing exactly to ``total_keep``, each in ``[1, live_sizes[i]]``.

        ``segment_features`` is what `summarize` returned: by default each segment's mean input
        feature ``[S, D]`` (for similarity-aware rules).
        """


class FrameSelector(Component):
    """Chooses which tokens of one segment (all its frames together) survive."""

    kind: ClassVar[str] = "frame_selector"
    needs_relevance: bool = False
    """True if `select` reads ``context.relevance`` (the runtime then computes last-query attention)."""
    scores_previous_layer: bool = False
    """True if a stage at layer K > 0 is ranked by layer K-1's attention (FastV) instead of layer K's."""

    @abstractmethod
    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        """Return exactly ``keep`` distinct indices into ``features [n, D]``, as a sorted 1-D integer tensor."""

    def select_segments(self, features: list[torch.Tensor], keeps: list[int],
                        contexts: list[SelectionContext]) -> list[torch.Tensor]:
        """Select in several segments at once; override to batch (the default loops)."""
        return [self.select(f, k, c) for f, k, c in zip(features, keeps, contexts)]


class LayerScheduler(Component):
    """Decides at which LLM layers pruning happens and how many visual tokens each stage keeps."""

    kind: ClassVar[str] = "layer_scheduler"

    @abstractmethod
    def plan(self, n_visual: int, num_layers: int, budget: Budget | None,
             min_keep: int = 1) -> list[Stage]:
        """Exact stages for ``n_visual`` tokens in a ``num_layers``-deep LLM.

        With a budget, the realized retention (in the budget's mode) is within ``1 / n_visual``
        of ``budget.retain``; without one, the scheduler's own published fractions apply.
        """



class EncoderStageConfig(StageConfig):
    """Base of encoder-stage configs: ``layer`` is the vision-tower layer whose input is reduced."""

    layer: int = Field(2, ge=0, description="vision-tower layer whose input is reduced (0 = the patch embeddings)")
    reference_depth: int | None = Field(
        None, ge=1, description="tower depth the layer was chosen for; it is scaled to the model's tower (>= 1)")


class EncoderStage(Component):
    """Reduces a video inside the vision tower: which frames continue past encoder ``layer``.

    The runtime calls `reduce` once per sample, at the input of vision-tower layer ``config.layer``,
    with the hidden states of all the sample's frames; later tower layers, the projector and the
    LLM see only the frames kept. Frames fold whole (a frame-level merge map), because the towers
    prunekit supports pool or newline-pad a full per-frame grid after the tower.
    """

    kind: ClassVar[str] = "encoder"
    Config: ClassVar[type[EncoderStageConfig]]

    @property
    def layer(self) -> int:
        """Vision-tower layer whose input this stage reduces, as configured (see `tower_layer`)."""
        return self.config.layer

    def tower_layer(self, depth: int) -> int:
        """The layer for a tower of ``depth`` layers: ``layer`` scaled by ``depth / reference_depth`` (at least 1)
        when a reference depth is set, else ``layer`` itself."""
        reference = self.config.reference_depth
        if reference is None or reference == depth or self.config.layer == 0:
            return self.config.layer
        return max(1, round(self.config.layer * depth / reference))

    @abstractmethod
    def reduce(self, hidden: torch.Tensor, min_frames: int) -> tuple[torch.Tensor, MergeMap]:
        """Frames that continue, and how the others fold into them.

        Args:
            hidden: ``[F, T, D]`` the tower's hidden states of one video's frames at ``layer``.
            min_frames: the fewest frames that may continue (the budget's first stage needs them).

        Returns:
            The sorted kept frame ids (at least ``min_frames``, at most F) and a `MergeMap` over
            frame ids: each kept target frame becomes the mean of itself and its source frames.
        """
