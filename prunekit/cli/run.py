"""``prunekit run``: answer a question about a video with a pruned model, and show what pruning did.

With no arguments it runs offline on the bundled tiny video LLM and a generated clip of the
synthetic suite: a real pipeline on a real forward pass.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from prunekit.errors import PrunekitError, UnsupportedModelError


@dataclass
class Answer:
    """One generation: the text, prunekit's stats and timings."""

    text: str
    prefill_ms: float
    total_ms: float
    stats: object | None


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add ``prunekit run``."""
    p = subparsers.add_parser(
        "run", help="answer a question about a video with a pruned model",
        description="Answer a question about a video with a pruned model. Without --model/--video it uses the "
                    "bundled tiny video LLM and a generated clip (offline).")
    p.add_argument("--model", help="Hugging Face id or local path (default: the bundled tiny model)")
    p.add_argument("--video", help="video file (default: a generated clip of the synthetic suite)")
    p.add_argument("--question", help="question about the video")
    p.add_argument("--options", help="multiple-choice options separated by '|' (tiny model prompts)")
    p.add_argument("--frames", type=int, default=None, help="frames sampled uniformly (default: 16 tiny, 32 real)")
    p.add_argument("--preset", default="hieravid-30", help="pruning preset (see 'prunekit presets')")
    p.add_argument("--budget", type=float, default=None, help="retention in (0, 1]; overrides the preset's")
    p.add_argument("--mode", choices=("layer_average", "input"), default="layer_average",
                   help="how --budget is measured")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--compare", action="store_true", help="also run the unpruned model and show both")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--adapter", default="auto", help="adapter name (default: recognise the model)")
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Handler of ``prunekit run``."""
    import prunekit
    from prunekit import Budget

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    model, processor, prompt, frames = _prepare(args, device)
    budget = Budget(args.budget, args.mode) if args.budget is not None else None
    inputs = processor(text=prompt, videos=[frames], return_tensors="pt").to(device)
    baseline = _answer(model, processor, inputs, args.max_new_tokens) if args.compare else None
    with prunekit.apply(model, args.preset, budget=budget, adapter=args.adapter) as handle:
        pruned = _answer(model, processor, inputs, args.max_new_tokens, handle)
    _report(args, prompt, pruned, baseline)
    return 0


def _prepare(args: argparse.Namespace, device: str):  # noqa: ANN202 - (model, processor, prompt, frames)
    from prunekit import video

    if args.model is None:
        from prunekit.tiny import TINY_NUM_FRAMES, build_prompt, load_tiny

        model, processor = load_tiny(device)
        frames_n = args.frames or TINY_NUM_FRAMES
        path, question, options = _demo_clip(args)
        options = options if args.question is None else (args.options.split("|") if args.options else None)
        prompt = build_prompt(question, options)
    else:
        if args.video is None or args.question is None:  # checked before anything is loaded
            raise PrunekitError("with --model, also pass --video FILE and --question TEXT.")
        model, processor = _load_pretrained(args.model, device)
        frames_n = args.frames or 32
        path, question = args.video, args.question
        prompt = _chat_prompt(processor, question)
    frames = video.load(path, frames_n)
    if args.video is None and args.model is None:  # the generated demo clip is not kept
        shutil.rmtree(Path(path).parent, ignore_errors=True)
    return model, processor, prompt, frames


def _demo_clip(args: argparse.Namespace) -> tuple[str, str, list[str] | None]:
    """A generated clip (written as mp4) and its question, unless the user gave a video."""
    if args.video is not None:
        if args.question is None:
            raise PrunekitError("with --video, also pass --question TEXT (and --options for multiple choice).")
        return args.video, args.question, None
    from prunekit import video
    from prunekit.demo import demo_clip

    clip = demo_clip()
    path = Path(tempfile.mkdtemp(prefix="prunekit-demo-")) / "clip.mp4"
    video.write(path, clip.frames, fps=8)
    return str(path), clip.question, list(clip.options) if clip.options else None


def _load_pretrained(name: str, device: str):  # noqa: ANN202
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(name)
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype, attn_implementation="sdpa")
    except OSError as exc:
        raise PrunekitError(f"could not load {name!r}: {exc}") from None
    except ValueError as exc:
        raise UnsupportedModelError(f"{name!r} is not a video LLM transformers can load: {exc}") from None
    return model.to(device).eval(), processor


def _chat_prompt(processor, question: str) -> str:  # noqa: ANN001
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def _answer(model, processor, inputs, max_new_tokens: int, handle=None) -> Answer:  # noqa: ANN001
    with torch.no_grad():
        start = time.perf_counter()
        model(**inputs)  # one prefill, timed on its own
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        total = time.perf_counter() - start
    text = processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
    return Answer(text.strip(), prefill * 1e3, total * 1e3, handle.stats() if handle is not None else None)


def _report(args: argparse.Namespace, prompt: str, pruned: Answer, baseline: Answer | None) -> None:
    question = prompt.split("<video>")[-1].split("<|im_end|>")[0].strip()
    print(f"question: {question}")
    if baseline is not None:
        print(f"unpruned answer: {baseline.text!r}  (prefill {baseline.prefill_ms:.1f} ms, "
              f"generate {baseline.total_ms:.1f} ms)")
    print(f"{args.preset} answer: {pruned.text!r}  (prefill {pruned.prefill_ms:.1f} ms, "
          f"generate {pruned.total_ms:.1f} ms)")
    stats = pruned.stats
    if stats is not None:
        sample = stats.samples[0]
        stages = ", ".join(f"layer {layer}: {keep}" for layer, keep in sample.stages) or "none"
        print(f"visual tokens: {sample.n_visual} in {sample.segments} segment(s); kept per stage: {stages}")
        print(f"retention: input {stats.input_retention:.1%}, layer-average {stats.layer_average_retention:.1%}; "
              f"prefill FLOPs ratio {stats.flops_ratio:.3f}")
    if baseline is not None:
        print(f"prefill speed-up: {baseline.prefill_ms / max(pruned.prefill_ms, 1e-9):.2f}x")
