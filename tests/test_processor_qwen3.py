"""Qwen3-VL and Qwen3.5 end to end through transformers' real (offline) ``Qwen3VLProcessor``: an mp4 written by
PyAV, read back by `prunekit.video.load`, processed into timestamped frame blocks, pruned inside unmodified
``generate``. transformers has no Qwen3.5 processor class: its checkpoints load ``Qwen3VLProcessor`` too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import prunekit
from prunekit.adapters.random_models import build_model
from prunekit.pipeline import Pipeline
from tests.reference import reference_generate

pytest.importorskip("torchvision")
pytest.importorskip("av")

FPS = 4
NUM_FRAMES = 8
NEW_TOKENS = 6
HEIGHT, WIDTH = 96, 128  # multiples of patch 16 x merge 2: 6 x 8 patches, 12 tokens per temporal patch
WORDS = ["what", "is", "the", "colour", "of", "square", "?", "user", "assistant", "seconds", "<", ">", ".",
         *map(str, range(10))]
# the processor replaces the whole wrapper (written without spaces) by the timestamped frame blocks
PROMPT = ("<|im_start|> user <|vision_start|><|video_pad|><|vision_end|> what is the colour of the square ? "
          "<|im_end|> <|im_start|> assistant")


def qwen3_tokenizer(config):  # noqa: ANN001, ANN201 - a transformers config
    """A word-level tokenizer whose vision special tokens have the ids ``config`` expects (no hub access)."""
    import tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = {"<|image_pad|>": config.image_token_id, "<|video_pad|>": config.video_token_id,
                "<|vision_start|>": config.vision_start_token_id, "<|vision_end|>": config.vision_end_token_id}
    vocab = {"[UNK]": 0, "<|endoftext|>": 1, "<|im_end|>": 2, "<|im_start|>": 3}
    vocab.update({w: 4 + i for i, w in enumerate(WORDS)})
    vocab.update(specials)
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="<|endoftext|>",
                                  eos_token="<|im_end|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", *specials]})
    assert all(tok.convert_tokens_to_ids(t) == i for t, i in specials.items())
    return tok


def qwen3_processor(model):  # noqa: ANN001, ANN201
    """The real ``Qwen3VLProcessor`` for a tiny model: frames used as given (no resampling), one size."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    vision = model.config.vision_config
    pixels = NUM_FRAMES * HEIGHT * WIDTH  # Qwen3-VL's bounds count the pixels of all frames
    video = Qwen3VLVideoProcessor(patch_size=vision.patch_size, temporal_patch_size=vision.temporal_patch_size,
                                  merge_size=vision.spatial_merge_size, do_sample_frames=False,
                                  cap_pixels_per_frame=False, size={"shortest_edge": pixels, "longest_edge": pixels})
    image = Qwen2VLImageProcessor(patch_size=vision.patch_size, temporal_patch_size=vision.temporal_patch_size,
                                  merge_size=vision.spatial_merge_size)  # required by the class, unused here
    return Qwen3VLProcessor(image_processor=image, video_processor=video, tokenizer=qwen3_tokenizer(model.config))


def write_clip(path: Path, frames: int) -> Path:
    """Moving squares over a static background: redundant frames, like real video."""
    rng = np.random.default_rng(0)
    video = np.repeat(rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)[None], frames, 0)
    for f in range(frames):
        video[f, 10:30, 4 + 8 * f: 24 + 8 * f] = (255, 0, 0)
    return prunekit.video.write(path, video, fps=FPS)


def processed(model, path: Path, num_frames: int) -> dict:  # noqa: ANN001
    """Model inputs for ``num_frames`` frames of the clip at ``path``, with their true timestamps."""
    frames = prunekit.video.load(path, num_frames, backend="pyav")
    total = prunekit.video.frame_count(path, backend="pyav")
    indices = prunekit.video.sample_indices(total, num_frames)
    metadata = {"fps": FPS, "total_num_frames": total, "frames_indices": indices}
    return dict(qwen3_processor(model)(text=PROMPT, videos=[frames], video_metadata=[metadata], return_tensors="pt"))


def generate(model, inputs: dict):  # noqa: ANN001, ANN201
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    return out.sequences[:, -NEW_TOKENS:], torch.stack(out.logits, 1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("qwen3") / "clip.mp4", 12)


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen3_5"])
def test_processor_video_prunes_exactly_and_equals_reference(family: str, clip: Path) -> None:
    """hieravid-30 through the processor's timestamped blocks: exact budget, equal to the slow reference; and
    retain = 1.0 is bit-identical to the unpatched model."""
    model = build_model(family)
    inputs = processed(model, clip, NUM_FRAMES)
    ids = inputs["input_ids"][0]
    config = model.config
    blocks = int((ids == config.vision_start_token_id).sum())
    assert blocks == NUM_FRAMES // config.vision_config.temporal_patch_size  # one block per temporal patch
    assert int((ids == config.video_token_id).sum()) == blocks * (HEIGHT // 32) * (WIDTH // 32)

    ref_tokens, ref_logits = generate(model, inputs)
    with prunekit.apply(model, "hieravid-30", budget=prunekit.Budget(1.0)):
        tokens, logits = generate(model, inputs)
    assert torch.equal(tokens, ref_tokens) and torch.equal(logits, ref_logits)

    reference = reference_generate(model, inputs, Pipeline(prunekit.presets.get("hieravid-30")), NEW_TOKENS)
    with prunekit.apply(model, "hieravid-30") as handle:
        tokens, logits = generate(model, inputs)
        sample = handle.stats().samples[0]
    assert sample.n_visual == int((ids == config.video_token_id).sum())
    assert abs(sample.layer_average_retention - 0.30) <= 1 / sample.n_visual, sample
    assert tokens[0].tolist() == reference.tokens
    assert (logits[0] - torch.stack(reference.logits)).abs().max().item() <= 1e-5
    assert not torch.equal(logits, ref_logits)


def test_odd_frame_count_is_padded_by_the_processor_and_prunes_exactly(clip: Path) -> None:
    """7 frames with temporal patch 2: transformers' video processor repeats the last frame (4 temporal patches,
    4 timestamped blocks), so no error is due and prunekit meets the budget on the padded video."""
    model = build_model("qwen3_vl")
    inputs = processed(model, clip, 7)
    config = model.config
    assert inputs["video_grid_thw"][0, 0].item() == 4
    assert int((inputs["input_ids"] == config.vision_start_token_id).sum()) == 4
    with prunekit.apply(model, "hieravid-30") as handle, torch.no_grad():
        model.generate(**inputs, max_new_tokens=2, do_sample=False)
        sample = handle.stats().samples[0]
    assert sample.n_visual == 4 * (HEIGHT // 32) * (WIDTH // 32)
    assert abs(sample.layer_average_retention - 0.30) <= 1 / sample.n_visual


def test_single_frame_video_is_refused_by_the_processor(clip: Path) -> None:
    """A video shorter than one temporal patch fails in transformers' processor, before prunekit is involved,
    with an error naming the frame count and the temporal patch size."""
    model = build_model("qwen3_vl")
    with pytest.raises(ValueError, match="t:1 must be larger than temporal_factor:2"):
        processed(model, clip, 1)
