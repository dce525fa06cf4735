"""`fast_video_pooling`: LLaVA-OV's video pooling on the channels-last view, bit-identical and reversible."""

from __future__ import annotations

import types

import pytest
import torch
from transformers import LlavaOnevisionModel

import prunekit
from prunekit.adapters.random_models import build_model, video_inputs
from prunekit.errors import UnsupportedModelError
from prunekit.speedups import channels_last_pooling, fast_video_pooling


def _logits(model, inputs) -> torch.Tensor:  # noqa: ANN001
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("side", [4, 27])  # the tiny grid and LLaVA-OV-7B's odd 27x27 grid
def test_channels_last_pooling_equals_transformers_bit_for_bit(side: int) -> None:
    fake = types.SimpleNamespace(config=types.SimpleNamespace(
        vision_config=types.SimpleNamespace(image_size=14 * side, patch_size=14)))
    features = torch.randn(3, side * side, 16, generator=torch.Generator().manual_seed(side))
    expected = LlavaOnevisionModel.apply_pooling(fake, features)
    assert torch.equal(channels_last_pooling(fake, features), expected)


def test_patched_model_gives_identical_logits_unpruned_and_pruned_and_restores_on_remove() -> None:
    model = build_model("llava_onevision")
    inputs = video_inputs(model, 8).kwargs
    reference = _logits(model, inputs)
    with prunekit.apply(model, "hieravid-30"):
        pruned_reference = _logits(model, inputs)
    patch = fast_video_pooling(model)
    assert "apply_pooling" in vars(model.model)
    assert torch.equal(_logits(model, inputs), reference)
    with prunekit.apply(model, "hieravid-30"):
        assert torch.equal(_logits(model, inputs), pruned_reference)
    patch.remove()
    patch.remove()  # idempotent
    assert "apply_pooling" not in vars(model.model)
    assert torch.equal(_logits(model, inputs), reference)


def test_fast_video_pooling_refuses_other_models_and_a_second_patch() -> None:
    with pytest.raises(UnsupportedModelError, match="LlavaOnevisionForConditionalGeneration"):
        fast_video_pooling(build_model("llava_video"))
    with pytest.raises(UnsupportedModelError, match="LlavaOnevisionForConditionalGeneration"):
        fast_video_pooling(build_model("qwen2_vl"))
    model = build_model("llava_onevision")
    with fast_video_pooling(model):
        with pytest.raises(UnsupportedModelError, match="already patched"):
            fast_video_pooling(model)
    assert "apply_pooling" not in vars(model.model)


def test_fast_video_pooling_leaves_a_model_alone_when_transformers_pools_differently(monkeypatch) -> None:
    model = build_model("llava_onevision")
    monkeypatch.setattr(LlavaOnevisionModel, "apply_pooling",
                        lambda self, x: channels_last_pooling(self, x) * 2)  # a future, different upstream
    with pytest.raises(UnsupportedModelError, match="does not match"):
        fast_video_pooling(model)
    assert "apply_pooling" not in vars(model.model)


def test_pooling_benchmark_times_both_and_reports_bit_identity(capsys) -> None:  # noqa: ANN001
    from prunekit.benchmarks.efficiency import pooling

    result = pooling.compare(2, 27, 16, torch.device("cpu"), repeats=2)
    assert result["bit_identical"] and result["transformers_ms"] > 0 and result["channels_last_ms"] > 0
    assert pooling.main(["--frames", "2", "--dim", "16", "--repeats", "2", "--device", "cpu"]) == 0
    assert "2 frames: transformers" in capsys.readouterr().out
