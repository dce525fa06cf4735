"""Write a split of the synthetic suite to disk (real mp4 clips plus ``items.jsonl``) and read it back."""

from __future__ import annotations

import json
import os
from pathlib import Path

from prunekit import video

from .generator import NUM_FRAMES, Item, make_item

FPS = 8
DEFAULT_SIZES = {"train": 0, "val": 270, "test": 450, "fresh": 450}  # 30, 50 and 50 items per question type


def default_root() -> Path:
    """Where built splits are cached: ``$PRUNEKIT_CACHE/synthetic`` or ``~/.cache/prunekit/synthetic``."""
    base = os.environ.get("PRUNEKIT_CACHE") or Path.home() / ".cache" / "prunekit"
    return Path(base) / "synthetic"


def build_split(split: str, n: int, root: str | os.PathLike | None = None) -> list[Item]:
    """Generate items ``0..n-1`` of ``split``, write their clips as mp4 and the items as JSONL.

    Files go to ``root/split/videos/<id>.mp4`` and ``root/split/items.jsonl``; returns the items.
    """
    folder = Path(root or default_root()) / split
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    items = []
    for index in range(n):
        item, clip = make_item(split, index)
        rel = f"videos/{item.id}.mp4"
        video.write(folder / rel, clip.frames, fps=FPS)
        items.append(Item(**{**item.to_json(), "options": item.options, "video": rel}))
    tmp = folder / "items.jsonl.tmp"
    tmp.write_text("".join(json.dumps(it.to_json()) + "\n" for it in items))
    tmp.replace(folder / "items.jsonl")
    return items


def load_split(split: str, root: str | os.PathLike | None = None) -> list[Item]:
    """Items of a split written by :func:`build_split`; ``video`` paths made absolute."""
    folder = Path(root or default_root()) / split
    lines = (folder / "items.jsonl").read_text().splitlines()
    items = [Item.from_json(json.loads(line)) for line in lines if line.strip()]
    return [Item(**{**it.to_json(), "options": it.options, "video": str(folder / it.video)}) for it in items]


def ensure_split(split: str, n: int | None = None, root: str | os.PathLike | None = None) -> list[Item]:
    """The first ``n`` items of ``split`` from the cache, building (or extending) it when needed."""
    n = DEFAULT_SIZES[split] if n is None else n
    folder = Path(root or default_root()) / split
    if (folder / "items.jsonl").is_file():
        items = load_split(split, root)
        if len(items) >= n and all(Path(it.video).is_file() for it in items[:n]):
            return items[:n]
    build_split(split, n, root)
    return load_split(split, root)


def load_frames(item: Item, backend: str = "auto"):
    """The clip of ``item`` decoded from its mp4, ``uint8 [16, 64, 64, 3]``."""
    return video.load(item.video, NUM_FRAMES, backend=backend)
