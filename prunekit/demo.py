"""The demo clip ``prunekit run`` answers when the user gives no video.

A 16-frame, 64x64 clip from the synthetic benchmark (``make_item("test", 2)``, a needle-colour
question the bundled tiny model answers reliably), stored as a 1 kB asset so the core package does
not depend on the benchmark generator. ``tests/test_demo.py`` checks that the two still agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEMO_CLIP_PATH = Path(__file__).parent / "assets" / "demo-clip.npz"


@dataclass(frozen=True)
class DemoClip:
    """Frames ``[T, H, W, 3]`` uint8, the question, its multiple-choice options and the correct answer."""

    frames: np.ndarray
    question: str
    options: tuple[str, ...]
    answer: str


def demo_clip() -> DemoClip:
    """Load the bundled demo clip."""
    with np.load(DEMO_CLIP_PATH) as data:
        return DemoClip(frames=data["frames"], question=str(data["question"]),
                        options=tuple(str(option) for option in data["options"]), answer=str(data["answer"]))
