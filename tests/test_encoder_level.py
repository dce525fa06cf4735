"""The encoder level: stages that drop and fold frames inside the vision tower (LLaVA-OneVision)."""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit import Budget, PipelineConfig
from prunekit.adapters.random_models import batch_inputs, build_model, video_inputs
from prunekit.errors import ConfigError, PrunekitError, UnsupportedModelError
from prunekit.pipeline import Pipeline
from prunekit.strategies.earlytom import EarlyFrameMerger, frame_similarity
from prunekit.testing import check_encoder_stage
from prunekit.types import MergeMap
from tests.encoder_reference import encoder_llm_inputs
from tests.reference import reference_generate

NEW_TOKENS = 6
TOWER_LAYER = 1  # the tiny LLaVA-OneVision tower has 2 layers


@pytest.fixture(scope="module")
def model():  # noqa: ANN201
    return build_model("llava_onevision")


@pytest.fixture(scope="module")
def inputs(model) -> dict:  # noqa: ANN001
    return video_inputs(model, num_frames=8, seed=1).kwargs


def preset(name: str, **encoder: object) -> PipelineConfig:
    """A preset with its encoder stage moved to the tiny tower's layer 1 (and other encoder fields)."""
    data = prunekit.presets.get(name).to_dict()
    data["encoder"].update({"layer": TOWER_LAYER, "reference_depth": None, **encoder})
    return PipelineConfig.parse(data)


def generate(model, inputs: dict):  # noqa: ANN001, ANN201
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    return out.sequences[0, -NEW_TOKENS:].tolist(), torch.stack(out.logits)[:, 0]


# -- the stage ------------------------------------------------------------------------------------
def test_early_frame_merge_folds_the_repeated_frames_into_the_frame_before_them() -> None:
    hidden = torch.randn(6, 5, 8, generator=torch.Generator().manual_seed(0))
    hidden[2], hidden[5] = hidden[1], hidden[4]
    kept, merge = EarlyFrameMerger(keep_frames=4 / 6).reduce(hidden, min_frames=1)
    assert kept.tolist() == [0, 1, 3, 4]
    assert merge.source.tolist() == [2, 5] and merge.target.tolist() == [1, 4]


def test_early_frame_merge_keeps_what_the_budget_needs_and_the_first_frame() -> None:
    hidden = torch.ones(6, 5, 8)  # every frame identical
    kept, merge = EarlyFrameMerger(keep_frames=0.1).reduce(hidden, min_frames=3)
    assert kept.numel() == 3 and kept[0] == 0
    assert sorted(merge.source.tolist() + kept.tolist()) == list(range(6))


def test_early_frame_merge_threshold_stops_at_dissimilar_frames() -> None:
    hidden = torch.randn(6, 5, 8, generator=torch.Generator().manual_seed(1))
    hidden[3] = hidden[2]
    kept, merge = EarlyFrameMerger(keep_frames=0.1, threshold=0.99).reduce(hidden, min_frames=1)
    assert kept.tolist() == [0, 1, 2, 4, 5] and merge.target.tolist() == [2]


def test_merged_chains_fold_into_the_first_kept_frame_of_the_run() -> None:
    hidden = torch.zeros(4, 2, 3)
    hidden[:, :, 0] = 1.0
    hidden[3, :, 1] = 5.0  # frames 0-2 identical, frame 3 different
    kept, merge = EarlyFrameMerger(keep_frames=0.5).reduce(hidden, min_frames=1)
    assert kept.tolist() == [0, 3] and merge.target.tolist() == [0, 0]


def test_frame_similarity_is_one_on_the_diagonal() -> None:
    hidden = torch.randn(3, 4, 8)
    assert torch.allclose(frame_similarity(hidden).diagonal(), torch.ones(3))


def test_encoder_min_frames_covers_the_first_stage() -> None:
    pipeline = Pipeline(preset("earlytom-30", keep_frames=0.1))
    # 8 frames x 4 tokens, 30% input retention: 10 tokens enter the LLM, so 3 frames must survive
    assert pipeline.encoder_min_frames(8, 4, num_layers=4) == 3
    assert Pipeline(pipeline.config.with_budget(Budget(1.0))).encoder_min_frames(8, 4, 4) == 8


def test_an_encoder_stage_breaking_its_contract_is_reported() -> None:
    class KeepsOne(EarlyFrameMerger):
        def reduce(self, hidden: torch.Tensor, min_frames: int) -> tuple[torch.Tensor, MergeMap]:
            return torch.tensor([0]), MergeMap.empty()

    pipeline = Pipeline(preset("earlytom-30"))
    pipeline.encoder = KeepsOne(pipeline.config.encoder)
    with pytest.raises(PrunekitError, match="kept 1 frames, outside"):
        pipeline.reduce_frames(torch.randn(8, 5, 4), tokens_per_frame=4, num_layers=4)


def test_config_with_encoder_round_trips_and_old_fingerprints_stay() -> None:
    config = prunekit.presets.get("earlytom-hieravid-30")
    assert PipelineConfig.from_json(config.to_json()) == config
    assert PipelineConfig.from_yaml(config.to_yaml()) == config
    hieravid = prunekit.presets.get("hieravid-30")
    assert hieravid.fingerprint() == hieravid.model_copy(update={"encoder": None}).fingerprint()
    assert config.model_copy(update={"encoder": None}).fingerprint() != config.fingerprint()


# -- the runtime -------------------------------------------------------------------------------------
def test_retain_one_is_bit_identical(model, inputs) -> None:  # noqa: ANN001
    """retain = 1.0 with an encoder stage: the tower and the LLM are untouched, bit for bit."""
    with torch.no_grad():
        ref_logits = model(**inputs).logits
    ref_tokens, ref_steps = generate(model, inputs)
    with prunekit.apply(model, preset("earlytom-hieravid-30"), budget=Budget(1.0)):
        with torch.no_grad():
            logits = model(**inputs).logits
        tokens, steps = generate(model, inputs)
    assert torch.equal(logits, ref_logits)
    assert tokens == ref_tokens and torch.equal(steps, ref_steps)


def test_remove_restores_bit_identical_behaviour(model, inputs) -> None:  # noqa: ANN001
    ref_tokens, ref_steps = generate(model, inputs)
    handle = prunekit.apply(model, preset("earlytom-30"))
    _, pruned_steps = generate(model, inputs)
    handle.remove()
    tokens, steps = generate(model, inputs)
    assert tokens == ref_tokens and torch.equal(steps, ref_steps)
    assert not torch.equal(pruned_steps, ref_steps)


@pytest.mark.parametrize("name, keep_frames", [("earlytom-30", 0.5), ("earlytom-10", 0.3)])
def test_encoder_pruning_equals_the_hand_run_tower_and_llm(model, inputs, name: str, keep_frames: float) -> None:  # noqa: ANN001
    """The pruned forward equals SigLIP run by hand on the kept (folded) frames, then the unpatched LLM fed
    the kept tokens at their original positions; the tokens entering the LLM are the same."""
    config = preset(name, keep_frames=keep_frames)
    reference = reference_generate(model, inputs, Pipeline(config), 1, encoder_llm_inputs(model, inputs,
                                                                                       Pipeline(config)))
    with prunekit.apply(model, config) as handle:
        with torch.no_grad():
            logits = model(**inputs).logits[0, -1]
        kept = handle.kept_indices()[0][0]
    assert torch.equal(kept, reference.present[0])
    assert (logits - reference.logits[0]).abs().max().item() <= 1e-5


def test_composition_with_hieravid_generates_like_the_slow_reference(model, inputs) -> None:  # noqa: ANN001
    """Encoder stage + HieraVid's frame and layer stages through generate (KV cache) equal the layer-by-layer
    reference run on the hand-built LLM input, token for token."""
    config = preset("earlytom-hieravid-30")
    pipeline = Pipeline(config)
    reference = reference_generate(model, inputs, pipeline, NEW_TOKENS, encoder_llm_inputs(model, inputs, pipeline))
    with prunekit.apply(model, config) as handle:
        tokens, logits = generate(model, inputs)
        kept = handle.kept_indices()[0]
    for layer, present in reference.present.items():
        assert torch.equal(kept[layer], present), f"layer {layer} kept different tokens"
    assert tokens == reference.tokens
    assert (logits - torch.stack(reference.logits)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", ["earlytom-30", "earlytom-hieravid-10"])
def test_stats_count_the_encoder_cut_and_meet_the_budget(model, inputs, name: str) -> None:  # noqa: ANN001
    config = preset(name)
    with prunekit.apply(model, config) as handle:
        with torch.no_grad():
            model(**inputs)
        stats = handle.stats()
    sample = stats.samples[0]
    n = sample.n_visual
    assert n == 8 * 4  # the video as the processor made it, not what the tower kept
    realized = stats.input_retention if config.budget.mode == "input" else stats.layer_average_retention
    assert abs(realized - config.budget.retain) <= 1 / n
    assert sample.stages[0][0] == 0 and sample.stages[0][1] < n
    kept_frames, frames = sample.encoder_frames
    assert frames == 8 and kept_frames < 8 and sample.stages[0][1] <= kept_frames * 4


def test_batch_of_two_videos_each_meet_their_budget(model) -> None:  # noqa: ANN001
    samples = [video_inputs(model, 8, before, after, seed=i + 20) for i, (before, after) in enumerate([(2, 3), (6, 1)])]
    config = preset("earlytom-30")
    with prunekit.apply(model, config) as handle:
        singles = []
        for sample in samples:
            with torch.no_grad():
                singles.append(model(**sample.kwargs).logits[0, -1])
        with torch.no_grad():
            batch = model(**batch_inputs(samples)).logits[:, -1]
        stats = handle.stats().samples
    for b, single in enumerate(singles):
        assert (batch[b] - single).abs().max().item() <= 1e-4
        assert abs(stats[b].input_retention - 0.3) <= 1 / stats[b].n_visual


@pytest.mark.parametrize("newline", ["prune", "keep"])
def test_llava_video_grid_layout_drops_whole_frame_blocks(newline: str) -> None:
    """LLaVA-Video's grid layout: a dropped frame leaves with its row newlines (kept newlines of kept frames
    stay); the pruned forward equals the hand-run tower and LLM."""
    model = build_model("llava_video")
    inputs = video_inputs(model, num_frames=8, seed=2).kwargs
    config = preset("earlytom-30")
    llm_inputs = encoder_llm_inputs(model, inputs, Pipeline(config), newline=newline)
    reference = reference_generate(model, inputs, Pipeline(config), 1, llm_inputs)
    with prunekit.apply(model, config, adapter_options={"newline": newline}) as handle:
        with torch.no_grad():
            logits = model(**inputs).logits[0, -1]
        kept = handle.kept_indices()[0][0]
        stats = handle.stats().samples[0]
    assert torch.equal(kept, reference.present[0])
    assert (logits - reference.logits[0]).abs().max().item() <= 1e-5
    assert stats.encoder_frames[0] < 8 and abs(stats.input_retention - 0.3) <= 1 / stats.n_visual


def test_encoder_layer_scales_to_the_tower_depth() -> None:
    stage = EarlyFrameMerger(layer=2, reference_depth=26)
    assert [stage.tower_layer(depth) for depth in (26, 52, 4, 2)] == [2, 4, 1, 1]
    assert EarlyFrameMerger(layer=0, reference_depth=26).tower_layer(4) == 0


def test_families_without_encoder_support_are_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="does not support encoder-level stages"):
        prunekit.apply(build_model("qwen2_vl"), "earlytom-30")


def test_an_encoder_layer_beyond_the_tower_is_refused(model) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="vision-tower layer 5"):
        prunekit.apply(model, preset("earlytom-30").model_copy(update={"encoder": preset("earlytom-30").encoder
                                                                      .model_copy(update={"layer": 5})}))


def test_precomputed_video_features_warn_that_the_encoder_did_not_run(model, inputs) -> None:  # noqa: ANN001
    """Features computed before apply (mm_encoder_outputs) skip the tower hooks: a warning says so."""
    with torch.no_grad():
        features = model.model.get_video_features(pixel_values_videos=inputs["pixel_values_videos"])
    with prunekit.apply(model, preset("earlytom-30")) as handle:
        with pytest.warns(RuntimeWarning, match="encoder stage did not run"), torch.no_grad():
            model(input_ids=inputs["input_ids"], mm_encoder_outputs={"video": features})
        assert handle.stats().samples[0].encoder_frames == (8, 8)


@pytest.mark.parametrize("config", [{}, {"keep_frames": 0.1, "threshold": 0.5}, {"keep_frames": 1.0}])
def test_early_frame_merge_conforms(config: dict) -> None:
    """The conformance suite plugin authors use for their own encoder stages."""
    check_encoder_stage(EarlyFrameMerger, config)
