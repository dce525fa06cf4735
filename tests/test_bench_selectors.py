"""CPU micro-benchmarks of the frame selectors at 32 frames x 196 tokens (pytest-benchmark).

Not part of the default test run (``addopts`` deselects the ``benchmark`` marker). Run with::

    pytest tests/test_bench_selectors.py -m benchmark --benchmark-only

Every selector gets the same input: 32 frames of 14 x 14 tokens (LLaVA-OneVision's layout) in 8
segments of 4 frames (the segmentation HieraVid forms on 4-frame scenes), hidden size 256 (small
enough for CPU rounds; cost grows linearly with it for the similarity kernels), keep 30% per segment.
The whole HieraVid pipeline (`Pipeline.simulate`: segmentation, merge, three DPP stages) runs on the
same video with a 28-layer schedule.
"""

from __future__ import annotations

import pytest
import torch

from prunekit.types import SelectionContext, VideoLayout

FRAMES, GRID, DIM, SEGMENTS, KEEP = 32, (14, 14), 256, 8, 0.3
SELECTORS = ("dpp", "top_relevance", "uniform", "random", "max_min_diversity", "distinct", "dycoke_ttm")


def _video(seed: int = 0) -> torch.Tensor:
    """``[F, P, D]`` features of 8 scenes (4 frames each), small per-frame noise."""
    gen = torch.Generator().manual_seed(seed)
    per_frame = GRID[0] * GRID[1]
    base = torch.randn(SEGMENTS, per_frame, DIM, generator=gen)
    scene = torch.arange(FRAMES) // (FRAMES // SEGMENTS)
    return base[scene] + 0.35 * torch.randn(FRAMES, per_frame, DIM, generator=gen)


def _segment_inputs() -> tuple[list[torch.Tensor], list[int], list[SelectionContext]]:
    feats = _video()
    per_frame = feats.shape[1]
    frames_per = FRAMES // SEGMENTS
    relevance = torch.rand(FRAMES * per_frame, generator=torch.Generator().manual_seed(1))
    features, keeps, contexts = [], [], []
    for g in range(SEGMENTS):
        f0, f1 = g * frames_per, (g + 1) * frames_per
        seg = feats[f0:f1].reshape(-1, DIM)
        ids = torch.arange(f0 * per_frame, f1 * per_frame)
        features.append(seg)
        keeps.append(round(KEEP * seg.shape[0]))
        contexts.append(SelectionContext(
            frame=ids // per_frame, position=ids % per_frame, grid=GRID, relevance=relevance[ids],
            generator=torch.Generator().manual_seed(g), layer=7, llm_stage=0))
    return features, keeps, contexts


def _selector(name: str):  # noqa: ANN202 - a registry-built FrameSelector
    from prunekit.plugins import get_registry

    cls = get_registry().get("frame_selector", name)
    return cls(cls.Config())


@pytest.mark.benchmark(group="selectors-32x196")
@pytest.mark.parametrize("name", SELECTORS)
def test_selector_32x196(benchmark, name: str) -> None:  # noqa: ANN001 - pytest-benchmark fixture
    features, keeps, contexts = _segment_inputs()
    selector = _selector(name)
    picks = benchmark.pedantic(selector.select_segments, args=(features, keeps, contexts), rounds=3, iterations=1,
                               warmup_rounds=1)
    assert [len(p) for p in picks] == keeps


@pytest.mark.benchmark(group="pipelines-32x196")
@pytest.mark.parametrize("preset", ["hieravid-30", "hieravid-10", "fastv", "visionzip"])
def test_pipeline_simulate_32x196(benchmark, preset: str) -> None:  # noqa: ANN001 - pytest-benchmark fixture
    from prunekit.pipeline import Pipeline

    feats = _video()
    layout = VideoLayout.contiguous(0, FRAMES, GRID, FRAMES * GRID[0] * GRID[1] + 1)
    attention = torch.rand(layout.num_visual, generator=torch.Generator().manual_seed(2))
    pipe = Pipeline.from_preset(preset)
    sim = benchmark.pedantic(pipe.simulate, args=(feats, layout, 28, attention), rounds=3, iterations=1,
                             warmup_rounds=1)
    assert sim.kept
