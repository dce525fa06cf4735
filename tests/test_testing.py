"""`prunekit.testing`: the conformance checks pass the built-ins and catch broken stages, naming the
violated guarantee; the strategies produce what they promise; the profiles are registered."""

from __future__ import annotations

import os
from typing import Literal

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from prunekit import Budget, Segments, Stage, VideoLayout
from prunekit.budget import fit_stage_counts
from prunekit.errors import BudgetError
from prunekit.interfaces import BudgetAllocator, FrameSelector, LayerScheduler, Segmenter, StageConfig, TokenMerger
from prunekit.plugins import get_registry, reload_plugins
from prunekit.testing import (
    budgets,
    check_allocator,
    check_frame_selector,
    check_layer_scheduler,
    check_merger,
    check_preset,
    check_segmenter,
    features,
    layouts,
    register_profiles,
)
from prunekit.types import MergeMap, SelectionContext

pytestmark = pytest.mark.usefixtures("single_thread_torch")

CHECKS = {"segmenter": check_segmenter, "merger": check_merger, "allocator": check_allocator,
          "frame_selector": check_frame_selector, "layer_scheduler": check_layer_scheduler}


def few(n: int = 25) -> settings:
    """The active profile capped at ``n`` examples (the property suite covers built-ins in depth)."""
    return settings(settings.default, max_examples=min(n, settings.default.max_examples))


def no_shrink() -> settings:
    """For checks expected to fail: stop at the first failure (shrinking only costs time here)."""
    return settings(settings.default, max_examples=200, database=None,
                    phases=[Phase.explicit, Phase.generate])


def _builtin_stages() -> list[tuple[str, str]]:
    return [(e.kind, e.name) for kind in CHECKS for e in get_registry().entries(kind) if e.source == "prunekit"
            and e.obj.__module__.startswith("prunekit.strategies.") and ".zoo." not in e.obj.__module__]


@pytest.mark.parametrize(("kind", "name"), _builtin_stages(), ids=lambda v: str(v))
def test_builtin_stages_pass_their_conformance_check(kind: str, name: str) -> None:
    CHECKS[kind](get_registry().get(kind, name), run_settings=few())


@pytest.mark.parametrize("name", ["hieravid-30", "uniform"])
def test_builtin_presets_pass_check_preset(name: str) -> None:
    check_preset(name, run_settings=few(15), max_tokens=384)


# -- broken stages are caught ----------------------------------------------------------------------


def _selector(body, needs: bool = False) -> type[FrameSelector]:  # noqa: ANN001
    class Broken(FrameSelector):
        class Config(StageConfig):
            name: Literal["tests.broken"] = "tests.broken"

        needs_relevance = needs

        def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
            return body(features, keep, context)

    return Broken


@pytest.mark.parametrize(("body", "guarantee"), [
    (lambda f, k, c: torch.zeros(k, dtype=torch.long), "exact-count guarantee"),        # duplicates
    (lambda f, k, c: torch.arange(k - 1), "exact-count guarantee"),                      # one short
    (lambda f, k, c: torch.arange(1, k + 1), "exact-count guarantee"),                   # out of range
    (lambda f, k, c: torch.arange(k).float(), "exact-count guarantee"),                  # not integer
    (lambda f, k, c: torch.sort(torch.randperm(f.shape[0])[:k]).values, "determinism guarantee"),  # global RNG
    (lambda f, k, c: (f.mul_(0), torch.arange(k))[1], "purity guarantee"),               # mutates its input
    (lambda f, k, c: torch.arange(k) if f.shape[0] > 1 else 1 / 0, "raised ZeroDivisionError"),
    (lambda f, k, c: torch.arange(k).flip(0) if k > 1 else torch.arange(k), "index-tensor guarantee"),  # unsorted
    (lambda f, k, c: list(range(k)), "index-tensor guarantee"),                          # a plain list
])
def test_check_frame_selector_names_the_violated_guarantee(body, guarantee: str) -> None:  # noqa: ANN001
    with pytest.raises(AssertionError, match=guarantee):
        check_frame_selector(_selector(body), run_settings=no_shrink())


def test_check_frame_selector_gives_relevance_to_selectors_that_need_it() -> None:
    def body(f: torch.Tensor, k: int, c: SelectionContext) -> torch.Tensor:
        assert c.relevance is not None and c.relevance.shape == (f.shape[0],)
        assert float(c.relevance.min()) >= 0 and float(c.relevance.max()) <= 1
        return torch.topk(c.relevance, k, sorted=False).indices.sort().values

    check_frame_selector(_selector(body, needs=True), run_settings=few())


class _CountingSegmenter(Segmenter):
    class Config(StageConfig):
        name: Literal["tests.seg"] = "tests.seg"

    calls = 0

    def segment(self, features: torch.Tensor, layout: VideoLayout) -> Segments:
        type(self).calls += 1
        if type(self).calls % 2 == 0 and layout.num_frames > 1:
            return Segments((0, 1), layout.num_frames)
        return Segments.single(layout.num_frames)


class _WrongLengthSegmenter(_CountingSegmenter):
    def segment(self, features: torch.Tensor, layout: VideoLayout) -> Segments:
        return Segments.single(layout.num_frames + 1)


@pytest.mark.parametrize(("cls", "guarantee"), [(_CountingSegmenter, "determinism guarantee"),
                                                 (_WrongLengthSegmenter, "segmentation guarantee")])
def test_check_segmenter_catches_broken_segmenters(cls: type[Segmenter], guarantee: str) -> None:
    with pytest.raises(AssertionError, match=guarantee):
        check_segmenter(cls, run_settings=no_shrink())


class _FlooringAllocator(BudgetAllocator):
    """The authors' per-segment floor: misses the total."""

    class Config(StageConfig):
        name: Literal["tests.floor"] = "tests.floor"

    def allocate(self, live_sizes: list[int], total_keep: int, segment_features: torch.Tensor) -> list[int]:
        q = total_keep / sum(live_sizes)
        return [max(1, int(q * s)) for s in live_sizes]


class _StarvingAllocator(_FlooringAllocator):
    """Gives everything to the first segments: later ones may get 0."""

    def allocate(self, live_sizes: list[int], total_keep: int, segment_features: torch.Tensor) -> list[int]:
        out, left = [], total_keep
        for s in live_sizes:
            out.append(min(s, left))
            left -= out[-1]
        return out


@pytest.mark.parametrize(("cls", "guarantee"), [(_FlooringAllocator, "exact-count guarantee"),
                                                 (_StarvingAllocator, "guarantee 3")])
def test_check_allocator_catches_broken_allocators(cls: type[BudgetAllocator], guarantee: str) -> None:
    with pytest.raises(AssertionError, match=guarantee):
        check_allocator(cls, run_settings=no_shrink())


class _GreedyMerger(TokenMerger):
    """Drops tokens without merging them and forgets segments: keeps the first ``keep`` ids."""

    class Config(StageConfig):
        name: Literal["tests.merge"] = "tests.merge"

    def merge(self, features, layout, segments, keep):  # noqa: ANN001, ANN201
        return torch.arange(keep), MergeMap.empty()


class _SelfMerger(_GreedyMerger):
    """Claims to merge a token that it also keeps."""

    def merge(self, features, layout, segments, keep):  # noqa: ANN001, ANN201
        n = layout.num_visual
        return torch.arange(n), MergeMap(torch.tensor([n - 1]), torch.tensor([0]))


@pytest.mark.parametrize(("cls", "guarantee"), [(_GreedyMerger, "guarantee 3"),
                                                 (_SelfMerger, "merge guarantee")])
def test_check_merger_catches_broken_mergers(cls: type[TokenMerger], guarantee: str) -> None:
    with pytest.raises(AssertionError, match=guarantee):
        check_merger(cls, run_settings=no_shrink())


class _IgnoringScheduler(LayerScheduler):
    """Always prunes half before the LLM, whatever the budget."""

    class Config(StageConfig):
        name: Literal["tests.sched"] = "tests.sched"

    def plan(self, n_visual, num_layers, budget, min_keep=1):  # noqa: ANN001, ANN201
        return [Stage(0, max(min_keep, n_visual // 2))]


class _GrowingScheduler(_IgnoringScheduler):
    def plan(self, n_visual, num_layers, budget, min_keep=1):  # noqa: ANN001, ANN201
        if num_layers < 2 or n_visual < 2:
            raise BudgetError("too small")
        return [Stage(0, max(min_keep, n_visual // 2)), Stage(1, n_visual)]


class _RefusingScheduler(_IgnoringScheduler):
    def plan(self, n_visual, num_layers, budget, min_keep=1):  # noqa: ANN001, ANN201
        raise BudgetError("never")


@pytest.mark.parametrize(("cls", "guarantee"), [(_IgnoringScheduler, "guarantee [15]"),
                                                 (_GrowingScheduler, "guarantee 4"),
                                                 (_RefusingScheduler, "refused every request")])
def test_check_layer_scheduler_catches_broken_schedulers(cls: type[LayerScheduler], guarantee: str) -> None:
    with pytest.raises(AssertionError, match=guarantee):
        check_layer_scheduler(cls, run_settings=no_shrink())


@pytest.fixture
def broken_preset():
    """A registered preset whose selector returns duplicate indices."""
    registry = get_registry().scoped("tests-plugin")
    registry.register_stage(_selector(lambda f, k, c: torch.zeros(k, dtype=torch.long)))

    def factory():  # noqa: ANN202
        from prunekit import PipelineConfig

        return PipelineConfig.parse({"name": "tests.broken-30", "selector": "tests.broken",
                                     "scheduler": "fixed", "budget": {"retain": 0.3, "mode": "input"}})

    registry.register_preset("tests.broken-30", factory)
    yield "tests.broken-30"
    reload_plugins()


def test_check_preset_reports_a_crashing_pipeline_as_an_assertion(broken_preset: str) -> None:
    with pytest.raises(AssertionError, match="raised PrunekitError on a valid input.*distinct indices"):
        check_preset(broken_preset, run_settings=no_shrink())


def test_check_preset_catches_a_scheduler_that_misses_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from prunekit.strategies.generic.schedulers import FixedScheduler

    def off_by_ten(self, n_visual, num_layers, budget, min_keep=1):  # noqa: ANN001, ANN202
        stages = fit_stage_counts(list(self.config.layers), list(self.config.keep_fractions), n_visual,
                                  num_layers, budget or Budget(0.3, "input"), min_keep)
        return [Stage(s.layer, min(n_visual, s.keep + 10)) for s in stages]

    monkeypatch.setattr(FixedScheduler, "plan", off_by_ten)
    with pytest.raises(AssertionError, match="guarantee 1"):
        check_preset("uniform", run_settings=no_shrink(), max_tokens=256)


# -- strategies and profiles -------------------------------------------------------------------


@given(data=st.data())
def test_layouts_and_features_respect_their_bounds(data: st.DataObject) -> None:
    """Strategies: layouts have 1-64 frames of h x w = 1-256 tokens (capped by max_tokens), text
    around them and at most one trailing layout token; features match the layout and are finite."""
    layout = data.draw(layouts(max_tokens=3000))
    assert 1 <= layout.num_frames <= 64 and 1 <= layout.tokens_per_frame <= 256
    assert layout.num_visual <= max(3000, layout.num_frames)
    assert layout.grid[0] * layout.grid[1] == layout.tokens_per_frame
    assert layout.layout_index.numel() <= 1
    assert layout.seq_len >= layout.num_visual + layout.layout_index.numel()
    x = data.draw(features(layout))
    assert x.shape[:2] == (layout.num_frames, layout.tokens_per_frame) and 1 <= x.shape[2] <= 8
    assert x.dtype == torch.float32 and bool(torch.isfinite(x).all())
    budget = data.draw(budgets())
    assert 0 < budget.retain <= 1 and budget.mode in ("input", "layer_average")


def test_features_cover_the_degenerate_cases() -> None:
    """Over a small search the strategy produces zero tokens, duplicated tokens and identical frames."""
    seen = set()

    @settings(max_examples=150, database=None, derandomize=True, deadline=None)
    @given(data=st.data())
    def collect(data: st.DataObject) -> None:
        layout = data.draw(layouts(max_frames=6, max_tokens_per_frame=9))
        x = data.draw(features(layout)).reshape(layout.num_visual, -1)
        if bool((x.abs().sum(-1) == 0).any()):
            seen.add("zero token")
        if torch.unique(x, dim=0).shape[0] < x.shape[0]:
            seen.add("duplicate token")
        frames = x.reshape(layout.num_frames, -1)
        if layout.num_frames > 1 and bool((frames[1:] == frames[:-1]).all(-1).any()):
            seen.add("identical frames")

    collect()
    assert seen == {"zero token", "duplicate token", "identical frames"}


def test_register_profiles_picks_ci_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    active = settings.default
    original = os.environ.get("PRUNEKIT_HYPOTHESIS_PROFILE") or (
        "ci" if os.environ.get("CI", "").lower() == "true" else "dev")
    try:
        monkeypatch.setenv("CI", "true")
        monkeypatch.delenv("PRUNEKIT_HYPOTHESIS_PROFILE", raising=False)
        assert register_profiles() == "ci"
        ci = settings.get_profile("ci")
        assert ci.max_examples >= 200 and ci.deadline is None and ci.derandomize
        monkeypatch.setenv("CI", "false")
        assert register_profiles() == "dev"
        assert settings.get_profile("dev").max_examples == 30
    finally:
        settings.load_profile(original)
        assert settings.default.max_examples == active.max_examples
