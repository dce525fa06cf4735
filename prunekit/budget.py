"""Budgets and exact stage counts.

A `Budget` says how much of the video to keep, in one of two modes:

* ``"input"``: the fraction of visual tokens that enter the LLM;
* ``"layer_average"``: visual tokens summed over all LLM layers / (N * L), the "x% retained"
  of HieraVid, FrameFusion and most papers (approximately the visual share of FLOPs).

`fit_stage_counts` turns a schedule shape into integer counts that meet the budget to one token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prunekit.errors import BudgetError
from prunekit.types import Stage

__all__ = ["Budget", "BudgetMode", "check_schedule", "fit_stage_counts", "input_keep_count",
           "realized_retention"]

BudgetMode = Literal["input", "layer_average"]


@dataclass(frozen=True)
class Budget:
    """A retention request: keep ``retain`` (in (0, 1]) of the visual tokens, measured by ``mode``."""

    retain: float
    mode: BudgetMode = "layer_average"

    def __post_init__(self) -> None:
        r = self.retain
        if isinstance(r, bool) or not isinstance(r, (int, float)) or math.isnan(r) or not 0 < r <= 1:
            raise BudgetError(
                f"retain must be a number in (0, 1], got {r!r}; e.g. Budget(0.3) keeps 30% of the "
                "visual tokens."
            )
        if self.mode not in ("input", "layer_average"):
            raise BudgetError(f"mode must be 'input' or 'layer_average', got {self.mode!r}.")
        object.__setattr__(self, "retain", float(r))

    @classmethod
    def of(cls, value: Budget | float | Mapping[str, Any] | None) -> Budget | None:
        """The one conversion to a `Budget`: a float is a layer-averaged retention, a mapping holds the
        fields (``{"retain": 0.3, "mode": "input"}``), a `Budget` or None is returned as is."""
        if value is None or isinstance(value, Budget):
            return value
        if isinstance(value, Mapping):
            return cls(**value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(float(value))
        raise BudgetError(f"a budget is a Budget, a retention in (0, 1] or a mapping of its fields, "
                          f"got {type(value).__name__} {value!r}; e.g. Budget(0.3).")


def input_keep_count(retain: float, n_visual: int) -> int:
    """Visual tokens that enter the LLM when ``retain`` of ``n_visual`` are kept: ``round(retain * n)``
    with Python's rounding (half to even), as DivPrune's reference ``int(round(r * N))``.

    The one rounding rule at the input, shared by `fit_stage_counts` (``mode="input"``) and the
    schedulers' budget-free layer-0 stage (e.g. 615 tokens for r = 0.098, N = 6272).
    """
    return int(round(retain * n_visual))


def realized_retention(stages: Sequence[Stage], n_visual: int, num_layers: int) -> dict[str, float]:
    """Input and layer-average retention of a schedule (stages sorted by layer)."""
    per_layer = visual_tokens_per_layer(stages, n_visual, num_layers)
    return {
        "input": per_layer[0] / n_visual,
        "layer_average": sum(per_layer) / (n_visual * num_layers),
    }


def visual_tokens_per_layer(stages: Sequence[Stage], n_visual: int, num_layers: int) -> list[int]:
    """Live visual tokens at the input of every decoder layer."""
    counts, live = [], n_visual
    by_layer = {s.layer: s.keep for s in stages}
    for layer in range(num_layers):
        live = by_layer.get(layer, live)
        counts.append(live)
    return counts


def fit_stage_counts(layers: Sequence[int], fractions: Sequence[float], n_visual: int,
                     num_layers: int, budget: Budget, min_keep: int = 1) -> list[Stage]:
    """Integer stages with the shape of ``fractions`` that meet ``budget`` exactly (to one token).

    Args:
        layers: strictly increasing stage layers (0 = before the LLM).
        fractions: non-increasing kept fractions of ``n_visual`` per stage (the schedule's shape).
        n_visual: visual tokens N.
        num_layers: decoder layers L.
        budget: the request.
        min_keep: lower bound on every stage's count (e.g. the number of segments).
    """
    check_schedule(layers, fractions, num_layers)
    if budget.retain >= 1.0:
        return []
    if min_keep > n_visual:
        raise BudgetError(f"{min_keep} tokens must survive (one per segment) but the video has {n_visual}.")
    if budget.mode == "input":
        return _fit_input(layers, fractions, n_visual, budget.retain, min_keep)
    return _fit_layer_average(layers, fractions, n_visual, num_layers, budget.retain, min_keep)


def check_schedule(layers: Sequence[int], fractions: Sequence[float], num_layers: int) -> None:
    """Raise `BudgetError` unless ``layers`` and kept ``fractions`` form a valid schedule for ``num_layers``."""
    if len(layers) != len(fractions) or not layers:
        raise BudgetError("a schedule needs one kept fraction per stage layer, and at least one stage.")
    if any(b <= a for a, b in zip(layers, layers[1:])) or layers[0] < 0:
        raise BudgetError(f"stage layers must be strictly increasing and >= 0, got {list(layers)}.")
    if layers[-1] >= num_layers:
        raise BudgetError(
            f"stage layer {layers[-1]} does not exist: the model has {num_layers} decoder layers "
            f"(0..{num_layers - 1}). Use smaller layers or the 'progressive' scheduler's automatic ones."
        )
    if any(not 0 < f <= 1 for f in fractions) or any(b > a for a, b in zip(fractions, fractions[1:])):
        raise BudgetError(f"kept fractions must be in (0, 1] and non-increasing, got {list(fractions)}.")


def _fit_input(layers: Sequence[int], fractions: Sequence[float], n: int, retain: float,
               min_keep: int) -> list[Stage]:
    if layers[0] != 0:
        raise BudgetError(
            f"mode='input' asks for {retain:.0%} of the tokens to enter the LLM, but this schedule "
            f"first prunes at layer {layers[0]}; use Budget(..., mode='layer_average') or a schedule "
            "with a stage before the LLM."
        )
    first = input_keep_count(retain, n)
    if first < min_keep:
        raise BudgetError(
            f"retain={retain} keeps {first} of {n} tokens but at least {min_keep} (one per segment) "
            f"must survive; ask for retain >= {min_keep / n:.4f}."
        )
    counts = [first]
    for f in fractions[1:]:
        counts.append(max(min_keep, min(counts[-1], math.floor(first * f / fractions[0]))))
    return [Stage(layer, c) for layer, c in zip(layers, counts)]


def _fit_layer_average(layers: Sequence[int], fractions: Sequence[float], n: int, num_layers: int,
                       retain: float, min_keep: int) -> list[Stage]:
    widths = [b - a for a, b in zip(layers, list(layers[1:]) + [num_layers])]
    fixed = n * layers[0]  # token-layers before the first stage
    target = retain * n * num_layers
    lowest = fixed + min_keep * sum(widths)
    if target < lowest - num_layers:
        raise BudgetError(
            f"retain={retain} (layer_average) is below what this schedule can reach: the first stage "
            f"is at layer {layers[0]} and each stage keeps >= {min_keep} token(s), so the minimum is "
            f"{lowest / (n * num_layers):.4f}. Ask for more, or prune earlier."
        )

    def counts_at(scale: float) -> list[int]:
        return [min(n, max(min_keep, math.floor(scale * f * n))) for f in fractions]

    def total(counts: list[int]) -> int:
        return fixed + sum(c * w for c, w in zip(counts, widths))

    lo, hi = 0.0, 1.0 / fractions[-1] + 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if total(counts_at(mid)) <= target:
            lo = mid
        else:
            hi = mid
    counts = counts_at(lo)
    for i, width in enumerate(widths):  # hand out the floor remainders, earliest stage first
        cap = n if i == 0 else counts[i - 1]
        add = math.floor((target - total(counts)) / width + 0.5)
        counts[i] += max(0, min(cap - counts[i], add))
    if abs(total(counts) - target) > num_layers:  # pragma: no cover - guarded by the construction
        raise BudgetError(f"internal: could not fit counts {counts} to retain={retain}.")
    return [Stage(layer, c) for layer, c in zip(layers, counts)]


def __getattr__(name: str) -> object:
    if name in ("flops", "flops_ratio"):  # old import path; the FLOPs model lives in prunekit.flops
        from prunekit._deprecation import moved_name

        return moved_name("prunekit.budget", name, "prunekit.flops")
    raise AttributeError(f"module 'prunekit.budget' has no attribute {name!r}")
