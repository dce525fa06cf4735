"""The efficiency benchmark's zero-overhead limit: the layer loop is the model, the schedule is the strategy's."""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit.adapters.random_models import build_model, video_inputs
from prunekit.benchmarks.efficiency import limit


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_vl"])
def test_layer_loop_equals_the_language_model_and_slicing_keeps_the_causal_prefix(family: str) -> None:
    model = build_model(family, "tiny").eval()
    loop = limit.LayerLoop(model)
    hidden, cos_sin = loop.inputs(batch=2, seq_len=12)
    layers = len(loop.body.layers)
    with torch.inference_mode():
        full = loop.body(inputs_embeds=hidden, use_cache=False).last_hidden_state
    assert torch.equal(loop.run(hidden, cos_sin, [12] * layers), full)
    # Causal attention: the first n tokens never see the ones dropped after them.
    pruned = loop.run(hidden, cos_sin, [12] + [7] * (layers - 1))
    assert pruned.shape == (2, 7, hidden.shape[-1])
    torch.testing.assert_close(pruned, full[:, :7], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="layers"):
        loop.run(hidden, cos_sin, [12])


def test_tokens_per_layer_follows_the_realized_stages() -> None:
    model = build_model("llava_onevision", "tiny").eval()
    inputs = video_inputs(model, 8).kwargs
    seq_len = int(inputs["input_ids"].shape[1])
    layers = model.config.get_text_config().num_hidden_layers
    assert limit.tokens_per_layer(None, seq_len, layers) == [seq_len] * layers
    with prunekit.apply(model, "hieravid-30") as handle, torch.inference_mode():
        model.generate(**inputs, max_new_tokens=1)
        stats = handle.stats()
    sample = stats.samples[0]
    schedule = limit.tokens_per_layer(stats, seq_len, layers)
    for layer, kept in sample.stages:
        assert schedule[layer] == kept + sample.n_text
    assert schedule == sorted(schedule, reverse=True) and schedule[0] < seq_len
    times = limit.measure_limits(model, {"unpruned": [seq_len] * layers, "hieravid-30": schedule}, batch=1,
                                 repeats=2, warmup=1, cuda=False)
    assert [len(v) for v in times.values()] == [2, 2] and all(t > 0 for v in times.values() for t in v)
