"""Qwen3.5 (dense and MoE): Qwen3-VL's timestamped video layout on a hybrid LLM.

Only every 4th decoder layer (``config.layer_types == "full_attention"``) has softmax attention; the others
are Gated DeltaNet linear attention with a fixed-size recurrent state. Last-query relevance therefore
exists only at full-attention layers. A stage scheduled at a linear layer keeps its layer (so published
schedules and exact budgets are unchanged) and scores tokens with the query/key projections of a
full-attention layer applied to its own input, chosen by the ``linear_stage_relevance`` option:

* ``"next_full"`` (default): the first full-attention layer at or after the stage;
* ``"previous_full"``: the last full-attention layer before it (the next one when there is none).

See docs/adapters.md for the tiny experiment behind the default.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from prunekit.adapters.qwen2_vl import Qwen2VLAdapter
from prunekit.adapters.qwen3_vl import active_ffn_size
from prunekit.errors import ConfigError, UnsupportedModelError

LinearStageRelevance = Literal["next_full", "previous_full"]
LAYER_TYPES = ("full_attention", "linear_attention")


class Qwen35Adapter(Qwen2VLAdapter):
    """``Qwen3_5ForConditionalGeneration`` and ``Qwen3_5MoeForConditionalGeneration`` (hybrid attention)."""

    name = "qwen3_5"
    model_classes = ("Qwen3_5ForConditionalGeneration", "Qwen3_5MoeForConditionalGeneration")

    def __init__(self, model: nn.Module, linear_stage_relevance: LinearStageRelevance = "next_full") -> None:
        super().__init__(model)
        if linear_stage_relevance not in ("next_full", "previous_full"):
            raise ConfigError(f"linear_stage_relevance={linear_stage_relevance!r}; use 'next_full' or "
                              "'previous_full'.")
        self.linear_stage_relevance = linear_stage_relevance
        types = list(getattr(self.text_config, "layer_types", None) or [])
        unknown = sorted({t for t in types} - set(LAYER_TYPES))
        if len(types) != self.num_layers or unknown:
            raise UnsupportedModelError(
                f"{type(model).__name__} has layer types {unknown or types} for {self.num_layers} layers; the qwen3_5 "
                f"adapter knows {LAYER_TYPES} (one per layer). Register an adapter for this variant.")
        self.layer_types = types
        self._full = tuple(i for i, t in enumerate(types) if t == "full_attention")
        if not self._full:
            raise UnsupportedModelError("this Qwen3.5 model has no full-attention layer, so no relevance can be "
                                        "computed; use a strategy that needs no attention scores.")

    @property
    def attention_layers(self) -> tuple[int, ...]:
        return self._full

    def relevance_layer(self, index: int) -> int:
        if index in self._full:
            return index
        after = [i for i in self._full if i > index]
        before = [i for i in self._full if i < index]
        if self.linear_stage_relevance == "previous_full" and before:
            return before[-1]
        return after[0] if after else before[-1]

    def query_key(self, index: int, x_last: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attn = self.layers[index].self_attn
        bsz, length, _ = x.shape
        q, _gate = attn.q_proj(x_last).view(bsz, 1, -1, attn.head_dim * 2).chunk(2, dim=-1)  # query | output gate
        k = attn.k_proj(x).view(bsz, length, -1, attn.head_dim)
        return attn.q_norm(q).transpose(1, 2), attn.k_norm(k).transpose(1, 2)

    def layer_attention_mask(self, index: int, mask: torch.Tensor | None, valid: torch.Tensor) -> torch.Tensor | None:
        if self.layer_types[index] == "linear_attention":  # a 2-D padding mask, as the model builds for these
            return valid.long()
        return mask

    def flops_shape(self) -> dict:
        cfg = self.text_config
        state = cfg.linear_num_value_heads * cfg.linear_key_head_dim * cfg.linear_value_head_dim
        linear = [i for i, t in enumerate(self.layer_types) if t == "linear_attention"]
        return dict(super().flops_shape(), intermediate_size=active_ffn_size(cfg), linear_layers=linear,
                    state_size=state)

    def describe(self) -> str:
        return (f"{self.name} adapter for {type(self.model).__name__} (full attention at layers {list(self._full)}; "
                f"stages at linear layers score with the {self.linear_stage_relevance.replace('_', ' ')} layer)")
