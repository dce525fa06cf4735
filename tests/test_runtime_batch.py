"""Batch > 1 with left padding: every sample gets its own layout, segments and exact budget."""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit.adapters.random_models import batch_inputs, build_model, video_inputs

NEW_TOKENS = 8


def _generate(model, inputs: dict):  # noqa: ANN001, ANN202
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    return out.sequences[:, -NEW_TOKENS:], torch.stack(out.logits, 1)  # [B, T], [B, T, V]


def _samples(family: str, model):  # noqa: ANN001, ANN202
    if family.startswith("llava"):  # one frame count per batch tensor; lengths differ through the text
        specs = [(8, 2, 3), (8, 7, 9), (8, 4, 1)]
    else:
        specs = [(8, 3, 5), (4, 2, 2), (12, 5, 7)]
    return [video_inputs(model, frames, before, after, seed=i + 10)
            for i, (frames, before, after) in enumerate(specs)]


@pytest.mark.parametrize("family", ["llava_onevision", "llava_video", "qwen2_vl", "qwen2_5_vl"])
@pytest.mark.parametrize("preset", ["hieravid-30", "uniform"])
def test_batch_of_three_equals_three_single_runs(family: str, preset: str) -> None:
    """(e) a left-padded batch of 3 different-length videos gives the same tokens as 3 single runs."""
    model = build_model(family)
    samples = _samples(family, model)
    singles = []
    with prunekit.apply(model, preset) as handle:
        for sample in samples:
            singles.append((*_generate(model, sample.kwargs), handle.stats().samples[0]))
        tokens, logits = _generate(model, batch_inputs(samples))
        batch_stats = handle.stats().samples
    for b, (single_tokens, single_logits, single_stats) in enumerate(singles):
        assert tokens[b].tolist() == single_tokens[0].tolist(), f"sample {b}"
        assert (logits[b] - single_logits[0]).abs().max().item() <= 1e-4
        assert batch_stats[b].stages == single_stats.stages  # each sample met its own exact budget
    assert len({s.n_visual for s in batch_stats}) > 1 or family.startswith("llava")


def test_decode_masks_are_built_once_per_stage_and_step_with_the_same_tokens(monkeypatch) -> None:  # noqa: ANN001
    """A ragged batch's decode mask is built once per distinct kept set per step, not once per layer."""
    from prunekit.runtime.session import DecodeMasks

    model = build_model("llava_onevision", num_layers=8)  # HieraVid's stages at layers 0, 2, 4, 6
    inputs = batch_inputs(_samples("llava_onevision", model))
    with prunekit.apply(model, "hieravid-30") as handle:
        tokens, logits = _generate(model, inputs)
        session = handle._session
        layer_valid = session.state.layer_valid
        distinct = len({id(v) for v in layer_valid.values()})
        builds = session._decode_masks.builds
        original_get = DecodeMasks.get

        def per_layer(self, mask, valid, generated):  # noqa: ANN001, ANN202 - the old behaviour: no reuse
            self.clear()
            return original_get(self, mask, valid, generated)

        monkeypatch.setattr(DecodeMasks, "get", per_layer)
        every_layer_tokens, every_layer_logits = _generate(model, inputs)
        every_layer_builds = session._decode_masks.builds - builds
    steps = NEW_TOKENS - 1
    assert 1 < distinct < len(layer_valid)  # several stages, each shared by several layers
    assert builds == steps * distinct
    assert every_layer_builds == steps * len(layer_valid)
    assert torch.equal(tokens, every_layer_tokens) and torch.equal(logits, every_layer_logits)
