"""Every zoo stage and preset passes prunekit's conformance suite and meets budgets exactly."""

from __future__ import annotations

import pytest
import torch
from hypothesis import settings

from prunekit import Budget, BudgetError, Pipeline, VideoLayout, presets
from prunekit.strategies._plugin import BUILTIN
from prunekit.testing import (
    assert_pipeline_guarantees,
    check_allocator,
    check_encoder_stage,
    check_frame_selector,
    check_merger,
    check_preset,
    check_segmenter,
)

CHECKS = {"segmenter": check_segmenter, "merger": check_merger, "allocator": check_allocator,
          "frame_selector": check_frame_selector, "encoder": check_encoder_stage}
IN_LLM_ONLY = {"fastv", "pdrop"}
NOT_ZOO = ("prunekit.strategies.generic.", "prunekit.strategies.hieravid.")  # HieraVid and the baselines
STAGES = [stage for stage in BUILTIN.stages if not stage.__module__.startswith(NOT_ZOO)]
PRESETS = {name: factory for name, (factory, _) in BUILTIN.presets.items()
           if not factory.__module__.startswith(NOT_ZOO)}


def quick() -> settings:
    """The active profile, capped at 8 examples unless it is the CI profile (>= 100 examples)."""
    base = settings.default
    return base if base.max_examples >= 100 else settings(base, max_examples=8)


@pytest.mark.parametrize("stage", STAGES, ids=lambda cls: cls.__name__)
def test_stage_conforms(stage: type):
    CHECKS[stage.kind](stage, run_settings=quick())


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_conforms(name: str):
    check_preset(name, run_settings=quick(), max_tokens=512)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_is_registered_with_description_and_citation(name: str):
    config = presets.get(name)
    assert config.name == name and config.citation and config.description
    assert ("layer" in config.description or "LLM" in config.description)


def video(frames: int = 8, grid: tuple[int, int] = (4, 4), dim: int = 16) -> tuple[torch.Tensor, VideoLayout]:
    """A slowly drifting video with a scene cut at frame 5."""
    gen = torch.Generator().manual_seed(0)
    per_frame = grid[0] * grid[1]
    feats = torch.randn(1, per_frame, dim, generator=gen).repeat(frames, 1, 1)
    feats += 0.2 * torch.randn(frames, per_frame, dim, generator=gen).cumsum(0)
    feats[5:] += torch.randn(1, per_frame, dim, generator=gen)
    return feats, VideoLayout.contiguous(4, frames, grid, 4 + frames * per_frame + 6)


@pytest.mark.parametrize("mode, retain", [("input", 0.3), ("input", 0.1), ("layer_average", 0.35),
                                          ("layer_average", 0.5)])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_meets_the_budget_exactly(name: str, mode: str, retain: float):
    """Counts are exact and the realized retention is within one token of the budget; in-LLM-only
    schedules refuse ``mode="input"`` with a `BudgetError`."""
    feats, layout = video()
    attention = torch.rand(layout.num_visual, generator=torch.Generator().manual_seed(1))
    pipeline = Pipeline.from_preset(name, Budget(retain, mode))
    if mode == "input" and name in IN_LLM_ONLY:
        with pytest.raises(BudgetError, match="mode='input'"):
            pipeline.simulate(feats, layout, 28, attention=attention)
        return
    sim = assert_pipeline_guarantees(pipeline, feats, layout, 28, attention)
    assert sim is not None
    assert [k.numel() for k in sim.kept] == [s.keep for s in sim.stages]
    assert abs(sim.retention[mode] - retain) <= 1 / layout.num_visual


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_defaults_run_without_attention(name: str):
    """Model-free use: selectors and mergers fall back to evenly spread tokens without relevance."""
    feats, layout = video()
    sim = Pipeline.from_preset(name).simulate(feats, layout, 28)
    assert [k.numel() for k in sim.kept] == [s.keep for s in sim.stages]
