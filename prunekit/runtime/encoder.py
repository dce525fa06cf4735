"""The hooks that run a pipeline's encoder stage inside the vision tower.

Three instance-level hooks:

* around ``get_video_features`` of the model that owns the tower (an instance attribute wrapping the
  class's method, signature kept, because ``generate`` calls it before the first forward and picks its
  arguments by signature): arm for the tower call that encodes the videos (images go through the same
  tower and are left alone), with the videos' frame count;
* on tower layer ``j`` (pre): per video, ask the encoder stage which frames continue, fold the
  others into them and hand the layer the smaller batch, so layers ``j..`` run on fewer frames;
* on the tower (post): give every output back its ``videos * F`` rows (a dropped frame repeats the
  row of the frame it folded into), so the projector, LLaVA-OV's pooling and newline and the
  placeholder scatter run unchanged.

The LLM-side session then takes the per-video `FrameReduction`s and removes the dropped frames'
placeholder tokens before the LLM; kept tokens keep their original positions.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from prunekit.errors import ConfigError, UnsupportedModelError
from prunekit.model_adapter import ModelAdapter
from prunekit.pipeline import Pipeline
from prunekit.types import FrameReduction, VideoLayout

_MISSING = object()


class EncoderHooks:
    """Owns the vision-tower hooks of one `prunekit.apply` whose pipeline has an encoder stage."""

    def __init__(self, model: nn.Module, adapter: ModelAdapter, pipeline: Pipeline, num_layers: int) -> None:
        self.model, self.pipeline, self.num_layers = model, pipeline, num_layers
        self.access = adapter.vision_tower()
        depth = len(self.access.layers)
        layer = self.layer = pipeline.encoder.tower_layer(depth)
        if layer >= depth or layer > self.access.feature_index:
            raise ConfigError(
                f"encoder stage {pipeline.encoder.config.name!r} acts at vision-tower layer {layer}, but the tower has "
                f"{depth} layers and the projector reads hidden state {self.access.feature_index}; use a layer below "
                f"{min(depth, self.access.feature_index + 1)}.")
        self._frames = 0  # frames per video of the armed tower call (0: not armed)
        self._rows: torch.Tensor | None = None  # [videos * F] row of the reduced batch behind every frame
        self._reductions: list[FrameReduction | None] | None = None
        self._hooks: list[Any] = []
        self._previous: Any = _MISSING  # the owner's own instance attribute get_video_features, if it had one

    def install(self) -> None:
        """Wrap the owner's ``get_video_features`` and register the layer and tower hooks (instance level only)."""
        owner, tower = self.access.owner, self.access.tower
        self._previous = vars(owner).get("get_video_features", _MISSING)
        original = owner.get_video_features

        @functools.wraps(original)
        def get_video_features(pixel_values_videos: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            self._reductions, self._rows = None, None  # a new video batch: forget any earlier decision
            self._frames = pixel_values_videos.shape[1] if pixel_values_videos.ndim == 5 else 0
            try:
                return original(pixel_values_videos, *args, **kwargs)
            finally:
                self._frames = 0

        owner.get_video_features = get_video_features
        self._hooks += [
            self.access.layers[self.layer].register_forward_pre_hook(self._reduce, with_kwargs=True),
            tower.register_forward_hook(self._expand),
        ]

    def remove(self) -> None:
        """Unregister every hook, restore ``get_video_features`` and forget all state."""
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        owner = self.access.owner
        if "get_video_features" in vars(owner):
            del owner.get_video_features
        if self._previous is not _MISSING:
            owner.get_video_features = self._previous
        self._previous = _MISSING
        self._frames, self._rows, self._reductions = 0, None, None

    def take(self) -> list[FrameReduction | None] | None:
        """The latest video encoding's decision per video (None: the encoder stage did not run); clears it."""
        reductions, self._reductions = self._reductions, None
        return reductions

    # -- hooks ---------------------------------------------------------------------------------
    def _reduce(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        frames, self._frames = self._frames, 0
        if not frames:
            return None
        hidden = args[0] if args else kwargs["hidden_states"]  # [videos * F, T, D]
        mask = args[1] if len(args) > 1 else kwargs.get("attention_mask")
        if mask is not None:
            raise UnsupportedModelError("encoder-level stages need a vision tower without an attention mask "
                                        "(every frame a full image); this call passed one.")
        with torch.no_grad():
            per_video = hidden.split(frames)
            reductions = [self.pipeline.reduce_frames(h, self.access.tokens_per_frame, self.num_layers)
                          for h in per_video]
            self._reductions = reductions
            if all(r is None for r in reductions):
                return None
            parts, rows, offset = [], [], 0
            for h, reduction in zip(per_video, reductions):
                if reduction is None:
                    parts.append(h)
                    rows.append(torch.arange(frames) + offset)
                    offset += frames
                else:
                    parts.append(reduction.fold(h).to(h.dtype))
                    rows.append(reduction.row_of_frame() + offset)
                    offset += reduction.kept.numel()
            self._rows = torch.cat(rows).to(hidden.device)
            hidden = torch.cat(parts)
        if args:
            return (hidden, *args[1:]), kwargs
        kwargs["hidden_states"] = hidden
        return args, kwargs

    def _expand(self, module: nn.Module, args: tuple, output: Any) -> Any:
        rows, self._rows = self._rows, None
        if rows is None:
            return None
        full, reduced = rows.numel(), int(rows.max()) + 1

        def restore(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == reduced != full:
                return value.index_select(0, rows.to(value.device))
            if isinstance(value, tuple):
                return tuple(restore(v) for v in value)
            return value

        for key in list(output.keys()):
            output[key] = restore(output[key])
        return output


def reduce_layouts(layouts: list[VideoLayout | None], reductions: list[FrameReduction | None] | None,
                   frame_layout_tokens: bool = False
                   ) -> tuple[list[VideoLayout | None], list[torch.Tensor | None], list[int]]:
    """Per sample: the layout of the frames that reached the LLM, the sequence indices of the dropped
    frames' placeholder tokens (None: none dropped), and the visual token count before the encoder stage.

    ``reductions`` are per video in batch order; each sample holds one video (or none). With
    ``frame_layout_tokens``, the layout tokens inside a frame's block (LLaVA-Video's row newlines, up to
    one past its last visual token) leave with the frame.
    """
    originals = [0 if lay is None else lay.num_visual for lay in layouts]
    if reductions is None:
        return layouts, [None] * len(layouts), originals
    with_video = [b for b, lay in enumerate(layouts) if lay is not None]
    if len(with_video) != len(reductions):
        raise UnsupportedModelError(
            f"encoder-level stages need exactly one video per sample; this batch has {len(reductions)} videos "
            f"for {len(with_video)} samples with video tokens.")
    out, dropped = list(layouts), [None] * len(layouts)
    for b, reduction in zip(with_video, reductions):
        if reduction is None:
            continue
        layout = layouts[b]
        if layout.num_frames != reduction.num_frames:
            raise UnsupportedModelError(
                f"encoder-level stages need one video per sample; sample {b} has {layout.num_frames} frames of "
                f"video tokens but its video has {reduction.num_frames}.")
        gone = torch.ones(reduction.num_frames, dtype=torch.bool)
        gone[reduction.kept] = False
        dropped[b] = layout.token_index[gone].reshape(-1).cpu()
        if frame_layout_tokens and layout.layout_index.numel():
            rows = layout.token_index[gone].cpu()
            lo, hi = rows.min(1).values, rows.max(1).values + 1  # [dropped frames]
            marks = layout.layout_index.cpu()
            inside = ((marks[None] > lo[:, None]) & (marks[None] <= hi[:, None])).any(0)
            dropped[b] = torch.cat([dropped[b], marks[inside]]).sort().values
        out[b] = layout.keep_frames(reduction.kept)
    return out, dropped, originals
