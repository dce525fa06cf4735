"""lmms-eval bridge: ``--model prunekit`` wraps lmms-eval's own model classes and prunes them.

Offline throughout: tiny random LLaVA-OneVision / Qwen2-VL checkpoints saved to temp folders, generated
mp4 clips and a local task. Skipped when lmms-eval (the ``lmms`` extra) or decord is not installed.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

pytest.importorskip("lmms_eval", reason="lmms-eval is not installed (pip install 'prunekit[lmms]')")
pytest.importorskip("decord", reason="lmms-eval's video models need decord")

import prunekit  # noqa: E402
from prunekit import video  # noqa: E402
from prunekit.errors import ConfigError  # noqa: E402
from prunekit.integrations import lmms_eval as bridge  # noqa: E402
from tests.tiny_checkpoints import qwen2_text_config, save_tiny_llava_ov, word_tokenizer  # noqa: E402

pytestmark = pytest.mark.slow

_WORDS = ["[UNK]", "A", "B", "C", "D", "what", "color", "is", "the", "video", "red", "green", "blue", "answer"]
_CHAT = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
         "{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'video' %}"
         "<|vision_start|><|video_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
         "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
         "{% endif %}")
_COLORS = {"red": 0, "green": 1, "blue": 2}


def _save_qwen2_vl(out: Path) -> Path:
    """Tiny random Qwen2-VL (M-RoPE) with an offline processor that keeps 56 px frames small."""
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = word_tokenizer(_WORDS, ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"], _CHAT)
    small = dict(min_pixels=56 * 56, max_pixels=56 * 56 * 4)
    proc = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**small),
                            video_processor=Qwen2VLVideoProcessor(**small), tokenizer=tok, chat_template=_CHAT)
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>",
                                                     "<|vision_end|>")}
    rope = {"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]}
    config = Qwen2VLConfig(
        text_config=qwen2_text_config(tok, rope_parameters=rope),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(config).eval().save_pretrained(out)
    proc.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llava_ov(tmp_path_factory.mktemp("tiny-llava-ov"), _WORDS, _CHAT)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 8-frame clips of one colour each and a question per clip (JSONL)."""
    folder = tmp_path_factory.mktemp("smoke-data")
    rows = []
    for i, (name, channel) in enumerate(_COLORS.items()):
        frames = np.zeros((8, 56, 56, 3), np.uint8)
        frames[..., channel] = 200
        video.write(folder / f"{name}.mp4", frames, fps=8)
        rows.append({"video": f"{name}.mp4", "question": "what color is the video", "options": list(_COLORS),
                     "answer": "ABC"[i]})
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _requests(paths: list[str]):
    """``generate_until`` requests as lmms-eval builds them for simple models, and the task dict they need."""
    from lmms_eval.api.instance import Instance

    docs = [{"video": p} for p in paths]
    context = "what color is the video\nA. red\nB. green\nC. blue\nanswer"
    requests = [Instance("generate_until", (context, {"max_new_tokens": 2, "until": ["\n"]},
                                            lambda doc: [doc["video"]], i, "smoke", "test"),
                         idx=0, metadata={"task": "smoke", "doc_id": i, "repeats": 1, "split": "test"})
                for i in range(len(docs))]
    return requests, {"smoke": {"test": docs}}


def test_manifest_registers_one_simple_prunekit_model() -> None:
    (manifest,) = bridge.manifest()
    assert manifest.model_id == "prunekit"
    assert manifest.chat_class_path is None
    module, name = manifest.simple_class_path.rsplit(".", 1)
    assert getattr(__import__(module, fromlist=[name]), name) is bridge.PrunekitModel


def test_lmms_eval_resolves_prunekit_through_the_entry_point() -> None:
    if not any(ep.name == "prunekit" for ep in entry_points(group="lmms_eval.models")):
        pytest.skip("prunekit's lmms_eval.models entry point is not installed (reinstall prunekit)")
    from lmms_eval.models import get_model

    assert get_model("prunekit") is bridge.PrunekitModel


def test_pruning_arguments_are_validated_before_loading() -> None:
    from prunekit.integrations._lmms_eval_model import pipeline_config

    assert pipeline_config(None) is None
    assert pipeline_config("none") is None
    config = pipeline_config("hieravid-30", 0.2, "input")
    assert (config.name, config.budget.retain, config.budget.mode) == ("hieravid-30", 0.2, "input")
    with pytest.raises(ConfigError, match="prunekit_budget needs prunekit_preset"):
        pipeline_config(None, 0.3)
    with pytest.raises(ConfigError, match="base='nope' is not supported"):
        bridge.PrunekitModel(base="nope", pretrained="unused")


def test_llava_hf_wrapper_prunes_every_prefill_and_reports_realized_retention(llava_dir: Path, data_dir: Path,
                                                                              tmp_path: Path) -> None:
    from lmms_eval.models.simple.llava_hf import LlavaHf

    stats_path = tmp_path / "stats.json"
    lm = bridge.PrunekitModel.create_from_arg_string(
        f"pretrained={llava_dir},base=llava_hf,device=cpu,max_frames_num=4,prunekit_preset=hieravid-30,"
        f"prunekit_budget=0.3,prunekit_stats={stats_path}", {"batch_size": 1})
    assert isinstance(lm, LlavaHf) and isinstance(lm, bridge.PrunekitModel)
    model = lm.model
    assert prunekit.is_pruned(model)
    requests, lm.task_dict = _requests([str(data_dir / "red.mp4"), str(data_dir / "blue.mp4")])
    answers = lm.generate_until(requests)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    lm.clean()
    assert not prunekit.is_pruned(model)
    stats = json.loads(stats_path.read_text())
    n_visual = 4 * 4 + 1  # 4 frames x 2x2 pooled tokens + the newline
    assert stats["prefills"] == 2 and stats["preset"] == "hieravid-30"
    assert abs(stats["layer_average_retention"] - 0.3) <= 1 / n_visual
    assert stats["flops_ratio"] < 1


def test_unpruned_baseline_runs_the_same_wrapper_without_hooks(llava_dir: Path, data_dir: Path) -> None:
    lm = bridge.PrunekitModel.create_from_arg_string(
        f"pretrained={llava_dir},base=llava_hf,device=cpu,max_frames_num=4,prunekit_preset=none", {"batch_size": 1})
    assert not prunekit.is_pruned(lm.model)
    requests, lm.task_dict = _requests([str(data_dir / "green.mp4")])
    assert len(lm.generate_until(requests)) == 1
    summary = lm.prunekit_summary()
    assert summary["preset"] is None and summary["layer_average_retention"] == 1.0


def test_qwen2_vl_wrapper_prunes_its_mrope_model(tmp_path: Path, data_dir: Path) -> None:
    from lmms_eval.models.simple.qwen2_vl import Qwen2_VL

    lm = bridge.PrunekitModel.create_from_arg_string(
        f"pretrained={_save_qwen2_vl(tmp_path / 'qwen')},base=qwen2_vl,device=cpu,device_map=cpu,max_num_frames=4,"
        "min_pixels=3136,max_pixels=12544,prunekit_preset=visionzip,prunekit_budget=0.5", {"batch_size": 1})
    assert isinstance(lm, Qwen2_VL) and prunekit.is_pruned(lm.model)
    requests, lm.task_dict = _requests([str(data_dir / "red.mp4")])
    assert len(lm.generate_until(requests)) == 1
    summary = lm.prunekit_summary()
    assert summary["prefills"] == 1 and 0.4 <= summary["layer_average_retention"] <= 0.6


_TASK_YAML = """\
task: prunekit_smoke
dataset_path: json
dataset_kwargs:
  data_files: !function utils.DATA_FILES
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
generation_kwargs: {max_new_tokens: 2, temperature: 0, do_sample: false}
process_results: !function utils.process_results
metric_list: [{metric: exact_match, aggregation: mean, higher_is_better: true}]
"""

_TASK_UTILS = '''\
import os

DATA_FILES = {"test": os.path.join(os.environ["PRUNEKIT_SMOKE_DATA"], "questions.jsonl")}


def doc_to_visual(doc):
    return [os.path.join(os.environ["PRUNEKIT_SMOKE_DATA"], doc["video"])]


def doc_to_text(doc):
    options = "\\n".join(f"{letter}. {text}" for letter, text in zip("ABCD", doc["options"]))
    return f"{doc['question']}\\n{options}\\nanswer"


def process_results(doc, results):
    return {"exact_match": float(results[0].strip().upper()[:1] == doc["answer"])}
'''


def test_lmms_eval_command_line_runs_a_local_video_task_offline_with_pruning(llava_dir: Path, data_dir: Path,
                                                                             tmp_path: Path) -> None:
    """The user's path: ``python -m lmms_eval --model prunekit ...``; checked on its outputs, not its exit code."""
    if not any(ep.name == "prunekit" for ep in entry_points(group="lmms_eval.models")):
        pytest.skip("prunekit's lmms_eval.models entry point is not installed (reinstall prunekit)")
    task = tmp_path / "tasks" / "prunekit_smoke"
    task.mkdir(parents=True)
    (task / "prunekit_smoke.yaml").write_text(_TASK_YAML)
    (task / "utils.py").write_text(textwrap.dedent(_TASK_UTILS))
    out, stats = tmp_path / "out", tmp_path / "stats.json"
    env = {**os.environ, "PRUNEKIT_SMOKE_DATA": str(data_dir), "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "prunekit", "--model_args",
           f"pretrained={llava_dir},base=llava_hf,device=cpu,max_frames_num=4,prunekit_preset=hieravid-30,"
           f"prunekit_budget=0.3,prunekit_stats={stats}",
           "--tasks", "prunekit_smoke", "--include_path", str(tmp_path / "tasks"), "--batch_size", "1",
           "--output_path", str(out), "--log_samples", "--verbosity", "DEBUG"]  # DEBUG: errors give exit code 1
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = glob.glob(str(out / "**" / "*_results.json"), recursive=True)
    assert results, "lmms-eval wrote no results file:\n" + run.stderr[-3000:]
    record = json.loads(Path(results[0]).read_text())
    assert record["n-samples"]["prunekit_smoke"]["effective"] == 3
    assert "exact_match,none" in record["results"]["prunekit_smoke"]
    summary = json.loads(stats.read_text())
    assert summary["prefills"] == 3 and abs(summary["layer_average_retention"] - 0.3) <= 1 / 17


EXAMPLE_TASKS = Path(__file__).resolve().parents[1] / "examples" / "lmms_eval"


def test_documented_local_task_example_runs_on_the_bundled_tiny_model(tmp_path: Path) -> None:
    """docs/benchmarks.md's lmms-eval example, as written: the shipped task folder, synthetic clips, the
    bundled tiny model (whose chat template gives lmms-eval's ``llava_hf`` the prompt it was trained on)
    and no ``device=`` (the bridge picks the CPU on a host without a GPU)."""
    if not any(ep.name == "prunekit" for ep in entry_points(group="lmms_eval.models")):
        pytest.skip("prunekit's lmms_eval.models entry point is not installed (reinstall prunekit)")
    from prunekit.benchmarks.synthetic import build_split
    from prunekit.tiny import TINY_MODEL_DIR

    data = tmp_path / "data"
    build_split("test", 3, data)
    out, stats = tmp_path / "out", tmp_path / "stats.json"
    env = {**os.environ, "PRUNEKIT_SYNTHETIC_DATA": str(data), "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "prunekit", "--model_args",
           f"pretrained={TINY_MODEL_DIR},base=llava_hf,max_frames_num=16,prunekit_preset=hieravid-30,"
           f"prunekit_stats={stats}",
           "--tasks", "prunekit_synthetic", "--include_path", str(EXAMPLE_TASKS), "--batch_size", "1",
           "--output_path", str(out), "--log_samples", "--verbosity", "DEBUG"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = glob.glob(str(out / "**" / "*_results.json"), recursive=True)
    assert results, "lmms-eval wrote no results file:\n" + run.stderr[-3000:]
    record = json.loads(Path(results[0]).read_text())
    assert record["n-samples"]["prunekit_synthetic"]["effective"] == 3
    assert "exact_match,none" in record["results"]["prunekit_synthetic"]
    samples = glob.glob(str(out / "**" / "*_samples_prunekit_synthetic.jsonl"), recursive=True)
    first = json.loads(Path(samples[0]).read_text().splitlines()[0])
    assert first["input"].endswith("Answer with the option's word from the given choices directly.")
    summary = json.loads(stats.read_text())
    assert summary["prefills"] == 3 and summary["input_retention"] == 0.5


def test_stats_are_written_per_rank_under_several_processes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from prunekit.integrations._lmms_eval_model import stats_path

    monkeypatch.setenv("WORLD_SIZE", "1")
    assert stats_path(tmp_path / "stats.json") == tmp_path / "stats.json"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert stats_path(tmp_path / "stats.json") == tmp_path / "stats.rank1.json"


def test_llava_hf_batches_above_one_are_refused_by_name(llava_dir: Path) -> None:
    with pytest.raises(ConfigError, match="--batch_size 1"):
        bridge.PrunekitModel(base="llava_hf", pretrained=str(llava_dir), batch_size="2", device="cpu")
