"""Write the model card (README.md) of a trained tiny video LLM from its training log and evaluations.

    python -m benchmarks.synthetic.training.card --model-dir DIR --test test.json --val val.json [--pruned p.json ...]

``test.json`` / ``val.json`` are written by ``python -m benchmarks.synthetic.evaluate --json``; each
``--pruned`` file is such a result for one pruned run, labelled by its file name.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..generator import QUESTION_TYPES, TRAINING_TYPES

# what each training-only question type asks (the card names those a stage used)
TRAINING_TYPE_NOTES = {
    "object_shape": "\"What shape is the {color} object?\", objects on screen throughout",
    "scene_object_color": "scene_object's clip, asking for the colour instead of the shape",
    "background_color": "scene_object's clip, \"What color is the background in the video?\", one option shown",
    "object_background": "scene_object's clip, \"What color is the background shown with the {color} object?\"",
}
assert tuple(TRAINING_TYPE_NOTES) == TRAINING_TYPES


def _row(label: str, acc: dict) -> str:
    cells = [f"{100 * acc[t]:.0f}" if t in acc else "-" for t in [*QUESTION_TYPES, "overall"]]
    return f"| {label} | " + " | ".join(cells) + " |"


def accuracy_table(rows: dict[str, dict]) -> str:
    head = "| | " + " | ".join(t.replace("_", " ") for t in QUESTION_TYPES) + " | **overall** |"
    sep = "|---" * (len(QUESTION_TYPES) + 2) + "|"
    return "\n".join([head, sep, *(_row(k, v) for k, v in rows.items())])


_LOG_OPTIONS = ("steps", "seed", "lr", "warmup", "aux_weight", "lm_aux_weight", "curriculum_share", "focus_weight")
_TEXT_OPTIONS = ("curriculum_types",)


def training_stages(logs: Path) -> list[dict]:
    """The ``result`` of every training stage, oldest first: ``training_log_stage*.json``, then
    ``training_log.json`` (the stage that wrote the weights), from the folder ``logs``."""
    from .train import TrainConfig

    files = sorted(Path(logs).glob("training_log_stage*.json")) + [Path(logs) / "training_log.json"]
    stages = [json.loads(f.read_text())["result"] for f in files]
    for stage in stages:  # configs from before an option existed ran with its default
        stage["config"] = {**vars(TrainConfig()), **stage["config"]}
    return stages


def stage_line(number: int, stage: dict) -> str:
    """One bullet describing a training stage and the command that reproduces it."""
    cfg = stage["config"]
    options = " ".join(f"--{k.replace('_', '-')} {cfg[k]:g}" for k in _LOG_OPTIONS if k in cfg and cfg[k])
    if cfg.get("curriculum_share"):
        options += "".join(f" --{k.replace('_', '-')} {cfg[k]}" for k in _TEXT_OPTIONS)
    if cfg.get("focus_weight"):
        options += "".join(f" --{k.replace('_', '-')} {cfg[k]}" for k in ("focus_types", "focus_layer", "focus_head"))
    for key in ("teacher", "distill_weight", "distill_temperature", "init_vision", "freeze_vision", "save_dtype"):
        if cfg.get(key) and (key != "save_dtype" or cfg[key] != "float32"):
            options += f" --{key.replace('_', '-')} {cfg[key]}"
    options += "".join(f" --{k.replace('_', '-')} {cfg[k]}" for k in ("text_layers", "text_hidden", "text_heads",
                                                                        "text_kv_heads", "text_mlp")
                       if k in cfg and cfg[k] != getattr(_defaults(), k))
    init = " --init DIR_OF_STAGE_" + str(number - 1) if cfg.get("init") else ""
    start = "from the weights of stage " + str(number - 1) if cfg.get("init") else "from scratch"
    return (f"- Stage {number} ({start}): {cfg['steps']:,} steps of batch {cfg['batch_size']}, "
            f"{stage['train_seconds']:.0f} s on {stage['device']}, final loss {stage['final_loss']:.3f} "
            f"(answer {stage['final_lm_loss']:.3f}). `python -m benchmarks.synthetic.training.train --out DIR{init} "
            f"{options}`")


def _items(evaluation: dict) -> int:
    """Items an evaluation scored (``n`` is a per-type count in `evaluate`'s JSON)."""
    n = evaluation.get("n", 0)
    return n["overall"] if isinstance(n, dict) else n


def _defaults():  # noqa: ANN202 - the trainer's TrainConfig
    from .train import TrainConfig

    return TrainConfig()


def write_card(model_dir: Path, test: dict, val: dict, pruned: dict[str, dict] | None = None,
               notes: str = "", logs: Path | None = None, fresh: dict | None = None) -> str:
    """Write ``model_dir/README.md`` from the training logs (``logs``, default ``model_dir``) and the
    evaluations; returns the text."""
    model_dir = Path(model_dir)
    stages = training_stages(logs or model_dir)
    result = stages[-1]
    cfg = result["config"]
    total_steps = sum(st["config"]["steps"] for st in stages)
    total_seconds = sum(st["train_seconds"] for st in stages)
    extras = []
    used = [t for t in TRAINING_TYPE_NOTES
            if any(st["config"]["curriculum_share"] and t in st["config"]["curriculum_types"] for st in stages)]
    if used:
        extras.append("a share of the training items (see the stages) are training-only questions, never in "
                      "val or test: " + "; ".join(f"`{t}` ({TRAINING_TYPE_NOTES[t]})" for t in used))
    if any(st["config"]["lm_aux_weight"] for st in stages):
        extras.append("in the stages with `--lm-aux-weight`, a second linear head classifies the same labels from "
                      "the language model's last hidden states at the visual tokens")
    if any(st["config"]["focus_weight"] for st in stages):
        extras.append("in the stages with `--focus-weight`, the attention of the position that predicts the answer "
                      "is supervised for the questions about one object (`--focus-types`): a loss of `-log` of "
                      "the attention mass that one head of the language model (`--focus-layer`, `--focus-head`) "
                      "puts on that object's visual tokens (known from the generator), so the model learns to look the "
                      "object up; the saved model is the plain LLaVA-OV class and answers without any of it")
    if any(st["config"].get("distill_weight") and st["config"].get("teacher") for st in stages):
        extras.append("in the stages with `--teacher`, a distillation loss (`--distill-weight` x the KL divergence "
                      "from the teacher's answer distribution at temperature `--distill-temperature`, scaled by T^2) "
                      "pulls the answers towards those of the teacher model; `--init-vision` copies the teacher's "
                      "vision tower and projector and `--freeze-vision 1` keeps them fixed")
    extra = "".join(f"\n- {e[0].upper()}{e[1:]}." for e in extras)
    config = json.loads((model_dir / "config.json").read_text())
    size_mb = (model_dir / "model.safetensors").stat().st_size / 2**20
    rows = {f"val ({_items(val)} items)": val["accuracy"], f"test ({_items(test)} items)": test["accuracy"]}
    if fresh is not None:  # a split generated with a seed the suite does not use, held out from training and tuning
        rows[f"fresh ({_items(fresh)} items)"] = fresh["accuracy"]
    dtype = "fp16" if cfg.get("save_dtype") == "float16" else "bf16" if cfg.get("save_dtype") == "bfloat16" else "fp32"
    loads = "" if dtype == "fp32" else " (they load exactly into fp32, the dtype `load_tiny` runs in)"
    pruned_rows = {"unpruned": test["accuracy"], **{k: v["accuracy"] for k, v in (pruned or {}).items()}}
    text = f"""# prunekit tiny video LLM

A {result['parameters'] / 1e6:.2f}M-parameter `LlavaOnevisionForConditionalGeneration` trained on
prunekit's synthetic video-QA suite (`benchmarks/synthetic`). It exists so that tests, `prunekit bench`
and the docs can show what visual-token pruning does to a *trained* video LLM, offline, on a CPU, in
seconds. It knows nothing outside the suite.

## Architecture
- Vision: SigLIP, {cfg['vision_layers']} layers, hidden {cfg['vision_hidden']}, {cfg['vision_heads']} heads,
  MLP {cfg['vision_mlp']}; 64x64 frames, 8x8 patches -> 8x8 = 64 patches per frame.
- Projector: LLaVA-OV MLP (GELU), then LLaVA-OV bilinear 2x2 pooling -> **16 tokens per frame** (4x4).
- Video layout: 16 frames -> 16 x 16 = 256 visual tokens + 1 newline = **257 `<video>` tokens**.
- Language model: Qwen2, {cfg['text_layers']} layers, hidden {cfg['text_hidden']}, {cfg['text_heads']} heads
  ({cfg['text_kv_heads']} KV heads), MLP {cfg['text_mlp']}, RoPE theta 1e4,
  vocabulary {config['text_config']['vocab_size']}.
- Tokenizer: `tokenizers` WordLevel (the suite's words) in `PreTrainedTokenizerFast`; processor
  `LlavaOnevisionProcessor` (resize to 64x64, rescale, normalise with mean = std = 0.5).
- Weights: {dtype} safetensors, {size_mb:.1f} MB{loads}. Everything loads with `from_pretrained(dir)`, offline.

## Use
```python
from prunekit.tiny import load_tiny, build_prompt
from prunekit import video
model, processor = load_tiny()
frames = video.load("clip.mp4", 16)
inputs = processor(text=build_prompt(question, options), videos=frames, return_tensors="pt")
```
The prompt is LLaVA-OV/lmms-eval style (`<|im_start|>user\\n<video>\\nQUESTION\\nA. ...\\nD. ...\\n...`).
The model answers with **one word**: the chosen option's word for multiple choice, a free word for
open-ended questions. `benchmarks/synthetic/evaluate.py` scores multiple choice by the logits of the
four option words (each is one token, so this is their log-likelihood) and open-ended questions by
greedy generation.

## Training
- Data: clips generated on the fly (`benchmarks/synthetic/generator.py`, split `train`, seed space
  disjoint from `val`/`test`), {sum(st['items_generated'] for st in stages):,} generated,
  {sum(st['samples_seen'] for st in stages):,} samples seen in {len(stages)} stage(s)
  (a device-resident ring buffer of {cfg['pool_capacity']:,} items, refreshed during training).
- Loss: cross-entropy on the answer word and the end token, plus {cfg['aux_weight']} x an auxiliary per-token
  loss (a linear head, not saved, classifies each visual token's object colour, shape, size class and
  background colour from the generator's labels; the object heads average half over all tokens and
  half over object tokens). In {100 * cfg['drop_aug_prob']:.0f}% of samples up to
  {100 * cfg['drop_aug_max']:.0f}% of the object-free visual tokens are masked out (positions kept).{extra}
- Optimiser: AdamW (0.9, 0.98), cosine schedule to 5% of the peak lr, weight decay {cfg['weight_decay']},
  bf16 autocast; {total_steps:,} steps, {total_seconds:.0f} s of training in all.
{chr(10).join(stage_line(i + 1, st) for i, st in enumerate(stages))}
- Hardware: {result['device']}; torch {result['torch']}, transformers {result['transformers']}.
- Final training loss {result['final_loss']:.3f} (answer {result['final_lm_loss']:.3f}, auxiliary
  {result['final_aux_loss']:.3f}). Curve of the last stage: `loss.png`; logs (source tree, not the wheel):
  `{(logs or "benchmarks/results/tiny-model-training")}`.
- Training replaces the bilinear 2x2 pooling by the identical 2x2 average (torch's CUDA bilinear
  kernel took 103 ms of a 145 ms step); the saved model is the unchanged LLaVA-OV class.

## Accuracy (%), clips decoded from mp4 through `prunekit.video.load`
Chance is 25% for multiple choice; open-ended answers are exact-match words.

{accuracy_table(rows)}

## Pruning sensitivity (test split, 10% of visual tokens kept before the LLM)

{accuracy_table(pruned_rows)}

## Limits
{notes}
- Synthetic world only: 8 object colours, 4 shapes, 8 background colours, 64x64 frames, 16 frames.
- Single-token answers; the vocabulary holds only the suite's words (anything else is `[UNK]`).
- Results are for transformers {result['transformers']} (LLaVA-OV class); other versions may load it but
  are untested.
"""
    (model_dir / "README.md").write_text(text)
    return text


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Write the tiny model's card from its evaluations.")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--test", type=Path, required=True)
    p.add_argument("--val", type=Path, required=True)
    p.add_argument("--pruned", type=Path, nargs="*", default=[])
    p.add_argument("--notes", type=Path, default=None, help="markdown bullet lines for the Limits section")
    p.add_argument("--logs", type=Path, default=None, help="folder of the training logs (default: --model-dir)")
    p.add_argument("--fresh", type=Path, default=None, help="evaluation on the held-out 'fresh' split")
    args = p.parse_args(argv)
    load = lambda path: json.loads(path.read_text())  # noqa: E731
    pruned = {path.stem: load(path) for path in args.pruned}
    notes = args.notes.read_text().strip() if args.notes else ""
    write_card(args.model_dir, load(args.test), load(args.val), pruned, notes, args.logs,
               load(args.fresh) if args.fresh else None)


if __name__ == "__main__":
    main()
