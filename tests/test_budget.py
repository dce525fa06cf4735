"""Budgets, apportionment, exact stage counts, schedulers, the HieraVid table and FLOPs.

Property tests prove architecture §4's guarantees on schedules (no tensors, so they are cheap);
`tests/test_properties.py` proves them end to end through `Pipeline.simulate`.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from prunekit import Budget, BudgetError, Pipeline, Stage, VideoLayout, flops, flops_ratio, presets
from prunekit.budget import fit_stage_counts, input_keep_count, realized_retention, visual_tokens_per_layer
from prunekit.ops.apportion import apportion
from prunekit.strategies.generic.schedulers import FixedScheduler, ProgressiveScheduler
from prunekit.testing import assert_schedule, budgets

# -- Budget -------------------------------------------------------------------------------------


@pytest.mark.parametrize("retain", [0, 0.0, -0.1, 1.0000001, 1.5, math.nan, math.inf, True, "0.3", None])
def test_budget_rejects_retain_outside_zero_one(retain: object) -> None:
    with pytest.raises(BudgetError, match=r"retain must be a number in \(0, 1\]"):
        Budget(retain)  # type: ignore[arg-type]


def test_budget_rejects_unknown_mode() -> None:
    with pytest.raises(BudgetError, match="mode must be 'input' or 'layer_average'"):
        Budget(0.3, "tokens")  # type: ignore[arg-type]


def test_budget_accepts_the_closed_upper_end_and_normalises_to_float() -> None:
    budget = Budget(1)
    assert budget.retain == 1.0 and isinstance(budget.retain, float)
    assert budget.mode == "layer_average"


# -- apportion ----------------------------------------------------------------------------------


def test_apportion_gives_leftover_units_to_the_largest_remainders() -> None:
    # quotas 3.5, 2.1, 1.4 -> floors 3, 2, 1 (6); the one unit left goes to the .5 remainder
    assert apportion([5, 3, 2], 7, [0, 0, 0], [7, 7, 7]) == [4, 2, 1]
    # quotas 0.6, 0.6, 3.8 -> floors 0, 0, 3; two units go to .8, then the first .6 (lowest index)
    assert apportion([3, 3, 19], 5, [0, 0, 0], [5, 5, 5]) == [1, 0, 4]


def test_apportion_breaks_exact_ties_by_lowest_index() -> None:
    assert apportion([1, 1, 1], 10, [0, 0, 0], [10, 10, 10]) == [4, 3, 3]
    assert apportion([1, 1, 1], 2, [0, 0, 0], [10, 10, 10]) == [1, 1, 0]


def test_apportion_respects_upper_bounds_and_redistributes() -> None:
    # the first item wants 5 but is capped at 2; the other two share the rest equally
    assert apportion([10, 1, 1], 6, [0, 0, 0], [2, 10, 10]) == [2, 2, 2]


def test_apportion_respects_lower_bounds() -> None:
    assert apportion([0, 1], 5, [1, 0], [5, 5]) == [1, 4]
    assert apportion([1, 100], 4, [2, 1], [9, 9]) == [2, 2]


def test_apportion_splits_equally_without_usable_weights() -> None:
    assert apportion([0, 0, 0], 6, [0, 0, 0], [6, 6, 6]) == [2, 2, 2]
    assert apportion([math.nan, 1, 1], 6, [0, 0, 0], [6, 6, 6]) == [2, 2, 2]


@pytest.mark.parametrize(("total", "lower", "upper"), [
    (10, [0, 0], [4, 5]),   # more than the upper bounds allow
    (1, [1, 1], [4, 5]),    # less than the lower bounds need
    (3, [3, 0], [2, 5]),    # a lower bound above its upper bound
])
def test_apportion_infeasible_bounds_raise_budget_error(total: int, lower: list[int], upper: list[int]) -> None:
    with pytest.raises(BudgetError, match="cannot split"):
        apportion([1, 1], total, lower, upper)


@st.composite
def apportion_cases(draw: st.DrawFn) -> tuple[list[float], int, list[int], list[int]]:
    n = draw(st.integers(1, 40))
    weights = draw(st.lists(st.one_of(st.floats(0, 1e6), st.just(0.0)), min_size=n, max_size=n))
    lower = draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
    upper = [lo + draw(st.integers(0, 500)) for lo in lower]
    total = draw(st.integers(sum(lower), sum(upper)))
    return weights, total, lower, upper


@given(apportion_cases())
def test_apportion_sums_exactly_within_bounds(case: tuple[list[float], int, list[int], list[int]]) -> None:
    """Apportionment returns integers in [lower_i, upper_i] that sum exactly to the total."""
    weights, total, lower, upper = case
    counts = apportion(weights, total, lower, upper)
    assert sum(counts) == total
    assert all(lo <= c <= hi for c, lo, hi in zip(counts, lower, upper, strict=True))
    assert all(isinstance(c, int) for c in counts)


@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=30), st.integers(0, 100_000))
def test_apportion_without_bounds_is_hamilton(weights: list[int], total: int) -> None:
    """Without binding bounds each count is its exact quota rounded down or up (Hamilton's method),
    and a larger weight never gets fewer units."""
    n = len(weights)
    counts = apportion(weights, total, [0] * n, [total] * n)
    quotas = [Fraction(total * w, sum(weights)) for w in weights]
    assert sum(counts) == total
    assert all(math.floor(q) <= c <= math.ceil(q) for c, q in zip(counts, quotas, strict=True))
    for i in range(n):
        for j in range(n):
            if weights[i] > weights[j]:
                assert counts[i] >= counts[j]


# -- fit_stage_counts ---------------------------------------------------------------------------


def test_fit_input_mode_first_stage_is_the_rounded_target() -> None:
    stages = fit_stage_counts([0, 7, 14], [0.5, 0.25, 0.1], 1000, 28, Budget(0.3, "input"))
    assert [s.layer for s in stages] == [0, 7, 14]
    assert stages[0].keep == 300
    assert [s.keep for s in stages] == [300, 150, 60]  # the shape (1 : 1/2 : 1/5) is kept


def test_fit_layer_average_meets_the_target_to_one_token() -> None:
    n, num_layers = 6272, 28
    stages = fit_stage_counts([0, 7, 14, 21], [0.5, 0.35, 0.245, 0.105], n, num_layers, Budget(0.2))
    realized = realized_retention(stages, n, num_layers)["layer_average"]
    assert abs(realized - 0.2) <= 1 / n
    keeps = [s.keep for s in stages]
    assert keeps == sorted(keeps, reverse=True)


def test_fit_full_retention_plans_nothing() -> None:
    assert fit_stage_counts([0, 7], [0.5, 0.2], 100, 28, Budget(1.0)) == []
    assert fit_stage_counts([0, 7], [0.5, 0.2], 100, 28, Budget(1.0, "input")) == []


@pytest.mark.parametrize(("layers", "fractions", "num_layers", "budget", "message"), [
    ([0, 28], [0.5, 0.2], 28, Budget(0.3), "stage layer 28 does not exist"),
    ([7], [0.5], 28, Budget(0.3, "input"), "first prunes at layer 7"),
    ([0, 7], [0.2, 0.5], 28, Budget(0.3), "non-increasing"),
    ([7, 3], [0.5, 0.2], 28, Budget(0.3), "strictly increasing"),
    ([0], [0.5, 0.2], 28, Budget(0.3), "one kept fraction per stage"),
    ([14], [0.5], 28, Budget(0.1), "below what this schedule can reach"),
    ([0], [0.5], 28, Budget(0.001, "input"), "at least 10"),
])
def test_fit_infeasible_requests_raise_budget_error_with_the_numbers(
        layers: list[int], fractions: list[float], num_layers: int, budget: Budget, message: str) -> None:
    with pytest.raises(BudgetError, match=message):
        fit_stage_counts(layers, fractions, 100, num_layers, budget, min_keep=10)


def test_fit_more_segments_than_tokens_raises() -> None:
    with pytest.raises(BudgetError, match="12 tokens must survive"):
        fit_stage_counts([0], [0.5], 10, 28, Budget(0.5), min_keep=12)


@st.composite
def schedule_shapes(draw: st.DrawFn) -> tuple[list[int], list[float], int]:
    num_layers = draw(st.one_of(st.integers(1, 96), st.just(28)))
    m = draw(st.integers(1, min(6, num_layers)))
    layers = sorted(draw(st.sets(st.integers(0, num_layers - 1), min_size=m, max_size=m)))
    if draw(st.booleans()):
        layers[0] = 0
        assume(len(set(layers)) == m)
    fractions = sorted(draw(st.lists(st.floats(1e-4, 1.0), min_size=m, max_size=m)), reverse=True)
    return layers, fractions, num_layers


@given(schedule_shapes(), st.integers(1, 200_000), budgets(), st.integers(1, 64))
def test_fit_stage_counts_meets_any_feasible_budget(shape: tuple[list[int], list[float], int], n: int,
                                                     budget: Budget, min_keep: int) -> None:
    """Guarantees 1, 3, 4: for any schedule shape, N and budget, the counts realize the budget to
    within 1/N, stay in [min_keep, N] and never increase; BudgetError only when infeasible (the
    target is below keeping min_keep tokens from the first stage on, or mode="input" without a
    stage before the LLM)."""
    layers, fractions, num_layers = shape
    min_keep = min(min_keep, n)
    first = layers[0]
    lowest = first * n + min_keep * (num_layers - first)
    target = budget.retain * n * num_layers
    if budget.mode == "input":
        infeasible = budget.retain < 1 and (first != 0 or round(budget.retain * n) < min_keep)
        borderline = False
    else:
        infeasible = target < lowest - num_layers
        borderline = abs(target - (lowest - num_layers)) < 1e-6
    try:
        stages = fit_stage_counts(layers, fractions, n, num_layers, budget, min_keep)
    except BudgetError:
        assert infeasible or borderline, f"refused a feasible request: {budget}, lowest={lowest}"
        return
    assert not infeasible or borderline, f"accepted an infeasible request: {budget}, got {stages}"
    assert [s.layer for s in stages] == (layers if budget.retain < 1 else [])
    assert_schedule(stages, n, num_layers, budget, min_keep)


@st.composite
def schedulers(draw: st.DrawFn) -> FixedScheduler | ProgressiveScheduler:
    if draw(st.booleans()):
        prune = draw(st.lists(st.floats(0.0, 0.95), min_size=1, max_size=5))
        return ProgressiveScheduler(prune_fractions=tuple(prune), input_stage=draw(st.booleans()))
    m = draw(st.integers(1, 4))
    layers = sorted(draw(st.sets(st.integers(0, 40), min_size=m, max_size=m)))
    keeps = sorted(draw(st.lists(st.floats(0.01, 1.0), min_size=m, max_size=m)), reverse=True)
    return FixedScheduler(layers=tuple(layers), keep_fractions=tuple(keeps))


@given(schedulers(), st.integers(1, 100_000), st.integers(1, 64), st.none() | budgets(), st.integers(1, 32))
def test_schedulers_plan_exact_stages(scheduler: FixedScheduler | ProgressiveScheduler, n: int,
                                      num_layers: int, budget: Budget | None, min_keep: int) -> None:
    """Guarantees 1, 3, 4, 5 for the built-in `fixed` and `progressive` schedulers: stages within
    the model's depth, counts in [min_keep, N] and non-increasing, a given budget met to 1/N,
    retain = 1 plans no pruning; a refusal is a BudgetError only when the schedule cannot fit."""
    min_keep = min(min_keep, n)
    try:
        stages = scheduler.plan(n, num_layers, budget, min_keep)
    except BudgetError:
        try:
            shape = scheduler.plan(n, num_layers, None, 1)
        except BudgetError:
            return  # the schedule does not fit this depth
        assert budget is not None and budget.retain < 1, "refused without a budget although the shape fits"
        first = shape[0].layer
        lowest = (first * n + min_keep * (num_layers - first)) / (n * num_layers)
        assert (budget.mode == "input" and (first != 0 or round(budget.retain * n) < min_keep)) or (
            budget.mode == "layer_average" and budget.retain < lowest - 1 / n + 1e-9), "feasible request refused"
        return
    assert_schedule(stages, n, num_layers, budget, min_keep)
    if budget is not None and budget.retain == 1.0:
        assert stages == []


@given(st.integers(1, 100_000), st.integers(4, 96), st.sampled_from(["input", "layer_average"]))
def test_full_retention_plans_no_stage(n: int, num_layers: int, mode: str) -> None:
    """Guarantee 5: retain = 1.0 plans no stage for every preset's scheduler."""
    for name in ("hieravid-30", "hieravid-10", "uniform", "random"):
        pipeline = Pipeline.from_preset(name, Budget(1.0, mode))  # type: ignore[arg-type]
        assert pipeline.scheduler.plan(n, num_layers, pipeline.budget, 1) == []


def test_visual_tokens_per_layer_holds_counts_until_the_next_stage() -> None:
    stages = [Stage(0, 50), Stage(2, 20), Stage(5, 5)]
    assert visual_tokens_per_layer(stages, 100, 6) == [50, 50, 20, 20, 20, 5]
    assert visual_tokens_per_layer([Stage(3, 10)], 100, 4) == [100, 100, 100, 10]
    assert realized_retention(stages, 100, 6) == {"input": 0.5, "layer_average": 165 / 600}


# -- the HieraVid table (hieravid.md, level 3) ---------------------------------------------------

HIERAVID_TABLE = {  # nominal -> (kept % of N in blocks 0-6 / 7-13 / 14-20 / 21-27, layer average %)
    30: ((50, 35, 24.5, 10.5), 30.0),
    20: ((50, 25, 7.5, 1.5), 21.0),
    10: ((30, 12, 1.8, 0.18), 11.0),
}


@pytest.mark.parametrize("nominal", [30, 20, 10])
def test_hieravid_presets_reproduce_the_paper_table(nominal: int) -> None:
    n, num_layers = 6272, 28  # LLaVA-OV-7B: 32 frames x 196 tokens, Qwen2-7B
    blocks, average = HIERAVID_TABLE[nominal]
    pipeline = Pipeline.from_preset(f"hieravid-{nominal}")
    stages = pipeline.scheduler.plan(n, num_layers, None)
    assert [s.layer for s in stages] == [0, 7, 14, 21]
    for stage, percent in zip(stages, blocks, strict=True):
        assert abs(stage.keep / n - percent / 100) < 0.001
    assert abs(realized_retention(stages, n, num_layers)["layer_average"] - average / 100) < 0.001


@pytest.mark.parametrize("nominal", [30, 20, 10])
def test_hieravid_table_holds_through_pipeline_start(nominal: int) -> None:
    """The same numbers come out of `Pipeline.start` on a real-shaped (smooth, few-cut) video."""
    n_frames, grid = 32, (14, 14)
    gen = torch.Generator().manual_seed(nominal)
    feats = (torch.randn(1, 196, 16, generator=gen) + 0.05 * torch.randn(n_frames, 196, 16, generator=gen))
    layout = VideoLayout.contiguous(14, n_frames, grid, 14 + n_frames * 196 + 1 + 20, trailing_layout_tokens=1)
    plan = Pipeline.from_preset(f"hieravid-{nominal}").start(feats, layout, 28)
    retention = realized_retention(plan.stages, layout.num_visual, 28)
    assert abs(retention["layer_average"] - HIERAVID_TABLE[nominal][1] / 100) < 0.001


def test_hieravid_presets_with_a_budget_meet_it_exactly() -> None:
    for retain in (0.3, 0.25, 0.15, 0.1):
        stages = Pipeline.from_preset("hieravid-30", retain).scheduler.plan(6272, 28, Budget(retain))
        assert abs(realized_retention(stages, 6272, 28)["layer_average"] - retain) <= 1 / 6272


def test_preset_budget_defaults() -> None:
    assert presets.get("hieravid-30").budget is None  # the paper's fractions
    assert presets.get("uniform").budget == Budget(0.3, "input")


# -- FLOPs (FastV, Eq. 5: 4nd^2 + 2n^2d + 2ndm per layer) --------------------------------------


def test_flops_matches_a_hand_computation() -> None:
    # d = 4, m = 8. Layer with n = 3: 4*3*16 + 2*9*4 + 2*3*4*8 = 192 + 72 + 192 = 456
    #              layer with n = 2: 4*2*16 + 2*4*4 + 2*2*4*8 = 128 + 32 + 128 = 288
    assert flops([3, 2], hidden_size=4, intermediate_size=8) == 456 + 288
    assert flops([], 4, 8) == 0.0


def test_flops_ratio_matches_a_hand_computation() -> None:
    # 2 visual + 1 text token, 2 layers; the second layer keeps 1 visual token.
    # pruned: layers of 3 and 2 tokens = 744; unpruned: two layers of 3 tokens = 912
    assert flops_ratio([2, 1], n_visual=2, n_text=1, hidden_size=4, intermediate_size=8) == pytest.approx(744 / 912)


def test_flops_ratio_is_one_without_pruning_and_grows_with_kept_tokens() -> None:
    assert flops_ratio([100] * 28, 100, 20, 64, 256) == pytest.approx(1.0)
    ratios = [flops_ratio([k] * 28, 100, 20, 64, 256) for k in (10, 30, 60, 100)]
    assert ratios == sorted(ratios) and ratios[0] > 0


def test_budget_of_is_the_one_conversion_used_by_configs() -> None:
    assert Budget.of(0.3) == Budget(0.3) and Budget.of(1) == Budget(1.0) and Budget.of(None) is None
    assert Budget.of({"retain": 0.5, "mode": "input"}) == Budget(0.5, "input")
    assert presets.get("hieravid-30").with_budget(0.2).budget == Budget(0.2)
    with pytest.raises(BudgetError, match="e.g. Budget"):
        Budget.of("0.3")


def test_input_rounding_is_one_rule_in_both_paths() -> None:
    """DivPrune's default (r = 0.098, N = 6272) keeps int(round(r * N)) = 615 tokens, whether the
    preset's budget-free schedule or an explicit ``Budget(mode="input")`` sets the count."""
    n, r = 6272, 0.098
    assert input_keep_count(r, n) == int(round(r * n)) == 615
    free = FixedScheduler(layers=(0,), keep_fractions=(r,)).plan(n, 28, None)
    with_budget = FixedScheduler(layers=(0,), keep_fractions=(0.5,)).plan(n, 28, Budget(r, mode="input"))
    assert free == with_budget == [Stage(0, 615)]


@pytest.mark.parametrize("n", [7, 10, 196, 6272])
def test_budget_free_input_stage_rounds_like_the_input_budget(n: int) -> None:
    for r in (0.05, 0.098, 0.25, 0.3, 0.5, 0.75):
        free = FixedScheduler(layers=(0, 2), keep_fractions=(r, r / 2)).plan(n, 4, None)
        assert free[0].keep == max(1, input_keep_count(r, n)) == max(1, round(r * n))
