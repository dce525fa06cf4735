"""Synthetic video-QA suite: deterministic clips with answers that need specific moments.

    from prunekit.benchmarks.synthetic import make_item, ensure_split, evaluate
    items = ensure_split("test")          # writes mp4 clips + items.jsonl to the cache once
    scores = evaluate(model, processor, items)
"""

from .generator import (
    ALL_TYPES,
    NUM_FRAMES,
    OPEN_TYPES,
    QUESTION_TYPES,
    SPLIT_SEEDS,
    TRAINING_TYPES,
    Clip,
    Item,
    item_type,
    make_item,
    vocabulary,
)
from .suite import build_split, default_root, ensure_split, load_frames, load_split


def evaluate(*args, **kwargs):
    """See :func:`benchmarks.synthetic.evaluate.evaluate` (imported lazily: it needs torch)."""
    from .evaluate import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


__all__ = [
    "ALL_TYPES", "NUM_FRAMES", "OPEN_TYPES", "QUESTION_TYPES", "SPLIT_SEEDS", "TRAINING_TYPES", "Clip", "Item",
    "item_type", "make_item", "vocabulary", "build_split", "default_root", "ensure_split", "load_frames",
    "load_split", "evaluate",
]
