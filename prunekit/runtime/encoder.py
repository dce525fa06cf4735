"""The hooks that run a pipeline's encoder stage inside the vision tower.

Four instance-level hooks:

* on the top-level model: remember this forward's ``pixel_values_videos`` (to recognise the tower
  call that encodes them: images go through the same tower);
* on the tower (pre): arm for that call only;
* on tower layer ``j`` (pre): per video, ask the encoder stage which frames continue, fold the
  others into them and hand the layer the smaller batch, so layers ``j..`` run on fewer frames;
* on the tower (post): give every output back its ``videos * F`` rows (a dropped frame repeats the
  row of the frame it folded into), so the projector, LLaVA-OV's pooling and newline and the
  placeholder scatter run unchanged.

The LLM-side session then takes the per-video `FrameReduction`s and removes the dropped frames'
placeholder tokens before the LLM; kept tokens keep their original positions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from prunekit.adapter import ModelAdapter
from prunekit.errors import ConfigError, UnsupportedModelError
from prunekit.pipeline import Pipeline
from prunekit.types import FrameReduction, VideoLayout


class EncoderHooks:
    """Owns the vision-tower hooks of one `prunekit.apply` whose pipeline has an encoder stage."""

    def __init__(self, model: nn.Module, adapter: ModelAdapter, pipeline: Pipeline, num_layers: int) -> None:
        self.model, self.pipeline, self.num_layers = model, pipeline, num_layers
        self.access = adapter.vision_tower()
        layer = pipeline.encoder.layer
        depth = len(self.access.layers)
        if layer >= depth or layer > self.access.feature_index:
            raise ConfigError(
                f"encoder stage {pipeline.encoder.config.name!r} acts at vision-tower layer {layer}, but the tower has "
                f"{depth} layers and the projector reads hidden state {self.access.feature_index}; use a layer below "
                f"{min(depth, self.access.feature_index + 1)}.")
        self._videos: torch.Tensor | None = None
        self._armed = False
        self._frames = 0  # frames per video of the armed call (a batch's videos all have the same count)
        self._rows: torch.Tensor | None = None  # [videos * F] row of the reduced batch behind every frame
        self._reductions: list[FrameReduction | None] | None = None
        self._hooks: list[Any] = []

    def install(self) -> None:
        """Register the four hooks (instance level only)."""
        tower = self.access.tower
        self._hooks += [
            self.model.register_forward_pre_hook(self._capture_videos, with_kwargs=True),
            tower.register_forward_pre_hook(self._arm, with_kwargs=True),
            self.access.layers[self.pipeline.encoder.layer].register_forward_pre_hook(self._reduce, with_kwargs=True),
            tower.register_forward_hook(self._expand),
        ]

    def remove(self) -> None:
        """Unregister every hook and forget all state."""
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        self._videos, self._armed, self._rows, self._reductions = None, False, None, None

    def take(self) -> list[FrameReduction | None] | None:
        """The latest tower call's decision per video (None: the encoder stage did not run); clears it."""
        reductions, self._reductions = self._reductions, None
        return reductions

    # -- hooks ---------------------------------------------------------------------------------
    def _capture_videos(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        videos = kwargs.get("pixel_values_videos")
        self._videos = videos if isinstance(videos, torch.Tensor) and videos.ndim == 5 else None
        self._reductions, self._armed, self._rows = None, False, None  # a new forward: forget stale decisions

    def _arm(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        pixels = args[0] if args else kwargs.get("pixel_values")
        videos = self._videos
        self._armed = (videos is not None and isinstance(pixels, torch.Tensor)
                       and pixels.shape[0] == videos.shape[0] * videos.shape[1]
                       and pixels.data_ptr() == videos.data_ptr())
        if self._armed:
            self._frames = videos.shape[1]
            self._videos = None  # one tower call per forward encodes the videos

    def _reduce(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if not self._armed:
            return None
        self._armed = False
        hidden = args[0] if args else kwargs["hidden_states"]  # [videos * F, T, D]
        mask = args[1] if len(args) > 1 else kwargs.get("attention_mask")
        if mask is not None:
            raise UnsupportedModelError("encoder-level stages need a vision tower without an attention mask "
                                        "(every frame a full image); this call passed one.")
        frames = self._frames
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


def reduce_layouts(layouts: list[VideoLayout | None], reductions: list[FrameReduction | None] | None
                   ) -> tuple[list[VideoLayout | None], list[torch.Tensor | None], list[int]]:
    """Per sample: the layout of the frames that reached the LLM, the sequence indices of the dropped
    frames' placeholder tokens (None: none dropped), and the visual token count before the encoder stage.

    ``reductions`` are per video in batch order; each sample holds one video (or none).
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
        out[b] = layout.keep_frames(reduction.kept)
    return out, dropped, originals
