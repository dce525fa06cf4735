"""Scene-structured video features for random-weight models.

A deep transformer with random weights maps every frame to nearly the same features (rank
collapse: at LLaVA-OV-7B shapes, two unrelated random frames give a same-position cosine of about
0.88 after SigLIP and the projector). Data-dependent stages (HieraVid's segmentation and merge,
FrameFusion's merge, ...) would then see one static "video", which is not what real videos look like.

`SceneFeatures` replaces the output of the model's visual projector with features made of scenes:
``scene_frames`` consecutive frames share a random base feature per grid position and differ by a
small per-frame perturbation (same-position cosine inside a scene about 0.9, across scenes about
0), scaled to the projector's own output RMS. The vision tower and the projector still run (and
are timed); only their output values change. Every strategy, and the unpruned model, see the same
features. ``scene_frames = 0`` keeps the model's own features.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

NOISE = 0.35  # per-frame perturbation relative to the scene feature


def feature_module(model: nn.Module) -> tuple[nn.Module, str]:
    """The module whose output holds per-frame visual features, and its layout kind."""
    inner = getattr(model, "model", model)
    if hasattr(inner, "multi_modal_projector"):  # LLaVA-OneVision / LLaVA-Video: [frames, patches, D]
        return inner.multi_modal_projector, "frames"
    visual = getattr(inner, "visual", None)
    if visual is not None and hasattr(visual, "merger"):  # Qwen2(.5)-VL: [tokens, D], frame-major
        return visual.merger, "tokens"
    raise ValueError(f"no visual feature module found on {type(model).__name__}.")


def scene_features(frames: int, per_frame: int, dim: int, scene_frames: int, *, rms: float, device: torch.device,
                   dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """``[frames, per_frame, dim]`` features: scenes of ``scene_frames`` frames, RMS ``rms``."""
    gen = torch.Generator(device=device).manual_seed(seed)
    scenes = math.ceil(frames / scene_frames)
    base = torch.randn(scenes, per_frame, dim, generator=gen, device=device, dtype=torch.float32)
    scene_of = torch.arange(frames, device=device) // scene_frames
    out = base[scene_of]
    out += NOISE * torch.randn(frames, per_frame, dim, generator=gen, device=device, dtype=torch.float32)
    out *= rms / math.sqrt(1.0 + NOISE**2)
    return out.to(dtype)


class SceneFeatures:
    """Forward hook replacing the visual projector's output by scene-structured features."""

    def __init__(self, model: nn.Module, scene_frames: int, temporal_frames: int, seed: int = 0) -> None:
        self.module, self.kind = feature_module(model)
        self.scene_frames = scene_frames
        self.frames = temporal_frames  # frames as the projector sees them (Qwen: temporal patches)
        self.seed = seed
        self._cache: torch.Tensor | None = None
        self._handle = self.module.register_forward_hook(self._hook) if scene_frames > 0 else None

    def _hook(self, module: nn.Module, args: tuple, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            return None
        shape = output.shape
        if self.kind == "frames":
            frames, per_frame = shape[0], shape[1]
        else:
            frames = self.frames
            if shape[0] % frames:
                return None
            per_frame = shape[0] // frames
        cache = self._cache
        if cache is None or cache.shape[0] != frames or cache.shape[1] != per_frame or cache.dtype != output.dtype:
            rms = float(output.float().pow(2).mean().sqrt())
            cache = scene_features(frames, per_frame, shape[-1], self.scene_frames, rms=rms, device=output.device,
                                   dtype=output.dtype, seed=self.seed)
            self._cache = cache
        return cache.view(shape)

    def remove(self) -> None:
        """Unregister the hook and free the cached features."""
        if self._handle is not None:
            self._handle.remove()
        self._handle, self._cache = None, None
