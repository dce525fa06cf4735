"""Every preset runs on every adapter family through prunekit.apply, with batch > 1, and meets its budget."""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit.adapters.random_models import batch_inputs, build_model, video_inputs
from prunekit.errors import UnsupportedModelError

FAMILIES = ["llava_onevision", "llava_video", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "qwen3_5",
            "qwen3_5_moe"]


@pytest.fixture(scope="module", params=FAMILIES)
def setup(request: pytest.FixtureRequest):  # noqa: ANN201
    model = build_model(request.param, num_layers=8)
    specs = [(8, 2, 3), (8, 6, 4)] if request.param.startswith("llava") else [(8, 2, 3), (12, 5, 2)]
    samples = [video_inputs(model, f, b, a, seed=20 + i) for i, (f, b, a) in enumerate(specs)]
    return model, batch_inputs(samples)


@pytest.mark.parametrize("preset", sorted(prunekit.presets.list()))
def test_preset_runs_batched_with_exact_budget(setup, preset: str) -> None:  # noqa: ANN001
    model, inputs = setup
    budget = prunekit.Budget(0.35, "layer_average")
    if prunekit.presets.get(preset).encoder is not None and model.config.model_type.startswith("qwen"):
        with pytest.raises(UnsupportedModelError, match="does not support encoder-level stages"):
            prunekit.apply(model, preset, budget=budget)  # the encoder level runs on LLaVA families only
        return
    with prunekit.apply(model, preset, budget=budget) as handle:
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=2, do_sample=False)
        stats = handle.stats()
    assert out.shape[0] == 2
    for sample in stats.samples:
        assert abs(sample.layer_average_retention - 0.35) <= 1 / sample.n_visual, (preset, sample)
