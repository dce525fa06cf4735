"""End to end through real processors: an mp4 written by PyAV, read back by prunekit.video (decord),
processed by the model's own (offline) processor, pruned inside unmodified ``generate``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import prunekit
from prunekit.adapters.random_models import IMG, VEND, VID, VSTART, build_model
from prunekit.errors import InvalidInputError, VideoDecodeError
from prunekit.pipeline import Pipeline
from tests.reference import reference_generate

pytest.importorskip("torchvision")

WORDS = ["what", "is", "the", "colour", "of", "square", "?", "user", "assistant", "\n"]


def _tokenizer(family: str):  # noqa: ANN202
    import tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = {"<image>": IMG, "<video>": VID} if family == "llava_onevision" else {
        "<|image_pad|>": IMG, "<|video_pad|>": VID, "<|vision_start|>": VSTART, "<|vision_end|>": VEND}
    vocab = {"[UNK]": 0, "<|endoftext|>": 1, "<|im_end|>": 2, "<|im_start|>": 3}
    vocab.update({w: 4 + i for i, w in enumerate(WORDS)})
    vocab.update(specials)
    model = tokenizers.models.WordLevel(vocab=vocab, unk_token="[UNK]")
    tk = tokenizers.Tokenizer(model)
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="<|endoftext|>",
                                  eos_token="<|im_end|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", *specials]})
    assert all(tok.convert_tokens_to_ids(t) == i for t, i in specials.items())
    return tok


def _processor(family: str):  # noqa: ANN202
    from transformers import (
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = _tokenizer(family)
    if family == "llava_onevision":
        size = {"height": 56, "width": 56}
        return LlavaOnevisionProcessor(
            image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=[[56, 56]]),
            video_processor=LlavaOnevisionVideoProcessor(size=size), tokenizer=tok, num_image_tokens=16,
            vision_feature_select_strategy="full")
    bounds = {"shortest_edge": 56 * 56, "longest_edge": 56 * 112}
    return Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(size=bounds),
                            video_processor=Qwen2VLVideoProcessor(size=bounds), tokenizer=tok)


def _clip(path: Path, frames: int = 12) -> Path:
    """Moving squares over a static background: redundant frames, like real video."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (56, 84, 3), dtype=np.uint8)
    video = np.repeat(background[None], frames, 0)
    for f in range(frames):
        video[f, 10:26, 4 + 5 * f: 20 + 5 * f] = (255, 0, 0)
    return prunekit.video.write(path, video, fps=4)


PROMPTS = {
    "llava_onevision": "<|im_start|> user <video> what is the colour of the square ? <|im_end|> <|im_start|> assistant",
    "qwen2_vl": "<|im_start|> user <|vision_start|> <|video_pad|> <|vision_end|> what is the colour of the square ? "
                "<|im_end|> <|im_start|> assistant",
}


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_vl"])
def test_video_file_through_processor_matches_reference(family: str, tmp_path: Path) -> None:
    """(d) through the real processor path: generate with HieraVid equals the slow reference."""
    import transformers

    if family == "qwen2_vl" and int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("transformers 4.x Qwen2VLProcessor insists on a Qwen2 tokenizer; this test builds a word-level one")
    path = _clip(tmp_path / "clip.mp4")
    frames = prunekit.video.load(path, 8, backend="decord")
    processor = _processor(family)
    inputs = dict(processor(text=PROMPTS[family], videos=[frames], return_tensors="pt"))
    inputs.pop("token_type_ids", None)  # returned by transformers 4.x tokenizers, unused by the model
    model = build_model(family)
    config = prunekit.presets.get("hieravid-30")
    reference = reference_generate(model, inputs, Pipeline(config), 8)
    with prunekit.apply(model, config) as handle:
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        stats = handle.stats()
    assert out[0, -8:].tolist() == reference.tokens
    assert stats.samples[0].segments < 8  # the static background makes frames similar: fewer segments
    assert abs(stats.layer_average_retention - 0.30) < 0.05


def test_processor_model_mismatch_is_reported(tmp_path: Path) -> None:
    """A processor built for another vision config gives a clear error, not a wrong answer."""
    from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor

    frames = prunekit.video.load(_clip(tmp_path / "clip.mp4"), 4)
    size = {"height": 56, "width": 56}
    wrong = LlavaOnevisionProcessor(  # claims 9 patch tokens (3x3 -> 2x2 pooled... but the model pools 4x4)
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=[[56, 56]]),
        video_processor=LlavaOnevisionVideoProcessor(size=size), tokenizer=_tokenizer("llava_onevision"),
        num_image_tokens=36, vision_feature_select_strategy="full")
    inputs = dict(wrong(text=PROMPTS["llava_onevision"], videos=[frames], return_tensors="pt"))
    model = build_model("llava_onevision")
    with prunekit.apply(model, "hieravid-30"), pytest.raises((InvalidInputError, ValueError)):
        model(**inputs)


def test_video_with_too_few_frames_is_refused(tmp_path: Path) -> None:
    path = _clip(tmp_path / "short.mp4", frames=4)
    with pytest.raises(VideoDecodeError, match="4"):
        prunekit.video.load(path, 32)
