"""The model-adapter interface: what the runtime needs to know about a Hugging Face video LLM."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from prunekit.errors import UnsupportedModelError
from prunekit.types import VideoLayout


@dataclass(frozen=True)
class VisionTower:
    """What encoder-level stages need of a model's vision tower (see `ModelAdapter.vision_tower`).

    Attributes:
        owner: the module whose ``get_video_features(pixel_values_videos [videos, F, C, H, W], ...)`` runs
            the tower on the videos (``generate`` calls it before the first forward).
        tower: the module it calls once on every video frame, ``[videos * F, C, H, W]``.
        layers: its transformer layers in order; each attends within one frame only.
        feature_index: non-negative index into the tower's ``hidden_states`` that the projector reads.
        tokens_per_frame: LLM input tokens one frame becomes (after pooling), what the budget counts.
        frame_layout_tokens: whether each frame's block holds layout tokens of its own (LLaVA-Video's
            kept row newlines), which leave with the frame.
    """

    owner: nn.Module
    tower: nn.Module
    layers: list[nn.Module]
    feature_index: int
    tokens_per_frame: int
    frame_layout_tokens: bool = False


class ModelAdapter(ABC):
    """Recognises one model family and exposes its LLM, decoder layers and video token layout.

    Subclasses set ``name`` and ``model_classes`` (class names they accept) and implement
    `layouts`. Registered through the ``prunekit_register_adapters`` hook.
    """

    name: ClassVar[str]
    model_classes: ClassVar[tuple[str, ...]] = ()
    #: whether `layouts` reads ``position_ids`` (the runtime then copies them to the host first)
    layout_needs_positions: ClassVar[bool] = False

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        """Whether this adapter handles ``model``."""
        return type(model).__name__ in cls.model_classes

    # -- structure ----------------------------------------------------------------------------
    @property
    def language_model(self) -> nn.Module:
        """The text decoder (has ``.layers``, ``.rotary_emb``, ``.config``)."""
        return self.model.model.language_model

    @property
    def layers(self) -> list[nn.Module]:
        """Decoder layers in order."""
        return list(self.language_model.layers)

    @property
    def text_config(self):  # noqa: ANN201 - a transformers config
        """The LLM's config (hidden_size, intermediate_size, num_hidden_layers...)."""
        return self.language_model.config

    @property
    def num_layers(self) -> int:
        """Number of decoder layers L."""
        return len(self.layers)

    def rope_position_ids(self, position_ids: torch.Tensor | None, seq_len: int,
                          batch: int, device: torch.device) -> torch.Tensor:
        """Position ids as the LLM's rotary embedding wants them (text row of Qwen's 4-row form dropped)."""
        if position_ids is None:
            return torch.arange(seq_len, device=device)[None].expand(batch, -1)
        return position_ids

    def vision_tower(self) -> VisionTower:
        """The vision tower as encoder-level stages see it; families without support raise.

        Raises `UnsupportedModelError` unless the adapter overrides it (a tower whose frames pass
        through it independently, so frames can leave the batch between layers).
        """
        raise UnsupportedModelError(
            f"the {self.name} adapter does not support encoder-level stages (pipelines with an 'encoder'); "
            "they run on LLaVA-OneVision models (llava_onevision adapter, also HF LLaVA-Video conversions) and "
            "prunekit's LLaVA-Video class (llava_video adapter). "
            "Use a pipeline without an encoder stage for this model.")

    # -- video layout -------------------------------------------------------------------------
    @abstractmethod
    def layouts(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None) -> list[VideoLayout | None]:
        """One layout per sample of ``input_ids [B, L]`` (None for a sample without video).

        The runtime passes host tensors (``position_ids`` only when `layout_needs_positions`), so
        nothing here waits for the GPU.
        """

    def describe(self) -> str:
        """One line naming the adapter and the model."""
        return f"{self.name} adapter for {type(self.model).__name__}"


def find_adapter(model: nn.Module, name: str = "auto", **options: object) -> ModelAdapter:
    """The registered adapter for ``model`` (``name="auto"``) or the one named ``name``, built with ``options``."""
    from prunekit.plugins import get_registry

    registry = get_registry()
    if name != "auto":
        return registry.get("adapter", name)(model, **options)
    for entry in registry.entries("adapter"):
        if entry.obj.matches(model):
            return entry.obj(model, **options)
    supported = ", ".join(f"{e.name} ({', '.join(e.obj.model_classes)})" for e in registry.entries("adapter"))
    raise UnsupportedModelError(
        f"no prunekit adapter supports {type(model).__name__}. Supported: {supported}. Pass "
        "adapter=NAME to force one, or register your own adapter through the prunekit_register_adapters hook.")
