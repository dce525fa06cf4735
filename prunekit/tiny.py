"""The bundled tiny video LLM: a LLaVA-OneVision model trained on prunekit's synthetic video-QA suite.

It loads offline from ``TINY_MODEL_DIR`` (shipped inside the package) and exists so that tests,
``prunekit bench`` and the docs can measure what pruning does to a real, trained model on CPU in
seconds. See ``TINY_MODEL_DIR / "README.md"`` (the model card) for its architecture and accuracy.

    model, processor = load_tiny()
    frames = prunekit.video.load("clip.mp4", TINY_NUM_FRAMES)
    inputs = processor(text=build_prompt(question, options), videos=frames, return_tensors="pt")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "TINY_MODEL_DIR",
    "TINY_NUM_FRAMES",
    "OPTION_LETTERS",
    "load_tiny",
    "build_prompt",
    "TINY_CHAT_TEMPLATE",
    "uses_tiny_prompt",
]

TINY_MODEL_DIR = Path(__file__).resolve().parent / "assets" / "tiny-video-llm"
TINY_NUM_FRAMES = 16
OPTION_LETTERS = ("A", "B", "C", "D")
TINY_CHAT_TEMPLATE = "chat_template.jinja"
"""The chat template shipped in every bundled tiny model folder; it renders exactly `build_prompt`'s text,
so chat-based tools (lmms-eval's ``llava_hf``, ``processor.apply_chat_template``) prompt it as it was trained."""
_TEMPLATE_MARK = "prunekit-tiny chat template"

_MC_INSTRUCTION = "Answer with the option's word from the given choices directly."
_OPEN_INSTRUCTION = "Answer the question using a single word."


def build_prompt(question: str, options: Sequence[str] | None = None) -> str:
    """The chat prompt the tiny model was trained with (LLaVA-OneVision / lmms-eval style).

    The options (at most four) are listed as ``A. word`` ... ``D. word``, lmms-eval style; the tiny model
    answers with the chosen option's word (every option of the synthetic suite is one token, so scoring
    compares the logits of the option words, see ``benchmarks/synthetic/evaluate.py``). Without options
    it answers with one word. The prompt holds one ``<video>`` placeholder, which the processor expands
    to the video's tokens.
    """
    lines = ["<|im_start|>user", "<video>", question.strip()]
    if options is not None:
        if not 1 <= len(options) <= len(OPTION_LETTERS):
            raise ValueError(f"between 1 and {len(OPTION_LETTERS)} options expected, got {len(options)}")
        lines += [f"{letter}. {text}" for letter, text in zip(OPTION_LETTERS, options)]
        lines.append(_MC_INSTRUCTION)
    else:
        lines.append(_OPEN_INSTRUCTION)
    return "\n".join(lines) + "<|im_end|>\n<|im_start|>assistant\n"


def uses_tiny_prompt(processor) -> bool:  # noqa: ANN001 - a transformers processor
    """Whether ``processor`` has no chat template or the tiny model's (whose prompts are `build_prompt`'s)."""
    template = getattr(processor, "chat_template", None)
    return not template or (isinstance(template, str) and _TEMPLATE_MARK in template)


def load_tiny(device: str = "cpu", model_dir: str | Path | None = None):
    """``(model, processor)`` of the bundled tiny video LLM, loaded offline, in eval mode, fp32.

    ``model_dir`` overrides the bundled directory (e.g. a freshly trained one).
    """
    from transformers import AutoProcessor, LlavaOnevisionForConditionalGeneration

    path = Path(model_dir) if model_dir is not None else TINY_MODEL_DIR
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"No tiny model at {str(path)!r}: the package assets are missing. Reinstall prunekit, or "
            "train one with `python -m benchmarks.synthetic.training.train` and pass model_dir=."
        )
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(path, local_files_only=True)
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    return model.to(device).eval(), processor
