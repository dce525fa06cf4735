"""LLaVA-OneVision's video pooling without the copy that makes it slow: bit-identical, opt-in, reversible.

transformers' ``LlavaOnevisionModel.apply_pooling`` copies the projected patch grid to contiguous NCHW
before ``interpolate(mode="bilinear")``. On CUDA that layout sends torch to a kernel that parallelises
over output pixels only and loops over frames x channels in each thread: 45.7 ms for 32 frames of
LLaVA-OV-7B on an H100, on the path of every answer. The same ``interpolate`` on the channels-last view
(no copy) computes every output from the same four inputs with the same weights, in 0.2 ms, bit for
bit the same (measured on an H100 at 32 and 64 frames; `fast_video_pooling` re-checks on the CPU).

This is the model's own code, not pruning, so `prunekit.apply` leaves it alone; call
`fast_video_pooling` yourself (the efficiency benchmark's ``--fast-pooling`` applies it to every row).
"""

from __future__ import annotations

import math
import types

import torch
from torch import nn
from transformers import LlavaOnevisionModel

from prunekit.errors import UnsupportedModelError


def channels_last_pooling(self: LlavaOnevisionModel, image_features: torch.Tensor) -> torch.Tensor:
    """``LlavaOnevisionModel.apply_pooling`` computed on the channels-last view of the grid (no NCHW copy)."""
    side = self.config.vision_config.image_size // self.config.vision_config.patch_size
    frames, _, dim = image_features.shape
    grid = image_features.view(frames, side, side, dim).permute(0, 3, 1, 2)  # NCHW shape, NHWC memory
    pooled = nn.functional.interpolate(grid, size=[math.ceil(side / 2)] * 2, mode="bilinear")
    return pooled.permute(0, 2, 3, 1).reshape(frames, -1, dim)


class PoolingPatch:
    """Returned by `fast_video_pooling`: ``remove()`` (or leaving the ``with`` block) restores the original."""

    def __init__(self, module: LlavaOnevisionModel) -> None:
        self.module = module
        module.apply_pooling = types.MethodType(channels_last_pooling, module)
        self.active = True

    def remove(self) -> None:
        """Put transformers' own ``apply_pooling`` back."""
        if self.active:
            del self.module.apply_pooling  # the instance attribute; the class method shows through again
            self.active = False

    def __enter__(self) -> PoolingPatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def fast_video_pooling(model: nn.Module) -> PoolingPatch:
    """Make a LLaVA-OneVision model pool video features on the channels-last view (same result, faster on CUDA).

    Raises `UnsupportedModelError` for any other model (LLaVA-Video through prunekit's class and Qwen2-VL
    already pool without the copy), when the model is already patched, or when this transformers
    version's ``apply_pooling`` does not give the same result as the patch on a CPU check.
    """
    module = _pooling_module(model)
    if "apply_pooling" in vars(module):
        raise UnsupportedModelError("this model's apply_pooling is already patched; call remove() on the "
                                    "PoolingPatch that fast_video_pooling returned first.")
    _check_same_result(module)
    return PoolingPatch(module)


def _pooling_module(model: nn.Module) -> LlavaOnevisionModel:
    for candidate in (model, getattr(model, "model", None)):
        if isinstance(candidate, LlavaOnevisionModel) and \
                type(candidate).apply_pooling is LlavaOnevisionModel.apply_pooling:
            return candidate
    raise UnsupportedModelError(
        f"fast_video_pooling applies to LlavaOnevisionForConditionalGeneration, got {type(model).__name__}; "
        "prunekit's LLaVA-Video class and Qwen2-VL already pool without the slow copy.")


def _check_same_result(module: LlavaOnevisionModel) -> None:
    side = module.config.vision_config.image_size // module.config.vision_config.patch_size
    probe = torch.randn(2, side * side, 8, generator=torch.Generator().manual_seed(0))
    if not torch.equal(module.apply_pooling(probe), channels_last_pooling(module, probe)):
        raise UnsupportedModelError(
            "this transformers version's LlavaOnevisionModel.apply_pooling does not match prunekit's "
            "channels-last pooling; the model was left unchanged.")
