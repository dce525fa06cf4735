"""Instantiate a randomly initialised model from its config for tests and benchmarks."""

from __future__ import annotations

from torch import nn


def instantiate(cls: type[nn.Module], config: object, attn: str) -> nn.Module:
    """``cls(config)`` in eval mode with ``attn`` as every sub-config's attention and a generation config
    that never stops early (no EOS) and pads with token 0."""
    config._attn_implementation = attn  # type: ignore[attr-defined]
    for sub in ("text_config", "vision_config"):
        getattr(config, sub)._attn_implementation = attn
    model = cls(config).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model
