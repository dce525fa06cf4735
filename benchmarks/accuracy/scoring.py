"""Prompts and scoring: multiple choice by answer-token log-likelihood, open-ended by exact match.

Multiple choice: one forward pass over the prompt (which lists the options as ``A. ...``, ``B. ...``).
At the position of the first answer token, the logits of the item's candidate answer tokens are
log-softmaxed over those candidates only; that normalised distribution is the model's answer
distribution (what the KL fidelity metric compares) and its argmax is the prediction. The
candidates are either

* ``letter`` (default for chat models): the option letters ``A``, ``B``, ... as the tokenizer encodes
  them alone, for prompts that ask for the letter (lmms-eval's video MC instruction); or
* ``option``: the first token of each option's text, for models that answer with the option itself
  (the bundled tiny model: every option of the synthetic suite is one token, so this is the exact
  log-likelihood of each option).

Scoring one forward pass of the prompt alone keeps pruning identical to generation (the relevance
query is the prompt's last token) and never fails to parse an answer.

Open-ended: greedy ``generate``; the prediction is the first word(s) of the answer, lower-cased with
surrounding punctuation stripped (as many words as the reference answer has), and it is correct when
equal to the normalised reference.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Literal

import torch

from prunekit.errors import UnsupportedModelError

from .dataset import LETTERS, QAItem

__all__ = ["PromptStyle", "McAnswer", "MC_INSTRUCTION", "OPEN_INSTRUCTION", "resolve_style", "resolve_mc_answer",
           "scoring_description", "build_prompt", "letter_token_ids", "option_token_ids", "normalize_answer",
           "match_open", "option_logprobs", "generate_text"]

PromptStyle = Literal["auto", "tiny", "chat"]
McAnswer = Literal["auto", "letter", "option"]
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
OPEN_INSTRUCTION = "Answer the question using a single word or phrase."


def resolve_style(processor, style: PromptStyle = "auto") -> Literal["tiny", "chat"]:  # noqa: ANN001
    """``tiny`` (prunekit's tiny model prompt) when the processor has no chat template or the tiny model's
    (which renders the same prompt), else ``chat``."""
    if style != "auto":
        return style
    from prunekit.tiny import uses_tiny_prompt

    return "tiny" if uses_tiny_prompt(processor) else "chat"


def resolve_mc_answer(style: Literal["tiny", "chat"], mc_answer: McAnswer = "auto") -> Literal["letter", "option"]:
    """What a multiple-choice answer is: ``letter`` for chat prompts; for the tiny prompt, what it asks for."""
    if mc_answer != "auto":
        return mc_answer
    if style == "chat":
        return "letter"
    from prunekit.tiny import build_prompt as tiny_prompt

    return "letter" if "letter" in tiny_prompt("q", ["a", "b"]).lower() else "option"


def scoring_description(mc_answer: Literal["letter", "option"]) -> str:
    """One line for result records."""
    what = "option letters" if mc_answer == "letter" else "first tokens of the option texts"
    return f"multiple choice: log-likelihood of the {what} at the first answer position, softmax over the item's " \
           "options; open-ended: exact match of the greedy answer's first word(s)"


def build_prompt(item: QAItem, processor, style: Literal["tiny", "chat"]) -> str:  # noqa: ANN001
    """The text prompt for ``item``, with one video placeholder."""
    if style == "tiny":
        from prunekit.tiny import build_prompt as tiny_prompt

        return tiny_prompt(item.question, item.options)
    lines = [item.question.strip()]
    if item.options is not None:
        lines += [f"{letter}. {text}" for letter, text in zip(item.letters, item.options)]
        lines.append(MC_INSTRUCTION)
    else:
        lines.append(OPEN_INSTRUCTION)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "\n".join(lines)}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def letter_token_ids(tokenizer, n: int) -> list[int]:  # noqa: ANN001
    """Token id of each of the first ``n`` option letters, encoded alone; each must be one known token."""
    ids = []
    for letter in LETTERS[:n]:
        enc = tokenizer.encode(letter, add_special_tokens=False)
        if len(enc) != 1 or enc[0] == tokenizer.unk_token_id:
            raise UnsupportedModelError(
                f"the tokenizer encodes the option letter {letter!r} as {enc}, not as one known token; "
                "multiple-choice scoring by letter log-likelihood needs single-token letters.")
        ids.append(enc[0])
    if len(set(ids)) != len(ids):
        raise UnsupportedModelError(f"option letters share token ids: {ids}.")
    return ids


def option_token_ids(tokenizer, options: Sequence[str]) -> list[int]:  # noqa: ANN001
    """First token of each option's text (encoded alone); they must differ between the options."""
    ids = []
    for text in options:
        enc = tokenizer.encode(text.strip(), add_special_tokens=False)
        if not enc or enc[0] == tokenizer.unk_token_id:
            raise UnsupportedModelError(f"option {text!r} has no known first token; score by letter instead.")
        ids.append(enc[0])
    if len(set(ids)) != len(ids):
        raise UnsupportedModelError(f"options {list(options)} share a first token; score by letter instead "
                                    "(--mc-answer letter with a prompt that asks for the letter).")
    return ids


_PUNCT = string.punctuation + "“”‘’"


def normalize_answer(text: str) -> str:
    """Lower-case, surrounding punctuation stripped from every word, whitespace collapsed."""
    words = (w.strip(_PUNCT) for w in re.split(r"\s+", text.strip().lower()))
    return " ".join(w for w in words if w)


def match_open(generated: str, answer: str) -> tuple[str, bool]:
    """``(prediction, correct)``: the first as-many-words-as-the-answer of ``generated``, exact match."""
    reference = normalize_answer(answer)
    n = max(1, len(reference.split()))
    prediction = " ".join(normalize_answer(generated).split()[:n])
    return prediction, prediction == reference


@torch.no_grad()
def option_logprobs(model, inputs: dict, candidates: Sequence[Sequence[int]]) -> list[list[float]]:  # noqa: ANN001
    """Per sample: log-softmax over its candidate answer tokens of the next-token logits after the prompt.

    Prompts must be left-padded, so the last position is every sample's first answer position.
    """
    logits = model(**inputs, logits_to_keep=1).logits[:, -1].float()  # [B, V]
    return [torch.log_softmax(row[torch.as_tensor(list(ids), device=row.device)], dim=-1).tolist()
            for row, ids in zip(logits, candidates)]


@torch.no_grad()
def generate_text(model, tokenizer, inputs: dict, max_new_tokens: int) -> list[str]:  # noqa: ANN001
    """Greedy continuation of each (left-padded) prompt, special tokens removed."""
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
