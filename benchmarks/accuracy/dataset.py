"""Video-QA items for the accuracy harness, and loaders for a JSONL manifest and the synthetic suite.

A manifest is a JSONL file, one item per line::

    {"id": "q1", "video": "clips/q1.mp4", "question": "What happens first?",
     "options": ["a dog runs", "a cat jumps"], "answer": "B", "category": "order"}
    {"id": "q2", "video": "clips/q2.mp4", "question": "What color is the car?", "answer": "red"}

``video`` is relative to the manifest's folder (or absolute). With ``options`` the item is multiple
choice and ``answer`` is a letter (``"B"``) or the text of one option; without, it is open-ended and
``answer`` is the expected word(s). ``type`` (``multiple_choice`` / ``open_ended``) may be given
explicitly; ``category`` is free text used for per-category accuracy.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from prunekit.errors import InvalidInputError

__all__ = ["LETTERS", "QAItem", "ItemType", "load_manifest", "load_synthetic", "write_manifest",
           "dataset_fingerprint"]

LETTERS = string.ascii_uppercase
ItemType = Literal["multiple_choice", "open_ended"]


@dataclass(frozen=True)
class QAItem:
    """One question about one video: a multiple-choice letter or an open-ended word to predict.

    Exactly one of ``video`` (a file path) and ``frames`` (``uint8 [F, H, W, 3]``) is normally set.
    """

    id: str
    question: str
    answer: str
    options: tuple[str, ...] | None = None
    video: str | None = None
    frames: np.ndarray | None = field(default=None, compare=False, repr=False)
    category: str = ""

    def __post_init__(self) -> None:
        if self.options is not None:
            object.__setattr__(self, "options", tuple(self.options))
            if not 2 <= len(self.options) <= len(LETTERS):
                raise InvalidInputError(f"item {self.id!r}: between 2 and {len(LETTERS)} options expected, "
                                        f"got {len(self.options)}.")
            if self.answer not in self.letters:
                raise InvalidInputError(f"item {self.id!r}: answer {self.answer!r} is not one of the option "
                                        f"letters {''.join(self.letters)}.")
        if self.video is None and self.frames is None:
            raise InvalidInputError(f"item {self.id!r} has neither a video path nor frames.")

    @property
    def type(self) -> ItemType:
        """``multiple_choice`` when the item has options, else ``open_ended``."""
        return "multiple_choice" if self.options is not None else "open_ended"

    @property
    def letters(self) -> tuple[str, ...]:
        """The option letters ``A, B, ...`` (empty for open-ended items)."""
        return tuple(LETTERS[: len(self.options)]) if self.options is not None else ()


def _answer_letter(raw: object, options: Sequence[str], item_id: str) -> str:
    """The letter of a manifest answer given as a letter, an option's text or a 0-based index."""
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(options):
        return LETTERS[raw]
    text = str(raw).strip()
    letters = LETTERS[: len(options)]
    if len(text) == 1 and text.upper() in letters:
        return text.upper()
    if len(text) >= 2 and text[0].upper() in letters and text[1] in ".):":  # "B. a cat jumps"
        return text[0].upper()
    matches = [i for i, opt in enumerate(options) if opt.strip().lower() == text.lower()]
    if len(matches) == 1:
        return LETTERS[matches[0]]
    raise InvalidInputError(f"item {item_id!r}: answer {raw!r} is neither an option letter "
                            f"({letters}) nor the text of exactly one option.")


def _item_from_json(d: dict, base: Path, line: int) -> QAItem:
    missing = [k for k in ("question", "answer", "video") if k not in d]
    if missing:
        raise InvalidInputError(f"manifest line {line}: missing field(s) {', '.join(missing)}.")
    item_id = str(d.get("id", line))
    options = d.get("options")
    kind = d.get("type")
    if kind not in (None, "multiple_choice", "open_ended"):
        raise InvalidInputError(f"manifest line {line}: type must be 'multiple_choice' or 'open_ended', "
                                f"got {kind!r}.")
    if kind == "multiple_choice" and not options:
        raise InvalidInputError(f"manifest line {line}: a multiple-choice item needs 'options'.")
    if kind == "open_ended":
        options = None
    answer = _answer_letter(d["answer"], options, item_id) if options else str(d["answer"])
    video = Path(os.path.expanduser(str(d["video"])))
    video = video if video.is_absolute() else base / video
    return QAItem(id=item_id, question=str(d["question"]), answer=answer,
                  options=tuple(str(o) for o in options) if options else None, video=str(video),
                  category=str(d.get("category", "")))


def load_manifest(path: str | os.PathLike) -> list[QAItem]:
    """Items of a JSONL manifest (see the module docstring); ``video`` paths made absolute."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"manifest {str(path)!r} does not exist.")
    items = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"manifest line {line_no}: malformed JSON ({exc.msg}).") from None
        items.append(_item_from_json(d, path.parent.resolve(), line_no))
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        raise InvalidInputError(f"manifest {str(path)!r} has duplicate ids.")
    return items


def write_manifest(items: Sequence[QAItem], path: str | os.PathLike) -> Path:
    """Write ``items`` (with video paths) as a JSONL manifest that `load_manifest` reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for it in items:
        if it.video is None:
            raise InvalidInputError(f"item {it.id!r} has no video file; a manifest stores paths only.")
        d = {"id": it.id, "video": it.video, "question": it.question, "answer": it.answer, "type": it.type}
        if it.options is not None:
            d["options"] = list(it.options)
        if it.category:
            d["category"] = it.category
        lines.append(json.dumps(d) + "\n")
    path.write_text("".join(lines))
    return path


def load_synthetic(split: str = "test", n: int | None = None, root: str | os.PathLike | None = None) -> list[QAItem]:
    """The first ``n`` items of the bundled synthetic suite (clips generated and cached on first use).

    A cache written by an older version of the generator (its first items differ from what
    ``make_item`` gives now) is rebuilt.
    """
    from ..synthetic import build_split, ensure_split, load_split, make_item

    items = ensure_split(split, n, root)
    fresh = [make_item(split, i)[0] for i in range(min(len(items), 9))]  # one item per question type
    if any((a.question, a.options, a.answer) != (b.question, b.options, b.answer) for a, b in zip(items, fresh)):
        build_split(split, len(items), root)  # the cache was written by an older generator
        items = load_split(split, root)[: len(items)]
    return [QAItem(id=it.id, question=it.question, answer=it.answer, options=it.options, video=it.video,
                   category=it.type) for it in items]


def dataset_fingerprint(items: Sequence[QAItem]) -> str:
    """Short hash of the questions, options and answers (not of the pixels)."""
    blob = json.dumps([[it.id, it.question, it.options, it.answer] for it in items], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
