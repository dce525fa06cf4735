"""Runtime correctness on tiny random models (fp32, CPU), against independent references."""

from __future__ import annotations

from typing import Literal

import pytest
import torch

import prunekit
from prunekit import Budget, PipelineConfig
from prunekit.adapters.random_models import build_model, video_inputs
from prunekit.errors import BudgetError, PrunekitError, UnsupportedModelError
from prunekit.interfaces import FrameSelector, StageConfig
from prunekit.model_adapter import find_adapter
from prunekit.pipeline import Pipeline
from prunekit.plugins import get_registry, reload_plugins
from prunekit.types import SelectionContext
from tests.reference import capture_llm_inputs, reference_generate

FAMILIES = ["llava_onevision", "llava_video", "qwen2_vl", "qwen2_5_vl"]
NEW_TOKENS = 8


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def model(family: str):  # noqa: ANN201
    return build_model(family)


@pytest.fixture(scope="module")
def inputs(model) -> dict:  # noqa: ANN001
    return video_inputs(model, num_frames=8, seed=1).kwargs


def generate(model, inputs: dict, steps: int = NEW_TOKENS):  # noqa: ANN001, ANN201
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=steps, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    return out.sequences[0, -steps:].tolist(), torch.stack(out.logits)[:, 0]


def in_llm_pipeline(selector: str = "dpp") -> PipelineConfig:
    """Three in-LLM stages and no pre-LLM stage (so (d) exercises layer hooks only)."""
    return PipelineConfig.parse({
        "name": "test-in-llm", "segmenter": "similarity", "selector": {"name": selector},
        "scheduler": {"name": "fixed", "layers": [1, 2, 3], "keep_fractions": [0.6, 0.4, 0.2]}})


def test_retain_one_is_bit_identical(model, inputs) -> None:  # noqa: ANN001
    """(a) retain = 1.0 gives bit-identical logits and generated tokens."""
    with torch.no_grad():
        ref_logits = model(**inputs).logits
    ref_tokens, ref_step_logits = generate(model, inputs)
    with prunekit.apply(model, "hieravid-30", budget=Budget(1.0)):
        with torch.no_grad():
            logits = model(**inputs).logits
        tokens, step_logits = generate(model, inputs)
    assert torch.equal(logits, ref_logits)
    assert tokens == ref_tokens and torch.equal(step_logits, ref_step_logits)


def test_remove_restores_bit_identical_behaviour(model, inputs) -> None:  # noqa: ANN001
    """(b) after handle.remove() the model is bit-identical to the unpatched one."""
    ref_tokens, ref_logits = generate(model, inputs)
    handle = prunekit.apply(model, "hieravid-20")
    pruned_tokens, pruned_logits = generate(model, inputs)
    assert prunekit.is_pruned(model)
    handle.remove()
    assert not prunekit.is_pruned(model)
    tokens, logits = generate(model, inputs)
    assert tokens == ref_tokens and torch.equal(logits, ref_logits)
    assert not torch.equal(pruned_logits, ref_logits)  # pruning did change something


@pytest.mark.parametrize("selector", ["uniform", "random", "dpp"])
def test_pre_llm_pruning_equals_model_fed_kept_embeddings(model, inputs, selector: str) -> None:  # noqa: ANN001
    """(c) pre-LLM pruning equals the unpatched LLM fed the kept embeddings at their original positions."""
    config = PipelineConfig.parse({"name": "t", "selector": selector, "segmenter": "similarity",
                                   "scheduler": {"name": "fixed", "layers": [0], "keep_fractions": [0.3]}})
    embeds, positions = capture_llm_inputs(model, inputs)
    with prunekit.apply(model, config) as handle:
        with torch.no_grad():
            logits = model(**inputs).logits[:, -1]
        kept = handle.kept_indices()[0][0]
    lm = find_adapter(model).language_model
    with torch.no_grad():
        hidden = lm(inputs_embeds=embeds[:, kept], position_ids=positions[..., kept],
                    attention_mask=torch.ones(1, kept.numel(), dtype=torch.long)).last_hidden_state
        ref = model.lm_head(hidden[:, -1])
    assert kept.numel() < embeds.shape[1]
    assert (logits - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize("preset", ["in-llm", "hieravid-30", "fastv", "framefusion"])
def test_pruned_generate_equals_slow_reference(model, inputs, preset: str) -> None:  # noqa: ANN001
    """(d) pruning through generate with a KV cache equals the layer-by-layer reference for 8 tokens."""
    config = in_llm_pipeline() if preset == "in-llm" else prunekit.presets.get(preset)
    reference = reference_generate(model, inputs, Pipeline(config), NEW_TOKENS)
    with prunekit.apply(model, config) as handle:
        tokens, logits = generate(model, inputs)
        kept = handle.kept_indices()[0]
    for layer, present in reference.present.items():
        assert torch.equal(kept[layer], present), f"layer {layer} kept different tokens"
    assert tokens == reference.tokens
    assert (logits - torch.stack(reference.logits)).abs().max().item() <= 1e-5


def test_recomputed_relevance_equals_eager_attention(family: str, inputs) -> None:  # noqa: ANN001
    """(f) last-query attention recomputed from q/k + RoPE equals eager attention's last row."""
    model = build_model(family, attn="eager")
    embeds, positions = capture_llm_inputs(model, inputs)
    adapter = find_adapter(model)
    lm = adapter.language_model
    with torch.no_grad():
        out = lm(inputs_embeds=embeds, position_ids=positions, output_attentions=True, output_hidden_states=True)
        cos, sin = adapter.rotary_tables(embeds, positions)
        for index in adapter.attention_layers:
            mine = adapter.last_query_attention(index, out.hidden_states[index], cos, sin)
            eager = out.attentions[index][:, :, -1].mean(1)
            assert (mine - eager).abs().max().item() <= 1e-5


def test_stats_report_exact_budget(model, inputs) -> None:  # noqa: ANN001
    """stats() reports the realized retention, within one token of the requested layer-average budget."""
    with prunekit.apply(model, "hieravid-30", budget=0.25) as handle:
        with torch.no_grad():
            model(**inputs)
        stats = handle.stats()
    sample = stats.samples[0]
    assert abs(stats.layer_average_retention - 0.25) <= 1 / sample.n_visual
    assert 0 < stats.flops_ratio < 1
    assert [layer for layer, _ in sample.stages] == [0, 1, 2, 3]


def test_double_apply_refused_unless_replace(model) -> None:  # noqa: ANN001
    handle = prunekit.apply(model, "uniform")
    try:
        with pytest.raises(PrunekitError, match="already prunes"):
            prunekit.apply(model, "random")
        second = prunekit.apply(model, "random", replace=True)
        assert not handle.active and second.active
        second.remove()
    finally:
        handle.remove()
    assert not prunekit.is_pruned(model)


def test_stage_layer_beyond_depth_is_refused(model) -> None:  # noqa: ANN001
    config = PipelineConfig.parse({"name": "deep", "selector": "uniform",
                                   "scheduler": {"name": "fixed", "layers": [0, 9], "keep_fractions": [0.5, 0.2]}})
    with pytest.raises(BudgetError, match="does not exist"):
        prunekit.apply(model, config)
    assert not prunekit.is_pruned(model)


def test_graph_decode_is_refused_as_not_implemented_and_unknown_modes_are_named(model) -> None:  # noqa: ANN001
    with pytest.raises(NotImplementedError, match="decode='eager'"):
        prunekit.apply(model, "hieravid-30", decode="graph")
    with pytest.raises(PrunekitError, match="'eager', 'graph'"):
        prunekit.apply(model, "hieravid-30", decode="fast")
    assert not prunekit.is_pruned(model)
    prunekit.apply(model, "hieravid-30", decode="eager").remove()


def test_unsupported_model_lists_supported_ones() -> None:
    with pytest.raises(UnsupportedModelError, match="llava_onevision"):
        prunekit.apply(torch.nn.Linear(2, 2), "hieravid-30")


def test_flash_attention_refused_with_advice(model) -> None:  # noqa: ANN001
    old = model.config._attn_implementation
    model.config._attn_implementation = "flash_attention_2"
    try:
        with pytest.raises(UnsupportedModelError, match="sdpa"):
            prunekit.apply(model, "hieravid-30")
    finally:
        model.config._attn_implementation = old


@pytest.mark.parametrize("pool_mode", ["average", "bilinear"])
@pytest.mark.parametrize("newline", ["prune", "keep"])
def test_llava_video_grid_layouts(pool_mode: str, newline: str) -> None:
    """LLaVA-Video's grid layout: newlines pruned like visual tokens, or kept as layout tokens."""
    model = build_model("llava_video", spatial_pool_mode=pool_mode)
    inputs = video_inputs(model, num_frames=4, seed=3).kwargs
    rows = 2 if pool_mode == "average" else 3  # 5x5 SigLIP patches in the tiny model
    assert int((inputs["input_ids"] == model.config.video_token_id).sum()) == 4 * rows * (rows + 1)
    config = in_llm_pipeline()
    reference = None
    with prunekit.apply(model, config, adapter_options={"newline": newline}) as handle:
        tokens, _ = generate(model, inputs, steps=4)
        kept = handle.kept_indices()[0]
        stats = handle.stats().samples[0]
    per_frame = rows * (rows + 1) if newline == "prune" else rows * rows
    assert stats.n_visual == 4 * per_frame
    if newline == "keep":
        adapter = find_adapter(model, newline="keep")
        newlines = adapter.layouts(inputs["input_ids"], None)[0].layout_index
        assert all(bool(torch.isin(newlines, present).all()) for present in kept.values())
    reference = reference_generate(model, inputs, Pipeline(config), 4) if newline == "prune" else None
    if reference is not None:
        assert tokens == reference.tokens


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_vl"])
def test_beam_search_scores_match_reference(family: str) -> None:
    """num_beams > 1 is supported: every returned beam's score equals the reference log-probability."""
    from tests.reference import reference_sequence_logprob

    model = build_model(family)
    inputs = video_inputs(model, num_frames=8, seed=4).kwargs
    config = PipelineConfig.parse({"name": "t", "selector": "uniform",
                                   "scheduler": {"name": "fixed", "layers": [0], "keep_fractions": [0.4]}})
    with prunekit.apply(model, config) as handle:
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=5, num_beams=3, num_return_sequences=3, do_sample=False,
                                 length_penalty=0.0, early_stopping=True, return_dict_in_generate=True,
                                 output_scores=True)
        kept = handle.kept_indices()[0][0]
    for sequence, score in zip(out.sequences, out.sequences_scores):
        tokens = sequence[-5:].tolist()
        assert abs(reference_sequence_logprob(model, inputs, kept, tokens) - float(score)) <= 1e-4


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_vl"])
def test_eager_attention_decodes_with_per_layer_masks(family: str) -> None:
    """With eager attention the decode mask is materialised; each pruned layer gets one as long as its cache."""
    model = build_model(family, attn="eager")
    inputs = video_inputs(model, num_frames=8, seed=5).kwargs
    config = in_llm_pipeline()
    reference = reference_generate(model, inputs, Pipeline(config), NEW_TOKENS)
    with prunekit.apply(model, config):
        tokens, logits = generate(model, inputs)
    assert tokens == reference.tokens
    assert (logits - torch.stack(reference.logits)).abs().max().item() <= 1e-5


class _RepeatingSelector(FrameSelector):
    """Test-only broken selector: returns the right number of indices, all the same."""

    class Config(StageConfig):
        name: Literal["tests.repeating"] = "tests.repeating"

    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        return torch.zeros(keep, dtype=torch.long, device=features.device)


def test_a_selector_breaking_its_contract_inside_the_llm_is_reported_by_generate() -> None:
    """Pick checks on device values are queued and read after the LLM: generate still raises, by name."""
    get_registry().scoped("tests-plugin").register_stage(_RepeatingSelector)
    try:
        model = build_model("llava_onevision")
        inputs = video_inputs(model, num_frames=8, seed=1).kwargs
        config = PipelineConfig.parse({
            "name": "broken", "segmenter": "similarity", "selector": {"name": "tests.repeating"},
            "scheduler": {"name": "fixed", "layers": [1, 2], "keep_fractions": [0.5, 0.25]}})
        with prunekit.apply(model, config), torch.no_grad(), \
                pytest.raises(PrunekitError, match="'tests.repeating' must return distinct indices"):
            model.generate(**inputs, max_new_tokens=2, do_sample=False)
    finally:
        reload_plugins()


@pytest.mark.parametrize("attention_layer", ["stage", "previous"])
def test_stage_ranks_by_the_configured_layers_attention(attention_layer: str) -> None:
    """A top-relevance stage at layer K keeps the top-k of layer K's eager last-query attention
    ('stage', PDrop) or of layer K-1's ('previous', FastV's code), read from the unpatched model."""
    model = build_model("llava_onevision", attn="eager")
    inputs = video_inputs(model, num_frames=8, seed=1).kwargs
    config = PipelineConfig.parse({
        "name": "t", "selector": {"name": "top_relevance", "attention_layer": attention_layer},
        "scheduler": {"name": "fixed", "layers": [2], "keep_fractions": [0.25]}})
    embeds, positions = capture_llm_inputs(model, inputs)
    adapter = find_adapter(model)
    layout = adapter.layouts(inputs["input_ids"], positions)[0]
    with torch.no_grad():
        out = adapter.language_model(inputs_embeds=embeds, position_ids=positions, output_attentions=True)
    scoring_layer = 2 if attention_layer == "stage" else 1
    row = out.attentions[scoring_layer][0, :, -1].mean(0)[layout.sequence_index(torch.arange(layout.num_visual))]
    keep = round(0.25 * layout.num_visual)
    expected = torch.sort(layout.sequence_index(torch.topk(row, keep).indices)).values
    with prunekit.apply(model, config) as handle:
        with torch.no_grad():
            model(**inputs)
        kept = handle.kept_indices()[0][2]
    visual_kept = kept[torch.isin(kept, layout.sequence_index(torch.arange(layout.num_visual)))]
    assert torch.equal(visual_kept, expected)
    other = out.attentions[3 - scoring_layer][0, :, -1].mean(0)[layout.sequence_index(torch.arange(layout.num_visual))]
    assert not torch.equal(torch.topk(other, keep).indices.sort().values, torch.topk(row, keep).indices.sort().values)


def test_fastv_preset_ranks_by_the_previous_layer_and_pdrop_by_its_own() -> None:
    fastv, pdrop = Pipeline(prunekit.presets.get("fastv")), Pipeline(prunekit.presets.get("pdrop"))
    assert fastv.scores_previous_layer and not pdrop.scores_previous_layer
