"""An independent, slow reference for pruned inference, written without the runtime's hooks.

It captures the unpatched model's LLM inputs, then runs the decoder layers one by one on explicit
token subsets with explicit positions, causal masks and eager attention. Tokens pruned at layer k
simply never exist for layers >= k; kept tokens keep their original positions. Decoding recomputes
the whole sequence at every step (no cache).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunekit.model_adapter import find_adapter
from prunekit.pipeline import Pipeline


def capture_llm_inputs(model: nn.Module, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``inputs_embeds [B, L, D]`` and ``position_ids`` the unpatched model gives its LLM."""
    seen: dict = {}

    def hook(module, args, kwargs):  # noqa: ANN001, ANN202
        seen.update(embeds=kwargs["inputs_embeds"].detach().clone(), positions=kwargs.get("position_ids"))
        raise _Stop

    lm = find_adapter(model).language_model
    handle = lm.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**inputs)
    except _Stop:
        pass
    finally:
        handle.remove()
    positions = seen["positions"]
    if positions is None:
        positions = torch.arange(seen["embeds"].shape[1])[None]
    return seen["embeds"], positions


class _Stop(Exception):
    pass


def capture_deepstack(model: nn.Module, inputs: dict) -> tuple[torch.Tensor, list[torch.Tensor]] | None:
    """Qwen3-VL's ``visual_pos_masks [B, L]`` and DeepStack levels as the unpatched model gives its LLM."""
    seen: dict = {}

    def hook(module, args, kwargs):  # noqa: ANN001, ANN202
        seen.update(rows=kwargs.get("visual_pos_masks"), levels=kwargs.get("deepstack_visual_embeds"))
        raise _Stop

    handle = find_adapter(model).language_model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**inputs)
    except _Stop:
        pass
    finally:
        handle.remove()
    if seen.get("levels") is None:
        return None
    return seen["rows"], [level.clone() for level in seen["levels"]]


def _rope(t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Standard RoPE on the first ``cos.shape[-1]`` dims of ``t [1, H, n, hd]`` (partial rotary passes the rest)."""
    rot, rest = t[..., :cos.shape[-1]], t[..., cos.shape[-1]:]
    half = rot.shape[-1] // 2
    rotated = torch.cat((-rot[..., half:], rot[..., :half]), -1)
    return torch.cat([rot * cos[:, None] + rotated * sin[:, None], rest], -1)


def eager_last_row(layer: nn.Module, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Head-averaged last-query attention of ``layer`` over ``hidden [1, n, D]`` (repeat_kv + softmax)."""
    attn = layer.self_attn
    if cos.ndim == 4:  # transformers <= 5.10 Qwen-VL keeps the three M-RoPE tables apart
        section = attn.rope_scaling["mrope_section"]
        cos, sin = (torch.cat([c[i % 3] for i, c in enumerate(t.split(section * 2, -1))], -1) for t in (cos, sin))
    x = layer.input_layernorm(hidden)
    n, hd = x.shape[1], attn.head_dim
    q = attn.q_proj(x)
    if q.shape[-1] == 2 * attn.config.num_attention_heads * hd:  # Qwen3.5: [query | output gate] per head
        q = q.view(1, n, -1, 2 * hd)[..., :hd]
    q = q.reshape(1, n, -1, hd)
    k = attn.k_proj(x).view(1, n, -1, hd)
    if hasattr(attn, "q_norm"):  # Qwen3: per-head RMSNorm before RoPE
        q, k = attn.q_norm(q), attn.k_norm(k)
    q, k = q.transpose(1, 2), k.transpose(1, 2)
    q, k = _rope(q, cos, sin), _rope(k, cos, sin)
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    weights = (q @ k.transpose(-1, -2)) * attn.scaling
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    weights = weights.masked_fill(~causal, float("-inf")).softmax(-1, dtype=torch.float32)
    return weights[0, :, -1].mean(0)  # [n]


@dataclass
class LLMInputs:
    """What the LLM receives: ``embeds [1, L, D]``, positions, the video layout, the sequence indices
    ``present`` that enter it, and the visual token count before any encoder stage."""

    embeds: torch.Tensor
    positions: torch.Tensor
    layout: object
    present: torch.Tensor
    n_original: int


@dataclass
class ReferenceRun:
    """Logits per generated step and the token sets present at each stage layer."""

    logits: list[torch.Tensor]
    tokens: list[int]
    present: dict[int, torch.Tensor]


def reference_generate(model: nn.Module, inputs: dict, pipeline: Pipeline, new_tokens: int,
                       llm_inputs: LLMInputs | None = None, adapter_options: dict | None = None) -> ReferenceRun:
    """Greedy generation of ``new_tokens`` with ``pipeline`` applied by the slow reference (batch 1).

    ``adapter_options`` choose the adapter's policies (e.g. which layer scores a Qwen3.5 linear-layer stage);
    ``llm_inputs`` replaces what the unpatched model gives its LLM (e.g. an encoder stage's result).
    """
    adapter = find_adapter(model, **(adapter_options or {}))
    lm = adapter.language_model
    layers = adapter.layers
    if llm_inputs is None:
        embeds, positions = capture_llm_inputs(model, inputs)
        layout = adapter.layouts(inputs["input_ids"], positions)[0]
        llm_inputs = LLMInputs(embeds, positions, layout, torch.arange(embeds.shape[1]), layout.num_visual)
    embeds, positions, layout = llm_inputs.embeds, llm_inputs.positions, llm_inputs.layout
    deepstack = capture_deepstack(model, inputs)
    rope_ids = adapter.rope_position_ids(positions, embeds.shape[1], 1, embeds.device)
    plan = pipeline.start(embeds[0, layout.token_index], layout, len(layers), n_original=llm_inputs.n_original)
    stage_at = {s.layer: i for i, s in enumerate(plan.stages)}

    # DeepStack: the visual rows (original indices) and their levels, pruned and merged like the tokens
    marked = torch.nonzero(deepstack[0][0]).flatten() if deepstack else None
    levels = torch.stack(deepstack[1]) if deepstack else None  # [n_levels, m, D]
    added: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # layer -> (original indices, rows added after it)
    with torch.no_grad():
        hidden0 = embeds.clone()
        present = llm_inputs.present
        present_at: dict[int, torch.Tensor] = {}
        # prefill: decide what survives where
        hidden = hidden0.clone()
        cos_full, sin_full = lm.rotary_emb(hidden, rope_ids)
        previous_input = hidden  # the input of the layer before, for stages ranked by its attention (FastV)
        for index, layer in enumerate(layers):
            if index in stage_at:
                by_previous = pipeline.scores_previous_layer and index > 0
                scorer = layers[adapter.relevance_layer(index - 1 if by_previous else index)]
                scored = previous_input if by_previous else hidden
                before = present
                present, hidden, merge, vis = _reference_stage(pipeline, plan, stage_at[index], scorer, scored,
                                                               layout, hidden, present, cos_full, sin_full)
                if levels is not None:
                    marked, levels = _reference_levels(marked, levels, vis, merge, present, before)
                if index == 0:
                    hidden0 = hidden.clone()
            present_at[index] = present
            previous_input = hidden
            hidden = _run_layer(layer, hidden, present, cos_full, sin_full)
            if levels is not None and index < levels.shape[0]:
                added[index] = (marked.clone(), levels[index].clone())
                hidden = _add_level(hidden, *added[index])
        # decode by full recomputation with the prefill's token sets
        tokens: list[int] = []
        logits_steps: list[torch.Tensor] = []
        for _ in range(new_tokens):
            logits = recompute_last_logits(model, hidden0, rope_ids, present_at, tokens, added)
            logits_steps.append(logits)
            tokens.append(int(logits.argmax()))
    return ReferenceRun(logits_steps, tokens, {k: present_at[k] for k in stage_at})


def _reference_stage(pipeline, plan, stage_index, scorer, scored, layout, hidden, present, cos, sin):  # noqa: ANN001, ANN202
    """Run one stage on ``hidden``; relevance is ``scorer``'s eager last row over ``scored`` (the input of
    the stage's layer, or of the layer before for FastV's convention)."""
    vis = layout.sequence_index(plan.live)
    rows = torch.searchsorted(present, vis)
    feats = hidden[0, present[rows]]
    attention = None
    if pipeline.needs_relevance:
        row = eager_last_row(scorer, scored[:, present], cos[..., present, :], sin[..., present, :])
        attention = row[rows]
    result = pipeline.step(plan, stage_index, feats, attention)
    hidden = hidden.clone()
    if len(result.merge):
        hidden[0, present[rows]] = result.merge.apply(feats)
    keep = torch.ones(present.numel(), dtype=torch.bool)
    keep[rows] = False
    keep[rows[result.keep]] = True
    return present[keep], hidden, result.merge, vis


def _reference_levels(marked, levels, vis, merge, present, before):  # noqa: ANN001, ANN202
    """DeepStack rows after a stage: merged groups averaged in every level, dropped tokens' rows gone."""
    rows = torch.searchsorted(marked, vis)
    levels = levels.clone()
    if len(merge):
        for level in levels:
            level[rows] = merge.apply(level[rows])
    still = torch.isin(marked, present)
    return marked[still], levels[:, still]


def _add_level(hidden, marked, rows):  # noqa: ANN001, ANN202
    hidden = hidden.clone()
    hidden[0, marked] = hidden[0, marked] + rows
    return hidden


def _run_layer(layer, hidden, idx, cos, sin):  # noqa: ANN001, ANN202
    """Run ``layer`` on the tokens ``idx`` only (causal among them), writing their outputs back."""
    sub = hidden[:, idx]
    n = idx.numel()
    causal = torch.ones(n, n, dtype=torch.bool).tril()[None, None]
    mask = torch.zeros(causal.shape, dtype=hidden.dtype).masked_fill(~causal, torch.finfo(hidden.dtype).min)
    if getattr(layer, "block_type", None) == "linear_attention":  # Qwen3.5 Gated DeltaNet: a scan, no mask
        mask = None
    out = layer(sub, attention_mask=mask, position_embeddings=(cos[..., idx, :], sin[..., idx, :]),
                position_ids=None)
    out = out[0] if isinstance(out, tuple) else out  # transformers < 4.54 returned a tuple
    hidden = hidden.clone()
    hidden[:, idx] = out
    return hidden


def recompute_last_logits(model: nn.Module, hidden0: torch.Tensor, rope_ids: torch.Tensor,
                          present_at: dict[int, torch.Tensor], tokens: list[int],
                          added: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
    """Logits after ``tokens`` (appended to the prompt), recomputing every layer on its own token set.

    New tokens get positions ``last prompt position + 1, + 2, ...`` on every rope row, as ``generate`` does.
    """
    adapter = find_adapter(model)
    lm = adapter.language_model
    length = hidden0.shape[1]
    embed = model.get_input_embeddings()
    extra = embed(torch.tensor([tokens], dtype=torch.long)) if tokens else hidden0[:, :0]
    seq = torch.cat([hidden0, extra], 1)
    new_pos = rope_ids[..., -1:] + torch.arange(1, len(tokens) + 1)
    cos, sin = lm.rotary_emb(seq, torch.cat([rope_ids, new_pos], -1))
    hidden = seq
    new_idx = torch.arange(length, length + len(tokens))
    for index, layer in enumerate(adapter.layers):
        hidden = _run_layer(layer, hidden, torch.cat([present_at[index], new_idx]), cos, sin)
        if added and index in added:
            hidden = _add_level(hidden, *added[index])
    return model.lm_head(lm.norm(hidden[:, -1:]))[0, -1]


def reference_sequence_logprob(model: nn.Module, inputs: dict, kept: torch.Tensor, tokens: list[int]) -> float:
    """Sum of log-probabilities of ``tokens`` when only ``kept`` prompt tokens enter the LLM."""
    embeds, positions = capture_llm_inputs(model, inputs)
    adapter = find_adapter(model)
    rope_ids = adapter.rope_position_ids(positions, embeds.shape[1], 1, embeds.device)
    present = {index: kept for index in range(len(adapter.layers))}
    total = 0.0
    with torch.no_grad():
        for step, token in enumerate(tokens):
            logits = recompute_last_logits(model, embeds, rope_ids, present, tokens[:step])
            total += float(logits.log_softmax(-1)[token])
    return total
