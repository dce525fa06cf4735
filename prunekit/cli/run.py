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

from prunekit.cli import checks
from prunekit.errors import PrunekitError


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
    p.add_argument("--frames", type=checks.positive_int, default=None,
                   help="frames sampled uniformly (default: 16 tiny, 32 real)")
    p.add_argument("--prompt", choices=("auto", "tiny", "chat"), default="auto",
                   help="prompt format with --model (auto: the model's chat template; tiny: prunekit's tiny "
                        "model prompt, for checkpoints without a template)")
    p.add_argument("--preset", default="hieravid-30",
                   help="pruning preset (see 'prunekit presets') or a .json/.yaml config file")
    p.add_argument("--budget", type=float, default=None, help="retention in (0, 1]; overrides the preset's")
    p.add_argument("--mode", choices=("layer_average", "input"), default="layer_average",
                   help="how --budget is measured")
    p.add_argument("--max-new-tokens", type=checks.positive_int, default=16)
    p.add_argument("--compare", action="store_true", help="also run the unpruned model and show both")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--adapter", default="auto", help="adapter name (default: recognise the model)")
    checks.add_loading_args(p)
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Handler of ``prunekit run``."""
    import prunekit
    from prunekit import Budget

    device = checks.resolve_device(args.device)  # everything that can be checked is, before a model loads
    checks.check_pipeline(args.preset, args.budget, args.mode)
    checks.split_options(args.options)
    if args.model is not None:
        if args.video is None or args.question is None:
            raise PrunekitError("with --model, also pass --video FILE and --question TEXT.")
        checks.check_model_name(args.model)
    if args.video is not None and not Path(args.video).is_file():
        raise PrunekitError(f"--video {args.video!r}: no such file.")
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
        path, question, options, args.correct = _demo_clip(args)
        options = options if args.question is None else checks.split_options(args.options)
        prompt = build_prompt(question, options)
    else:
        from prunekit.tiny import build_prompt

        def check_prompt(processor) -> None:  # noqa: ANN001 - before the weights load
            if args.prompt == "auto" and not _has_template(processor):
                raise PrunekitError(f"{args.model!r} has no chat template; pass --prompt tiny (prunekit's tiny-model "
                                    "prompt) or add a chat_template.jinja to the checkpoint folder.")

        model, processor = checks.load_pretrained(args.model, device, allow_pickle=args.allow_pickle,
                                           check_processor=check_prompt)
        frames_n = args.frames or 32
        path, question = args.video, args.question
        style = "tiny" if args.prompt == "tiny" else "chat"
        prompt = (_chat_prompt(processor, question) if style == "chat"
                  else build_prompt(question, checks.split_options(args.options)))
    frames = video.load(path, frames_n)
    if args.video is None and args.model is None:  # the generated demo clip is not kept
        shutil.rmtree(Path(path).parent, ignore_errors=True)
    return model, processor, prompt, frames


def _demo_clip(args: argparse.Namespace) -> tuple[str, str, list[str] | None, str | None]:
    """A generated clip (written as mp4), its question, options and correct answer, unless the user gave a video."""
    if args.video is not None:
        if args.question is None:
            raise PrunekitError("with --video, also pass --question TEXT (and --options for multiple choice).")
        return args.video, args.question, None, None
    from prunekit import video
    from prunekit.demo import demo_clip

    clip = demo_clip()
    path = Path(tempfile.mkdtemp(prefix="prunekit-demo-")) / "clip.mp4"
    video.write(path, clip.frames, fps=8)
    correct = clip.answer if args.question is None else None  # the demo clip's own question only
    return str(path), clip.question, list(clip.options) if clip.options else None, correct


def _has_template(processor) -> bool:  # noqa: ANN001
    return bool(getattr(processor, "chat_template", None) or getattr(getattr(processor, "tokenizer", None),
                                                                   "chat_template", None))


def _chat_prompt(processor, question: str) -> str:  # noqa: ANN001
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def _answer(model, processor, inputs, max_new_tokens: int, handle=None) -> Answer:  # noqa: ANN001
    import torch

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
    correct = getattr(args, "correct", None)
    print(f"question: {question}")
    if correct is not None:
        print(f"correct answer: {correct!r}")
    if baseline is not None:
        print(f"unpruned answer: {baseline.text!r}{_verdict(baseline.text, correct)}  (prefill "
              f"{baseline.prefill_ms:.1f} ms, generate {baseline.total_ms:.1f} ms)")
    print(f"{args.preset} answer: {pruned.text!r}{_verdict(pruned.text, correct)}  (prefill "
          f"{pruned.prefill_ms:.1f} ms, generate {pruned.total_ms:.1f} ms)")
    stats = pruned.stats
    if stats is not None:
        sample = stats.samples[0]
        stages = ", ".join(f"layer {layer}: {keep}" for layer, keep in sample.stages) or "none"
        print(f"visual tokens: {sample.n_visual} in {sample.segments} segment(s); kept per stage: {stages}")
        print(f"retention: input {stats.input_retention:.1%}, layer-average {stats.layer_average_retention:.1%}; "
              f"prefill FLOPs ratio {stats.flops_ratio:.3f}")
    if baseline is not None and correct is not None:
        print("(one clip says little: 'prunekit bench' measures accuracy over 270 clips of the synthetic suite)")
    if baseline is not None:
        print(f"prefill speed-up: {baseline.prefill_ms / max(pruned.prefill_ms, 1e-9):.2f}x")


def _verdict(answer: str, correct: str | None) -> str:
    """`` (right)`` / `` (wrong)`` when the correct answer is known: a wrong answer is shown, never hidden."""
    if correct is None:
        return ""
    return " (right)" if answer.strip().strip(".").lower() == correct.strip().lower() else " (wrong)"
