"""Qwen3-VL (dense and MoE): timestamped frame blocks, interleaved M-RoPE and DeepStack.

Every temporal patch of a video is its own block ``<t seconds> <|vision_start|> tokens <|vision_end|>``;
the blocks of a sample are one video to the stages (the timestamps are text: always kept). The LLM adds
DeepStack level ``i`` (vision features from an intermediate vision layer) to the visual tokens after
decoder layer ``i``. The adapter hands those levels to the runtime (`take_layer_injection`), which gives
them the same keep and the same merges as the main features (`prunekit.merging.injection`).
"""

from __future__ import annotations

from torch import nn

from prunekit.adapters.qwen2_vl import Qwen2VLAdapter
from prunekit.errors import UnsupportedModelError
from prunekit.merging.injection import LayerInjection


def active_ffn_size(text_config) -> int:  # noqa: ANN001 - a transformers config
    """FFN width a token goes through: the dense ``intermediate_size``, or for MoE the routed experts' (plus
    the shared expert's) widths."""
    experts = getattr(text_config, "num_experts_per_tok", None)
    if not experts or not getattr(text_config, "num_experts", 0):
        return text_config.intermediate_size
    shared = getattr(text_config, "shared_expert_intermediate_size", 0) or 0
    return experts * text_config.moe_intermediate_size + shared


class Qwen3VLAdapter(Qwen2VLAdapter):
    """``Qwen3VLForConditionalGeneration`` and its MoE twin ``Qwen3VLMoeForConditionalGeneration``."""

    name = "qwen3_vl"
    model_classes = ("Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration")

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        levels = getattr(getattr(model.config, "vision_config", None), "deepstack_visual_indexes", None)
        if levels is None or not hasattr(self.language_model, "_deepstack_process"):
            raise UnsupportedModelError(
                f"{type(model).__name__} does not expose DeepStack as transformers 5.x Qwen3-VL does "
                "(vision_config.deepstack_visual_indexes and a text model with _deepstack_process); prunekit "
                "cannot prune it safely. Use transformers >= 5.0 or register an adapter for this variant.")
        if len(levels) > self.num_layers:
            raise UnsupportedModelError(
                f"{len(levels)} DeepStack levels for {self.num_layers} decoder layers: the adapter expects at most "
                "one level per layer. Check the model config.")
        self._levels = len(levels)

    def flops_shape(self) -> dict:
        return dict(super().flops_shape(), intermediate_size=active_ffn_size(self.text_config))

    @property
    def injection_levels(self) -> int:
        return self._levels

    def take_layer_injection(self, lm_kwargs: dict) -> LayerInjection | None:
        rows = lm_kwargs.pop("visual_pos_masks", None)
        levels = lm_kwargs.pop("deepstack_visual_embeds", None)
        if rows is None or levels is None:
            return None
        if len(levels) != self._levels or any(level.shape[0] != int(rows.sum()) for level in levels):
            raise UnsupportedModelError(
                f"the LM received {len(levels)} DeepStack levels of shapes {[tuple(x.shape) for x in levels]} for "
                f"{int(rows.sum())} visual tokens; the adapter expects {self._levels} levels with one row per visual "
                "token. This transformers version passes DeepStack differently: report it to prunekit.")
        return LayerInjection(rows.bool(), list(levels))
