"""The bundled demo clip is the synthetic benchmark's item it was made from."""

from __future__ import annotations

import numpy as np

from prunekit.benchmarks.synthetic.generator import make_item
from prunekit.demo import demo_clip


def test_demo_clip_matches_its_synthetic_item() -> None:
    item, clip = make_item("test", 2)
    demo = demo_clip()
    np.testing.assert_array_equal(demo.frames, clip.frames)
    assert (demo.question, demo.options, demo.answer) == (item.question, tuple(item.options), item.answer_text)
