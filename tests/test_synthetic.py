"""The synthetic video-QA suite and the bundled tiny video LLM.

The generator is a pure function of (split, index); splits never share a seed or a clip; every
question has exactly one right answer among its options; clips survive an mp4 round trip; the bundled
model loads offline and answers.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from prunekit.benchmarks.synthetic import (
    NUM_FRAMES,
    OPEN_TYPES,
    QUESTION_TYPES,
    SPLIT_SEEDS,
    Item,
    build_split,
    item_type,
    load_split,
    make_item,
    vocabulary,
)
from prunekit.benchmarks.synthetic.generator import BACKGROUND_COLORS, DIRECTIONS, NUMBERS, OBJECT_COLORS, SHAPES
from prunekit.tiny import OPTION_LETTERS, TINY_MODEL_DIR, TINY_MODELS, build_prompt

SHALLOW_DIR = TINY_MODELS["shallow"]  # the 4-layer model: the attention tests below read its heads

N_PER_SPLIT = 3 * len(QUESTION_TYPES)


def _digest(frames: np.ndarray) -> str:
    return hashlib.sha1(frames.tobytes()).hexdigest()


def test_items_are_a_pure_function_of_split_and_index():
    for index in range(len(QUESTION_TYPES)):
        (a, clip_a), (b, clip_b) = make_item("val", index), make_item("val", index)
        assert a == b and a.meta == b.meta
        np.testing.assert_array_equal(clip_a.frames, clip_b.frames)


def test_splits_have_distinct_seeds_and_share_no_clip():
    assert len(set(SPLIT_SEEDS.values())) == len(SPLIT_SEEDS)
    digests = {split: {_digest(make_item(split, i)[1].frames) for i in range(N_PER_SPLIT)} for split in SPLIT_SEEDS}
    assert all(len(d) == N_PER_SPLIT for d in digests.values())
    assert not digests["train"] & digests["val"]
    assert not digests["train"] & digests["test"]
    assert not digests["val"] & digests["test"]
    assert not digests["fresh"] & (digests["train"] | digests["val"] | digests["test"])  # the held-out split


def test_question_types_cycle_so_every_prefix_is_balanced():
    assert [item_type(i) for i in range(len(QUESTION_TYPES))] == list(QUESTION_TYPES)
    assert [make_item("test", i)[0].type for i in range(len(QUESTION_TYPES))] == list(QUESTION_TYPES)


@pytest.mark.parametrize("qtype", QUESTION_TYPES)
def test_every_question_has_one_valid_answer(qtype):
    words = set(vocabulary())
    for index in range(12):
        item, clip = make_item("test", index, qtype)
        assert item.type == qtype
        assert clip.frames.shape == (NUM_FRAMES, 64, 64, 3) and clip.frames.dtype == np.uint8
        if qtype in OPEN_TYPES:
            assert item.options is None and item.answer == item.answer_text
        else:
            assert len(item.options) == 4 and len(set(item.options)) == 4
            assert item.answer in OPTION_LETTERS
            assert item.options[OPTION_LETTERS.index(item.answer)] == item.answer_text
        # every answer and option is a single word of the vocabulary (the model answers with one token)
        for word in [item.answer_text, *(item.options or ())]:
            assert word in words
        assert all(w in words for w in item.question.replace("?", " ? ").replace(".", " . ").split())


def test_answers_match_what_the_clip_shows():
    for index in range(40):
        item, clip = make_item("train", index)
        meta = item.meta
        if item.type == "scene_count":
            assert NUMBERS[meta["scenes"] - 1] == item.answer_text
            assert len(np.unique(clip.background[:, 0, 0])) == meta["scenes"]
        elif item.type in ("needle_color", "open_needle_color"):
            color = item.answer_text
            assert meta["needle"].startswith(color)
            assert 1 <= len(meta["needle_frames"]) <= 2
            # the needle's colour shows in its frames only, as small-object tokens
            small = clip.obj_size == 1
            frames_with = sorted(set(np.nonzero(small)[0].tolist()))
            assert set(frames_with) <= set(meta["needle_frames"])
        elif item.type in ("motion_direction", "open_motion"):
            assert item.answer_text == meta["direction"] and item.answer_text in DIRECTIONS
        elif item.type == "counting":
            assert NUMBERS[meta["count"] - 1] == item.answer_text
            color = item.question.split(" a ")[1].split()[0]
            assert meta["colors"].count(color) == meta["count"]
        elif item.type == "needle_shape":
            assert meta["needle"].endswith(item.answer_text) and item.answer_text in SHAPES
        elif item.type == "event_order":
            key = "first" if " first " in item.question else "last"
            assert meta[key].startswith(item.answer_text) and item.answer_text in OBJECT_COLORS
        elif item.type == "scene_object":
            bg = item.question.split(" the ")[-1].split()[0]
            assert bg in BACKGROUND_COLORS
            assert meta["objects"][meta["scene"]].endswith(item.answer_text)


def test_needles_are_small_and_brief():
    """A needle covers at most 4 of the 256 visual tokens per frame, in 1-2 of the 16 frames."""
    for index in range(0, 9 * 20, 9):
        item, clip = make_item("test", index + 2)  # needle_color
        assert item.type == "needle_color"
        tokens = int((clip.obj_size == 1).sum())
        assert 1 <= tokens <= 8


def test_prompt_format():
    prompt = build_prompt("What color is it?", ["red", "blue", "green", "cyan"])
    assert prompt.startswith("<|im_start|>user\n<video>\nWhat color is it?\nA. red\nB. blue")
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert "single word" in build_prompt("Which way?")
    with pytest.raises(ValueError):
        build_prompt("q", ["a"] * 5)


def test_items_round_trip_through_jsonl_and_mp4(tmp_path):
    pytest.importorskip("av")
    items = build_split("val", len(QUESTION_TYPES), tmp_path)
    loaded = load_split("val", tmp_path)
    assert [it.id for it in loaded] == [it.id for it in items]
    from prunekit.benchmarks.synthetic import load_frames

    for item in loaded:
        assert Item.from_json(item.to_json()) == item
        frames = load_frames(item)
        np.testing.assert_array_equal(frames, make_item("val", item.index)[1].frames)  # lossless


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_bundled_model_is_small_and_complete(name):
    folder = TINY_MODELS[name]
    files = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json",
            "generation_config.json", "README.md"} <= files
    assert (folder / "model.safetensors").stat().st_size < 20 * 2**20


def _loaded_name(key: str) -> str:
    """The model's parameter name of a checkpoint key saved in LLaVA's original layout."""
    if key.startswith("language_model.model."):
        return "model.language_model." + key.removeprefix("language_model.model.")
    if key.startswith("language_model.lm_head"):
        return key.removeprefix("language_model.")
    return "model." + key


def test_default_tiny_model_is_as_deep_as_qwen2_7b_and_loads_its_fp16_weights_exactly_in_fp32():
    import torch
    from safetensors.torch import load_file

    from prunekit.tiny import load_tiny

    assert TINY_MODEL_DIR == TINY_MODELS["deep"]
    model, _ = load_tiny()
    assert model.config.text_config.num_hidden_layers == 28
    saved = load_file(TINY_MODEL_DIR / "model.safetensors")
    assert {v.dtype for v in saved.values()} == {torch.float16}
    state = model.state_dict()
    assert len(state) == len(saved)
    assert all(state[_loaded_name(k)].dtype == torch.float32 and torch.equal(state[_loaded_name(k)], v.float())
               for k, v in saved.items())
    shallow, _ = load_tiny(name="shallow")
    assert shallow.config.text_config.num_hidden_layers == 4


def test_load_tiny_names_the_bundled_models_for_an_unknown_name():
    from prunekit.errors import InvalidInputError
    from prunekit.tiny import load_tiny

    with pytest.raises(InvalidInputError, match="deep"):
        load_tiny(name="medium")


def test_bundled_model_loads_offline_and_answers(monkeypatch):
    pytest.importorskip("torchvision")
    import torch

    from prunekit.benchmarks.synthetic.evaluate import evaluate
    from prunekit.tiny import load_tiny

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    model, processor = load_tiny()
    item, clip = make_item("test", 2)  # needle_color: the bundled model answers these reliably
    result = evaluate(model, processor, [item], frames=lambda _: clip.frames)
    assert time.perf_counter() - start < 10
    record = result.predictions[0]
    assert record["prediction"] in OPTION_LETTERS
    assert np.isclose(np.exp(record["option_logprobs"]).sum(), 1, atol=1e-4)
    inputs = processor(text=item.prompt, videos=clip.frames, return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.video_token_id).sum()) == NUM_FRAMES * 16 + 1
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=2)
    answer = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert answer.split()[0] in OBJECT_COLORS


def test_training_only_shape_question_names_an_object_on_screen_and_stays_out_of_eval_splits():
    from prunekit.benchmarks.synthetic import TRAINING_TYPES

    for index in range(20):
        item, clip = make_item("train", index, TRAINING_TYPES[0])
        color = item.question.split("the ")[1].split(" object")[0]
        shape = {name.split()[0]: name.split()[1] for name in item.meta["objects"]}[color]
        assert item.answer_text == shape and sorted(item.options) == sorted(SHAPES)
        assert (clip.obj_shape > 0).any(axis=(1, 2)).all()  # the objects stay on screen in every frame
    for split in ("val", "test"):
        with pytest.raises(ValueError, match="training-only"):
            make_item(split, 0, TRAINING_TYPES[0])


def test_background_questions_answer_with_the_background_of_the_right_scene():
    backgrounds = list(BACKGROUND_COLORS)
    for index in range(30):
        for qtype in ("background_color", "object_background"):
            item, clip = make_item("train", index, qtype)
            shown = {backgrounds[b] for b in np.unique(clip.background)}
            assert len(set(item.options)) == 4 and set(item.options) <= set(backgrounds)
            if qtype == "background_color":  # exactly one option is on screen: the answer
                assert [o for o in item.options if o in shown] == [item.answer_text]
            else:  # the answer is the background of the frames that show the named colour
                color = item.question.split("with the ")[1].split(" object")[0]
                frames = (clip.obj_color == 1 + list(OBJECT_COLORS).index(color)).any(axis=(1, 2))
                assert frames.any()
                assert {backgrounds[b] for b in clip.background[frames, 0, 0]} == {item.answer_text}


def test_training_only_questions_use_only_words_the_bundled_tokenizer_knows():
    from prunekit.benchmarks.synthetic import TRAINING_TYPES
    from prunekit.benchmarks.synthetic.training.train import build_tokenizer

    tok = build_tokenizer()
    for qtype in TRAINING_TYPES:
        item, _ = make_item("train", 0, qtype)
        ids = tok(item.prompt, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids, qtype
    assert len(vocabulary()) == len([w for w in vocabulary() if w in tok.get_vocab()])


def test_curriculum_share_picks_a_deterministic_fraction_of_training_items():
    from prunekit.benchmarks.synthetic.training.train import curriculum_type, encode_chunk

    picked = [curriculum_type(i, 0.25) is not None for i in range(4000)]
    assert 0.22 < sum(picked) / len(picked) < 0.28
    assert picked == [curriculum_type(i, 0.25) is not None for i in range(4000)]
    assert not any(curriculum_type(i, 0.0) for i in range(100))
    chunk = encode_chunk(("train", 0, 12, 1.0))
    assert set(chunk["type"].tolist()) == {len(QUESTION_TYPES)}  # all training-only, typed after the suite's


def test_shape_probe_runs_on_the_bundled_model():
    from prunekit.benchmarks.synthetic.training import probe
    from prunekit.benchmarks.synthetic.training.train import build_tokenizer
    from prunekit.tiny import load_tiny

    model, processor = load_tiny()
    tx, ty, sx, sy = probe.features(model.eval(), processor, build_tokenizer(), "scene_object", items=20, batch=10)
    assert tx.shape[0] == ty.shape[0] > 0 and sx.shape == (20, model.config.text_config.hidden_size)
    assert set(ty.tolist()) <= set(range(4)) and set(sy.tolist()) <= set(range(4))
    assert 0.0 <= probe.probe_accuracy(tx, ty, steps=20) <= 1.0


def test_scene_object_colour_curriculum_asks_for_the_colour_of_the_named_scene_s_object():

    for index in range(20):
        item, clip = make_item("train", index, "scene_object_color")
        bg = item.question.split("the ")[-1].split(" background")[0]
        assert bg in BACKGROUND_COLORS
        target = item.meta["scene"]
        assert item.answer_text == item.meta["objects"][target].split()[0]
        shown = {name.split()[0] for name in item.meta["objects"]}
        assert shown <= set(item.options) and len(set(item.options)) == 4
    # the suite's scene_object items are unchanged by the clip builder it now shares (digest taken before)
    digest = hashlib.sha256()
    for index in range(40):
        item, clip = make_item("test", index, "scene_object")
        digest.update(repr((item.question, item.options, item.answer, item.meta)).encode())
        digest.update(clip.frames.tobytes())
    assert digest.hexdigest() == "accfe301ddef535a56d3639a521d174be57bcac43ab43eb22591b84fceb1a3d6"
    with pytest.raises(ValueError, match="training-only"):
        make_item("val", 0, "scene_object_color")


def test_curriculum_types_split_the_share_between_named_training_types():
    from prunekit.benchmarks.synthetic.training.train import TrainConfig, curriculum_type, curriculum_types

    both = curriculum_types(TrainConfig(curriculum_types="object_shape,scene_object_color"))
    picked = [curriculum_type(i, 0.5, both) for i in range(4000)]
    counts = {t: picked.count(t) for t in both}
    assert all(800 < c < 1200 for c in counts.values()), counts
    with pytest.raises(ValueError, match="training-only"):
        curriculum_types(TrainConfig(curriculum_types="needle_shape"))


def test_attention_diagnostic_finds_the_head_that_retrieves_the_moving_object():
    from transformers import AutoProcessor, LlavaOnevisionForConditionalGeneration

    from prunekit.benchmarks.synthetic.attention import attention_masses, report, target_color

    item, clip = make_item("val", 4, "motion_direction")
    color = target_color(item)
    assert (clip.obj_color == 1 + list(OBJECT_COLORS).index(color)).any()
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(SHALLOW_DIR, attn_implementation="eager")
    processor = AutoProcessor.from_pretrained(SHALLOW_DIR)
    target, other = attention_masses(model.eval(), processor, "motion_direction", items=16)
    assert target.shape == other.shape == (4, 8)
    assert ((target >= 0) & (target + other <= 1 + 1e-5)).all()
    assert (target - other).max() > 0.3  # some head looks at the named object much more than at the others
    assert "layer 3" in report("motion_direction", target, other)
    with pytest.raises(ValueError, match="no target object"):
        target_color(make_item("val", 0, "scene_count")[0])


def test_training_attention_of_the_answer_position_matches_the_model_s_eager_attention():
    import torch
    from transformers import AutoProcessor, LlavaOnevisionForConditionalGeneration

    from prunekit.benchmarks.synthetic.generator import target_tokens
    from prunekit.benchmarks.synthetic.training.train import encode_chunk, focus_loss, forward

    model = LlavaOnevisionForConditionalGeneration.from_pretrained(SHALLOW_DIR, attn_implementation="eager").eval()
    processor = AutoProcessor.from_pretrained(SHALLOW_DIR)
    starts = (4, 5, 0)  # motion_direction, scene_object, scene_count (no target object)
    batch = {k: torch.from_numpy(np.concatenate([encode_chunk(("val", s, 1, 0.0))[k] for s in starts]))
             for k in ("frames", "ids", "n_prompt", "answer", "options", "aux", "type", "focus")}
    with torch.no_grad():
        *_, probs = forward(model, processor, batch, focus_layer=-1)
        for row, start in enumerate(starts):
            item, clip = make_item("val", start)
            assert (batch["focus"][row].numpy() == target_tokens(item, clip)).all()
            inputs = processor(text=item.prompt, videos=[clip.frames], return_tensors="pt")
            eager = model(**inputs, output_attentions=True).attentions[-1][0, :, -1]
            video = inputs["input_ids"][0] == model.config.video_token_id
            torch.testing.assert_close(probs[row], eager[:, video], atol=1e-5, rtol=1e-4)
    assert batch["focus"][:2].flatten(1).any(1).all() and not batch["focus"][2].any()
    use = torch.tensor([True, True, True])
    loss = focus_loss(probs, batch["focus"], use)
    focus = batch["focus"].flatten(1).float()
    on_target = torch.zeros_like(probs)
    on_target[:, 2, :-1] = focus / focus.sum(1, keepdim=True).clamp_min(1)
    assert loss > 0.1 and focus_loss(on_target, batch["focus"], use, head=2) < 1e-3  # rows without a target: 0
    assert focus_loss(on_target, batch["focus"], use, head=1) > 5  # another head on target does not count


def test_distillation_loss_is_zero_only_when_the_student_matches_the_teacher():
    import torch

    from prunekit.benchmarks.synthetic.training.train import distill_loss

    teacher = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
    assert float(distill_loss(teacher.clone(), teacher)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_loss(teacher.flip(-1), teacher)) > 0.1
    # T^2 scaling keeps the gradient size comparable across temperatures
    assert float(distill_loss(teacher.flip(-1), teacher, temperature=1.0)) > 0


def test_vision_tower_can_be_copied_from_the_shallow_model_and_frozen():
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration

    from prunekit.benchmarks.synthetic.training.train import (
        TrainConfig,
        build_model,
        build_tokenizer,
        copy_vision_tower,
    )

    cfg = TrainConfig(text_hidden=32, text_layers=2, text_heads=2, text_kv_heads=1, text_mlp=64)
    model = build_model(build_tokenizer(), cfg)
    copy_vision_tower(model, str(SHALLOW_DIR))
    shallow = LlavaOnevisionForConditionalGeneration.from_pretrained(SHALLOW_DIR)
    for (name, a), (_, b) in zip(model.model.vision_tower.state_dict().items(),
                                 shallow.model.vision_tower.state_dict().items()):
        assert torch.equal(a, b), name
    narrow = build_model(build_tokenizer(), TrainConfig(vision_hidden=64, vision_mlp=128))
    with pytest.raises(ValueError, match="vision tower differs"):
        copy_vision_tower(narrow, str(SHALLOW_DIR))
