"""Qwen3-VL (DeepStack) and Qwen3.5 (hybrid linear attention): correctness on tiny random models (fp32, CPU)."""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit import Budget, PipelineConfig
from prunekit.adapters.random_models import batch_inputs, build_model, video_inputs
from prunekit.errors import BudgetError, UnsupportedModelError
from prunekit.model_adapter import find_adapter
from prunekit.pipeline import Pipeline
from tests.reference import reference_generate

FAMILIES = ["qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe"]
NEW_TOKENS = 8


@pytest.fixture(scope="module", params=FAMILIES)
def model(request: pytest.FixtureRequest):  # noqa: ANN201
    return build_model(request.param)


@pytest.fixture(scope="module")
def inputs(model) -> dict:  # noqa: ANN001
    return video_inputs(model, num_frames=8, seed=1).kwargs


def generate(model, inputs: dict, steps: int = NEW_TOKENS):  # noqa: ANN001, ANN201
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=steps, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    return out.sequences[:, -steps:], torch.stack(out.logits, 1)  # [B, T], [B, T, V]


def in_llm_pipeline() -> PipelineConfig:
    """Stages at layers 1, 2, 3: before the last DeepStack level of the tiny Qwen3-VL, and at linear (1, 2) and
    full-attention (3) layers of the tiny Qwen3.5."""
    return PipelineConfig.parse({
        "name": "test-in-llm", "segmenter": "similarity", "selector": {"name": "dpp"},
        "scheduler": {"name": "fixed", "layers": [1, 2, 3], "keep_fractions": [0.6, 0.4, 0.2]}})


def test_retain_one_and_remove_are_bit_identical(model, inputs) -> None:  # noqa: ANN001
    """retain = 1.0 and, after remove(), the unpatched model: bit-identical logits and tokens."""
    ref_tokens, ref_logits = generate(model, inputs)
    with prunekit.apply(model, "hieravid-30", budget=Budget(1.0)):
        tokens, logits = generate(model, inputs)
    assert torch.equal(tokens, ref_tokens) and torch.equal(logits, ref_logits)
    handle = prunekit.apply(model, "hieravid-30")
    _, pruned_logits = generate(model, inputs)
    handle.remove()
    tokens, logits = generate(model, inputs)
    assert torch.equal(tokens, ref_tokens) and torch.equal(logits, ref_logits)
    assert not torch.equal(pruned_logits, ref_logits)


@pytest.mark.parametrize("preset", ["in-llm", "hieravid-30", "visionzip"])
def test_pruned_generate_equals_layer_by_layer_reference(model, inputs, preset: str) -> None:  # noqa: ANN001
    """Prefill + 8 cached decode steps equal the reference run on exactly the kept tokens at their original
    positions (and, for Qwen3-VL, the kept and merged DeepStack rows): max |logit diff| <= 1e-5."""
    config = in_llm_pipeline() if preset == "in-llm" else prunekit.presets.get(preset)
    reference = reference_generate(model, inputs, Pipeline(config), NEW_TOKENS)
    with prunekit.apply(model, config) as handle:
        tokens, logits = generate(model, inputs)
        kept = handle.kept_indices()[0]
    for layer, present in reference.present.items():
        assert torch.equal(kept[layer], present), f"layer {layer} kept different tokens"
    assert tokens[0].tolist() == reference.tokens
    assert (logits[0] - torch.stack(reference.logits)).abs().max().item() <= 1e-5


def test_batch_of_three_equals_three_single_runs(model) -> None:  # noqa: ANN001
    """A left-padded batch of 3 different-length videos gives the same tokens (and budgets) as 3 single runs."""
    samples = [video_inputs(model, frames, before, after, seed=i + 10)
               for i, (frames, before, after) in enumerate([(8, 3, 5), (4, 2, 2), (6, 5, 7)])]
    singles = []
    with prunekit.apply(model, "hieravid-30") as handle:
        for sample in samples:
            singles.append((*generate(model, sample.kwargs, 4), handle.stats().samples[0]))
        tokens, logits = generate(model, batch_inputs(samples), 4)
        batch_stats = handle.stats().samples
    for b, (single_tokens, single_logits, single_stats) in enumerate(singles):
        assert tokens[b].tolist() == single_tokens[0].tolist(), f"sample {b}"
        assert (logits[b] - single_logits[0]).abs().max().item() <= 1e-4
        assert batch_stats[b].stages == single_stats.stages


def test_sampling_and_beam_search_run_pruned(model, inputs) -> None:  # noqa: ANN001
    """Unmodified generate with sampling and with beam search prunes and returns full-length sequences."""
    with prunekit.apply(model, "hieravid-30") as handle, torch.no_grad():
        sampled = model.generate(**inputs, max_new_tokens=3, do_sample=True, top_k=5)
        beams = model.generate(**inputs, max_new_tokens=3, num_beams=2, do_sample=False)
        assert handle.stats().samples[0].n_visual > 0
    length = inputs["input_ids"].shape[1] + 3
    assert sampled.shape == (1, length) and beams.shape == (1, length)


def test_eager_attention_equals_sdpa(model, inputs) -> None:  # noqa: ANN001
    """The same pruned run under eager and SDPA attention gives the same tokens."""
    family = {"Qwen3VLForConditionalGeneration": "qwen3_vl", "Qwen3VLMoeForConditionalGeneration": "qwen3_vl_moe",
              "Qwen3_5ForConditionalGeneration": "qwen3_5",
              "Qwen3_5MoeForConditionalGeneration": "qwen3_5_moe"}[type(model).__name__]
    eager = build_model(family, attn="eager")
    with prunekit.apply(model, "hieravid-30"):
        sdpa_tokens, sdpa_logits = generate(model, inputs, 4)
    with prunekit.apply(eager, "hieravid-30"):
        eager_tokens, eager_logits = generate(eager, inputs, 4)
    assert torch.equal(sdpa_tokens, eager_tokens)
    assert (sdpa_logits - eager_logits).abs().max().item() <= 1e-4


def test_stage_past_last_layer_is_a_budget_error(model) -> None:  # noqa: ANN001
    """A stage scheduled at or beyond the model's depth is refused at apply time, naming the numbers."""
    config = PipelineConfig.parse({"name": "deep", "selector": "uniform", "scheduler": {"name": "fixed", "layers": [40],
                                                                 "keep_fractions": [0.5]}})
    with pytest.raises(BudgetError):
        prunekit.apply(model, config)


def test_flash_attention_is_refused(model) -> None:  # noqa: ANN001
    """FlashAttention is refused with the fix (load with sdpa or eager)."""
    model.config._attn_implementation = "flash_attention_2"
    try:
        with pytest.raises(UnsupportedModelError, match="sdpa"):
            prunekit.apply(model, "fastv")
    finally:
        model.config._attn_implementation = "sdpa"


def test_deepstack_levels_must_follow_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference comparison catches a merge that keeps the anchor's DeepStack rows instead of averaging
    them (what most ports do): so the equivalence test above really checks that every level is merged."""
    model = build_model("qwen3_vl")
    inputs = video_inputs(model, num_frames=8, seed=1).kwargs
    preset = "visionzip"  # merges its contextual tokens before the LLM, so before every DeepStack level
    reference = reference_generate(model, inputs, Pipeline(prunekit.presets.get(preset)), 2)
    monkeypatch.setattr("prunekit.runtime.session.fold_levels", lambda levels, rows, merge: levels)
    with prunekit.apply(model, preset):
        tokens, logits = generate(model, inputs, 2)
    assert (logits[0] - torch.stack(reference.logits)).abs().max().item() > 1e-4


def test_unrecognised_deepstack_is_refused() -> None:
    """A Qwen3-VL whose DeepStack levels do not fit its LLM gets a named error, not a shape error."""
    model = build_model("qwen3_vl")
    model.config.vision_config.deepstack_visual_indexes = [0, 1, 2, 0, 1]  # 5 levels for 4 decoder layers
    with pytest.raises(UnsupportedModelError, match="DeepStack"):
        prunekit.apply(model, "fastv")


def test_unknown_layer_types_are_refused() -> None:
    """A Qwen3.5 with a layer type the adapter does not know gets a named error naming the types."""
    model = build_model("qwen3_5")
    model.model.language_model.config.layer_types[0] = "sliding_attention"
    with pytest.raises(UnsupportedModelError, match="sliding_attention"):
        prunekit.apply(model, "fastv")


def test_hybrid_stats_name_scoring_layers_and_count_linear_flops() -> None:
    """On Qwen3.5, stats() says which full-attention layer scored each stage, and the FLOPs ratio gives linear
    layers no quadratic saving (so it is higher than the same token counts on an all-attention model)."""
    model = build_model("qwen3_5")
    inputs = video_inputs(model, num_frames=8, seed=1).kwargs
    with prunekit.apply(model, "fastv") as handle, torch.no_grad():
        model(**inputs)
        stats = handle.stats()
    assert stats.scoring_layers == {2: 3}
    sample = stats.samples[0]
    per_layer = [sample.n_visual] * 2 + [sample.stages[0][1]] * 6
    shape = find_adapter(model).flops_shape()
    dense = prunekit.flops_ratio(per_layer, sample.n_visual, sample.n_text, shape["hidden_size"],
                                 shape["intermediate_size"])
    assert sample.flops_ratio == pytest.approx(prunekit.flops_ratio(per_layer, sample.n_visual, sample.n_text, **shape))
    assert sample.flops_ratio > dense


def test_previous_full_option_equals_its_reference() -> None:
    """linear_stage_relevance='previous_full' scores linear-layer stages with the previous full-attention layer,
    and still equals the layer-by-layer reference."""
    model = build_model("qwen3_5")
    inputs = video_inputs(model, num_frames=8, seed=1).kwargs
    config = PipelineConfig.parse({"name": "late", "segmenter": "single", "selector": "top_relevance",
                                   "scheduler": {"name": "fixed", "layers": [5], "keep_fractions": [0.4]}})
    options = {"linear_stage_relevance": "previous_full"}
    reference = reference_generate(model, inputs, Pipeline(config), 4, adapter_options=options)
    with prunekit.apply(model, config, adapter_options=options) as handle:
        tokens, logits = generate(model, inputs, 4)
        assert handle.stats().scoring_layers == {5: 3}
    assert tokens[0].tolist() == reference.tokens
    assert (logits[0] - torch.stack(reference.logits)).abs().max().item() <= 1e-5
