"""Model inputs per batch, built once and reused by every strategy x budget cell of a run.

LLM-side pruning leaves the vision tower's output the same in every cell (cells with an encoder stage,
which prunes inside the tower, use `InputStore.raw`). When
the model's forward accepts ``mm_encoder_outputs`` (transformers >= 5.24), the video features of each
batch are computed once, checked against the ordinary pixel path on the first batch (identical
logits, else the cache is switched off), kept on the host up to ``cache_bytes`` and passed back as
``mm_encoder_outputs={"video": ...}``. Batches beyond the limit are rebuilt from pixels each time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .dataset import QAItem

__all__ = ["Batch", "make_batches", "InputStore"]

_VIDEO_KEYS = ("pixel_values_videos", "video_grid_thw")


@dataclass(frozen=True)
class Batch:
    """Indices (into the item list) of items scored together; all of one type."""

    indices: tuple[int, ...]
    multiple_choice: bool


def make_batches(items: Sequence[QAItem], batch_size: int) -> list[Batch]:
    """Multiple-choice items first, then open-ended ones, in item order, ``batch_size`` at a time."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    batches = []
    for mc in (True, False):
        idx = [i for i, it in enumerate(items) if (it.options is not None) == mc]
        batches += [Batch(tuple(idx[s:s + batch_size]), mc) for s in range(0, len(idx), batch_size)]
    return batches


def _to(obj: Any, device: torch.device | str) -> Any:
    if torch.is_tensor(obj):
        return obj.to(device)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to(o, device) for o in obj)
    return obj


def _nbytes(obj: Any) -> int:
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(o) for o in obj)
    return 0


@dataclass
class InputStore:
    """Forward kwargs of each batch: prompts tokenised (left padding) and video frames processed."""

    model: torch.nn.Module
    processor: Any
    items: Sequence[QAItem]
    batches: Sequence[Batch]
    prompt: Callable[[QAItem], str]
    frames: Callable[[QAItem], np.ndarray]
    cache_bytes: int = 2 << 30
    use_feature_cache: bool | None = None  # None: decided by `prepare` (signature + self-check)
    _cache: dict[int, dict] = field(default_factory=dict, repr=False)
    _cached_bytes: int = 0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def raw(self, b: int) -> dict:
        """Processor output for batch ``b`` (pixels included), on the model's device."""
        its = [self.items[i] for i in self.batches[b].indices]
        self.processor.tokenizer.padding_side = "left"
        inputs = self.processor(text=[self.prompt(it) for it in its], videos=[self.frames(it) for it in its],
                                padding=True, return_tensors="pt")
        dtype = next(self.model.parameters()).dtype
        return {k: (v.to(self.device, dtype) if v.is_floating_point() else v.to(self.device))
                for k, v in inputs.items()}

    def get(self, b: int) -> dict:
        """Forward kwargs of batch ``b`` (cached video features when available)."""
        if b in self._cache:
            return {k: _to(v, self.device) if k != "mm_encoder_outputs" else
                    {"video": self._features(v["video"], self.device)} for k, v in self._cache[b].items()}
        inputs = self.raw(b)
        if self.use_feature_cache and self._cached_bytes < self.cache_bytes:
            cached = self._with_features(inputs)
            self._cache[b] = {k: (_to(v, "cpu") if k != "mm_encoder_outputs" else
                                  {"video": self._features(v["video"], "cpu")}) for k, v in cached.items()}
            self._cached_bytes += _nbytes(cached["mm_encoder_outputs"]["video"].pooler_output)
            return cached
        return inputs

    def prepare(self, progress: bool = False, batches: Sequence[int] | None = None) -> None:
        """Decide whether features can be cached (self-check on the first batch, the same in every
        data-parallel process), then build the cached features of ``batches`` (default: all)."""
        batches = range(len(self.batches)) if batches is None else batches
        if not batches:
            return
        if self.use_feature_cache is None:
            self.use_feature_cache = self._supports_cache()
        if not self.use_feature_cache:
            return
        from tqdm.auto import tqdm

        for b in tqdm(batches, desc="vision features (once)", unit="batch", disable=not progress, leave=False):
            if self._cached_bytes >= self.cache_bytes:
                break
            self.get(b)

    # -- feature cache -------------------------------------------------------------------------
    def _supports_cache(self) -> bool:
        if "mm_encoder_outputs" not in inspect.signature(self.model.forward).parameters or \
                not hasattr(self.model, "get_video_features"):
            return False
        inputs = self.raw(0)
        try:
            with torch.no_grad():
                reference = self.model(**inputs, logits_to_keep=1).logits
                cached = self.model(**self._with_features(inputs), logits_to_keep=1).logits
        except Exception:  # noqa: BLE001 - any failure means: use the pixel path
            return False
        return reference.shape == cached.shape and torch.allclose(reference, cached, rtol=1e-4, atol=1e-5)

    @torch.no_grad()
    def _with_features(self, inputs: dict) -> dict:
        video = {k: inputs[k] for k in _VIDEO_KEYS if k in inputs}
        out = self.model.get_video_features(**video)
        rest = {k: v for k, v in inputs.items() if k != "pixel_values_videos"}
        return {**rest, "mm_encoder_outputs": {"video": self._features(out, self.device)}}

    @staticmethod
    def _features(out: Any, device: torch.device | str) -> Any:
        """Only ``pooler_output`` (the projected video features) is kept; the forward reads nothing else."""
        return type(out)(pooler_output=_to(out.pooler_output, device))
