"""The bundled tiny video LLMs: LLaVA-OneVision models trained on prunekit's synthetic video-QA suite.

Two ship inside the package and load offline (`TINY_MODELS`):

- ``deep`` (the default, ``TINY_MODEL_DIR``): a 28-layer Qwen2 language model, the depth of Qwen2-7B, so
  that in-LLM strategies (FastV, PDrop, HieraVid, FrameFusion) prune at their published layers;
- ``shallow``: the first, 4-layer model; several times faster, for quick tests.

They exist so that tests, ``prunekit bench`` and the docs can measure what pruning does to a real,
trained model on CPU. Each folder's ``README.md`` (the model card) gives architecture and accuracy.

    model, processor = load_tiny()
    frames = prunekit.video.load("clip.mp4", TINY_NUM_FRAMES)
    inputs = processor(text=build_prompt(question, options), videos=frames, return_tensors="pt")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "TINY_MODELS",
    "DEFAULT_TINY",
    "TINY_MODEL_DIR",
    "TINY_NUM_FRAMES",
    "OPTION_LETTERS",
    "load_tiny",
    "build_prompt",
    "TINY_CHAT_TEMPLATE",
    "uses_tiny_prompt",
]

_ASSETS = Path(__file__).resolve().parent / "assets"
TINY_MODELS = {"deep": _ASSETS / "tiny-video-llm-deep", "shallow": _ASSETS / "tiny-video-llm"}
"""The bundled tiny models by name: ``deep`` (28 LLM layers, the default) and ``shallow`` (4 layers)."""
DEFAULT_TINY = "deep"
TINY_MODEL_DIR = TINY_MODELS[DEFAULT_TINY]
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


def load_tiny(device: str = "cpu", model_dir: str | Path | None = None, name: str = DEFAULT_TINY):
    """``(model, processor)`` of a bundled tiny video LLM, loaded offline, in eval mode, fp32.

    ``name`` picks one of `TINY_MODELS` (``deep`` or ``shallow``); ``model_dir`` overrides it with a
    folder (e.g. a freshly trained model). Weights saved in fp16 load exactly into fp32.
    """
    import torch
    from transformers import AutoProcessor, LlavaOnevisionForConditionalGeneration

    if model_dir is None and name not in TINY_MODELS:
        from prunekit.errors import InvalidInputError

        raise InvalidInputError(f"unknown tiny model {name!r}; use one of {sorted(TINY_MODELS)}, or model_dir=")
    path = Path(model_dir) if model_dir is not None else TINY_MODELS[name]
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"No tiny model at {str(path)!r}: the package assets are missing. Reinstall prunekit, or "
            "train one with `python -m benchmarks.synthetic.training.train` and pass model_dir=."
        )
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    return model.to(device).eval(), processor
