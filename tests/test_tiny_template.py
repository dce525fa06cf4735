"""Every bundled tiny model ships a chat template that renders exactly the prompt it was trained on, so
chat-based tools (lmms-eval's ``llava_hf``, ``apply_chat_template``) prompt it correctly (issue 23)."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoProcessor, AutoTokenizer

from prunekit.tiny import TINY_CHAT_TEMPLATE, TINY_MODEL_DIR, build_prompt, uses_tiny_prompt

BUNDLED = sorted(p.parent for p in TINY_MODEL_DIR.parent.glob("*/config.json"))
QUESTION, OPTIONS = "What color is the object?", ["red", "green", "blue", "yellow"]


def _text(options: list[str] | None) -> str:
    """What ``build_prompt`` puts between the video placeholder and the end of the user turn."""
    return build_prompt(QUESTION, options).split("<video>\n", 1)[1].split("<|im_end|>", 1)[0]


def test_the_bundled_model_folder_is_found() -> None:
    assert TINY_MODEL_DIR in BUNDLED


@pytest.mark.parametrize("folder", BUNDLED, ids=lambda p: p.name)
@pytest.mark.parametrize("options", [OPTIONS, None], ids=["multiple-choice", "open"])
def test_bundled_model_chat_template_renders_the_training_prompt(folder: Path, options: list[str] | None) -> None:
    assert (folder / TINY_CHAT_TEMPLATE).is_file(), f"copy {TINY_MODEL_DIR / TINY_CHAT_TEMPLATE} into {folder}"
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    structured = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": _text(options)}]}]
    plain = [{"role": "user", "content": "<video>\n" + _text(options)}]  # how lmms-eval's llava_hf sends it
    expected = build_prompt(QUESTION, options)
    assert processor.apply_chat_template(structured, add_generation_prompt=True) == expected
    assert tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=True) == expected
    assert uses_tiny_prompt(processor)  # the accuracy harness keeps scoring it with the tiny prompt
