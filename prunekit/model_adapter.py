"""The model-adapter interface: what the runtime needs to know about a Hugging Face video LLM."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from prunekit.errors import UnsupportedModelError
from prunekit.merging.injection import LayerInjection
from prunekit.ops.relevance import apply_rope, last_query_scores
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

    def rotary_tables(self, hidden: torch.Tensor,
                      position_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos, sin)`` for the tokens of ``hidden [B, L, D]`` at ``position_ids`` (the LM's input form)."""
        bsz, length = hidden.shape[:2]
        ids = self.rope_position_ids(position_ids, length, bsz, hidden.device)
        return self.language_model.rotary_emb(hidden, ids)

    def flops_shape(self) -> dict:
        """Keyword arguments of `prunekit.flops.flops` describing this LLM (``hidden_size``,
        ``intermediate_size``, and for hybrid models ``linear_layers`` and ``state_size``)."""
        cfg = self.text_config
        return {"hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size}

    # -- attention and relevance --------------------------------------------------------------
    @property
    def attention_layers(self) -> tuple[int, ...]:
        """Indices of the decoder layers with (full) softmax attention: all of them by default."""
        return tuple(range(self.num_layers))

    def relevance_layer(self, index: int) -> int:
        """The layer whose query/key projections score a stage scheduled at layer ``index``."""
        return index

    def query_key(self, index: int, x_last: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Un-rotated query of the last token ``[B, H, 1, hd]`` and keys ``[B, Hkv, L, hd]`` of layer ``index``.

        ``x`` is the layer's normed input ``[B, L, D]`` and ``x_last`` its last row. Default: Qwen2/Qwen3-style
        ``self_attn.q_proj``/``k_proj`` with the optional per-head ``q_norm``/``k_norm``.
        """
        attn = self.layers[index].self_attn
        bsz, length, _ = x.shape
        q = attn.q_proj(x_last).view(bsz, 1, -1, attn.head_dim)
        k = attn.k_proj(x).view(bsz, length, -1, attn.head_dim)
        if hasattr(attn, "q_norm"):
            q, k = attn.q_norm(q), attn.k_norm(k)
        return q.transpose(1, 2), k.transpose(1, 2)

    def last_query_attention(self, index: int, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                             key_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Head-averaged attention of the last token over all tokens at the input of the stage layer ``index``.

        Computed with one extra key projection over the sequence (< 1% of a decoder layer) instead of
        ``L x L`` weights, from the projections of `relevance_layer` (``index`` itself by default).
        ``hidden [B, L, D]``, ``cos, sin [B, L, rd]``, ``key_valid [B, L]``; returns ``[B, L]`` (float32).
        """
        source = self.relevance_layer(index)
        layer = self.layers[source]
        x = layer.input_layernorm(hidden)
        q, k = self.query_key(source, x[:, -1:], x)
        q = apply_rope(q, cos[:, -1:], sin[:, -1:])
        k = apply_rope(k, cos, sin)
        return last_query_scores(q, k, self.layers[source].self_attn.scaling, key_valid)

    # -- what the LM receives besides the hidden states -----------------------------------------
    def layer_attention_mask(self, index: int, mask: torch.Tensor | None, valid: torch.Tensor) -> torch.Tensor | None:
        """The mask decoder layer ``index`` gets once tokens were dropped: ``mask`` is the causal mask built
        for the kept tokens, ``valid [B, Lc]`` which of them are real (not left padding)."""
        return mask

    def take_layer_injection(self, lm_kwargs: dict) -> LayerInjection | None:
        """Remove from the LM's kwargs, and return, the per-token features the LM adds after its first
        layers (Qwen3-VL's DeepStack); the runtime then adds them to the kept tokens. Default: none."""
        return None

    @property
    def injection_levels(self) -> int:
        """How many decoder layers (from layer 0) may receive `take_layer_injection` features."""
        return 0

    def restart_lm_kwargs(self, lm_kwargs: dict, length: int, device: torch.device) -> None:
        """Make the LM's remaining kwargs fit a prefill of ``length`` tokens (in place).

        Default: restart ``cache_position``, which transformers <= 5.3 passes to the LM.
        """
        if lm_kwargs.get("cache_position") is not None:
            lm_kwargs["cache_position"] = torch.arange(length, device=device)

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
