"""The sharded-model check on the CPU: accelerate's dispatch hooks and prunekit together (two halves, one CPU)."""

from __future__ import annotations

import pytest

pytest.importorskip("accelerate")

from prunekit.benchmarks.multigpu import sharded  # noqa: E402


@pytest.mark.parametrize("shape", ["tiny", "tiny-qwen2-vl"])
def test_dispatched_model_prunes_like_the_undispatched_one(shape: str) -> None:
    result = sharded.run(shape, 8, ["hieravid-30", "fastv"], ["cpu", "cpu"], new_tokens=4, repeats=1)
    assert result["ok"]
    rows = {r["preset"]: r for r in result["correctness"]}
    assert rows["hieravid-30"]["identical_tokens"] and rows["hieravid-30"]["max_abs_logit_diff"] == 0.0
    assert rows["hieravid-30"]["stage_devices"] and rows["fastv"]["stage_devices"]
    assert sorted(result["device_map_layers"]) == [f"model.language_model.layers.{i}" for i in range(4)]
    assert "Verdict: PASS" in sharded.markdown(result)


def test_device_map_puts_each_half_of_the_layers_on_its_device() -> None:
    from prunekit.adapters.random_models import build_model

    model = build_model("llava_onevision")
    mapping = sharded.device_map(model, ["cuda:0", "cuda:1"])
    layers = [mapping[f"model.language_model.layers.{i}"] for i in range(4)]
    assert layers == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]
    assert mapping["model.vision_tower"] == "cuda:0" and mapping["lm_head"] == "cuda:1"
    assert mapping["model.language_model.norm"] == "cuda:1" and mapping["model.image_newline"] == "cuda:0"


def test_verdict_holds_sharded_runs_to_the_devices_own_run_to_run_noise() -> None:
    import torch

    def side(tokens: list[int], repeat_ok: bool, logits: float = 0.0) -> dict:
        return {"preset": "p", "tokens": tokens, "logits": torch.full((3,), logits),
                "repeat_identical_tokens": repeat_ok, "repeat_max_abs_logit_diff": 0.0,
                "kept_per_stage": [[7, 10]], "stage_devices": {7: "cuda:1"}, "layer_devices": {7: "cuda:1"},
                "copies": {"Memcpy DtoH": 3}}

    assert sharded.compare(side([1, 2], True), side([1, 2], True))["ok"]
    assert not sharded.compare(side([1, 2], True), side([1, 3], True))["ok"]  # reproducible device: must match
    flaky = sharded.compare(side([1, 2], False), side([1, 3], True))
    assert flaky["ok"] and flaky["tokens_agree_until"] == 1
    assert not sharded.compare(side([1, 2], False), side([1, 3], True, logits=0.5))["ok"]  # prefill differs
