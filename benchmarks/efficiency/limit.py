"""The zero-overhead limit of a strategy: its realized per-layer token counts, run through the same
language model with the tokens dropped by plain slicing.

No segmenting, merging, relevance or selection runs: the decoder layers are called in a plain loop
on random hidden states of the model's width and dtype, and at each layer where the strategy's
token count drops, the hidden states and the rotary ``(cos, sin)`` are cut to the first ``n`` rows.
The KV cache is written as in a real prefill. So the time is what a perfect implementation of that
schedule would take on this model, and ``of limit`` = limit ms / measured prefill ms says how close
a strategy's own prefill comes to it (1.0 = prunekit adds nothing).

At batch > 1 every row runs at the largest per-layer count of the batch (a padded batch without
masks), which is what the pruned prefill has to compute as well.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .probes import Mark, sync


def tokens_per_layer(stats: Any, seq_len: int, num_layers: int) -> list[int]:
    """Tokens (text included) each decoder layer saw in the latest prefill, the batch's largest row.

    ``stats`` is a `prunekit` ``ForwardStats`` (None: the unpruned model, ``seq_len`` everywhere).
    """
    from prunekit.budget import visual_tokens_per_layer
    from prunekit.types import Stage

    if stats is None or not stats.samples:
        return [seq_len] * num_layers
    rows = []
    for s in stats.samples:
        if not s.stages:
            rows.append([s.n_visual + s.n_text] * num_layers)
            continue
        visual = visual_tokens_per_layer([Stage(layer, keep) for layer, keep in s.stages], s.n_visual, num_layers)
        rows.append([v + s.n_text for v in visual])
    return [max(column) for column in zip(*rows)]


class LayerLoop:
    """The decoder layers of ``model``'s language model, callable on a per-layer token schedule.

    Call it only on a model without prunekit's hooks (they would prune the loop's hidden states).
    """

    def __init__(self, model: nn.Module) -> None:
        inner = getattr(model, "model", model)
        self.body = inner.language_model
        self.text_config = model.config.get_text_config()
        self.mrope = bool((getattr(self.text_config, "rope_parameters", None) or {}).get("mrope_section"))
        params = inspect.signature(self.body.layers[0].forward).parameters
        self.cache_kwarg = "cache" if "cache" in params else "past_key_values"  # transformers >= 5.24 renamed it
        weight = next(self.body.parameters())
        self.device, self.dtype = weight.device, weight.dtype

    def inputs(self, batch: int, seq_len: int, seed: int = 0) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Random hidden states ``[batch, seq_len, hidden]`` and their rotary ``(cos, sin)``."""
        gen = torch.Generator(device=self.device).manual_seed(seed)  # drawn where it is used: no host copy
        hidden = torch.randn(batch, seq_len, self.text_config.hidden_size, generator=gen, device=self.device,
                             dtype=self.dtype)
        positions = torch.arange(seq_len, device=self.device)[None].expand(batch, seq_len)
        if self.mrope:
            positions = positions[None].expand(3, batch, seq_len)
        with torch.inference_mode():
            cos_sin = self.body.rotary_emb(hidden, positions)
        return hidden, tuple(cos_sin)

    def run(self, hidden: torch.Tensor, cos_sin: tuple[torch.Tensor, ...], schedule: Sequence[int]) -> torch.Tensor:
        """One prefill of the layer loop: layer ``l`` sees the first ``schedule[l]`` tokens."""
        from transformers import DynamicCache

        if len(schedule) != len(self.body.layers):
            raise ValueError(f"the schedule has {len(schedule)} layers, the model {len(self.body.layers)}")
        cache = DynamicCache(config=self.text_config)
        x, pe = hidden, cos_sin
        with torch.inference_mode():
            for layer, n in zip(self.body.layers, schedule):
                if n < x.shape[1]:
                    x = x[:, :n]
                    pe = tuple(t[..., :n, :] for t in pe)
                out = layer(x, attention_mask=None, position_embeddings=pe, use_cache=True,
                            **{self.cache_kwarg: cache})
                x = out[0] if isinstance(out, tuple) else out
            return self.body.norm(x)


def measure_limits(model: nn.Module, schedules: dict[str, Sequence[int]], batch: int, repeats: int, warmup: int,
                   cuda: bool) -> dict[str, list[float]]:
    """Milliseconds per run of each named schedule, the rows alternated within every repeat.

    GPU: CUDA events around each run (no sync inside); CPU: the host clock.
    """
    if not schedules:
        return {}
    loop = LayerLoop(model)
    seq_len = max(max(s) for s in schedules.values())
    hidden, cos_sin = loop.inputs(batch, seq_len)
    for _ in range(warmup):
        for schedule in schedules.values():
            loop.run(hidden, cos_sin, schedule)
    times: dict[str, list[float]] = {name: [] for name in schedules}
    for _ in range(repeats):
        for name, schedule in schedules.items():
            sync(cuda)
            start = Mark(cuda)
            loop.run(hidden, cos_sin, schedule)
            end = Mark(cuda)
            sync(cuda)
            times[name].append(start.until(end))
    return times
