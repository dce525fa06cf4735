"""Layer schedulers: fixed stages, and HieraVid-style progressive pruning for any depth."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator

from prunekit.budget import Budget, check_schedule, fit_stage_counts, input_keep_count
from prunekit.errors import BudgetError
from prunekit.interfaces import LayerScheduler, StageConfig
from prunekit.strategies.registration import register_stage
from prunekit.types import Stage


@register_stage
class FixedScheduler(LayerScheduler):
    """Prunes at given ``layers`` keeping given fractions of the visual tokens (0 = before the LLM).

    With a budget, the fractions give the shape and are rescaled to meet it exactly. With
    ``reference_depth``, ``layers`` were chosen for a model that deep and are scaled to the actual
    depth (e.g. layer 10 of a 28-layer LLM becomes layer 3 of an 8-layer one).
    """

    class Config(StageConfig):
        name: Literal["fixed"] = "fixed"
        layers: tuple[int, ...] = Field((0,), description="decoder layers whose input is pruned (0 = before the LLM)")
        keep_fractions: tuple[float, ...] = Field(
            (0.3,), description="visual tokens kept from each layer on, as fractions of N (the shape under a budget)")
        reference_depth: int | None = Field(
            None, description="depth the layers were chosen for; they are scaled to the model's depth")

    def stage_layers(self, num_layers: int) -> list[int]:
        """The configured layers, scaled to ``num_layers`` when a reference depth is set."""
        depth = self.config.reference_depth
        if depth is None or depth == num_layers:
            return list(self.config.layers)
        return [0 if layer == 0 else max(1, round(layer * num_layers / depth)) for layer in self.config.layers]

    def plan(self, n_visual: int, num_layers: int, budget: Budget | None, min_keep: int = 1) -> list[Stage]:
        layers, fractions = self.stage_layers(num_layers), list(self.config.keep_fractions)
        if budget is not None:
            return fit_stage_counts(layers, fractions, n_visual, num_layers, budget, min_keep)
        check_schedule(layers, fractions, num_layers)
        counts = [max(min_keep, min(n_visual, _count(layer, f, n_visual))) for layer, f in zip(layers, fractions)]
        return [Stage(layer, c) for layer, c in zip(layers, counts)]


def _count(layer: int, fraction: float, n_visual: int) -> int:
    """Budget-free count of a fixed stage: the input stage rounds like ``Budget(mode="input")``
    (`input_keep_count`); in-LLM stages floor."""
    return input_keep_count(fraction, n_visual) if layer == 0 else math.floor(fraction * n_visual)


@register_stage
class ProgressiveScheduler(LayerScheduler):
    """HieraVid's schedule: prune ``p0`` before the LLM, then ``p1..pm`` of the survivors at
    ``m`` evenly spaced layers (L/4, L/2, 3L/4 for m = 3).

    Without a budget the published fractions apply (each stage keeps ``floor(previous * (1 - p))``);
    with one, that shape is rescaled so the budget is met exactly.
    """

    class Config(StageConfig):
        name: Literal["progressive"] = "progressive"
        prune_fractions: tuple[float, ...] = Field(
            (0.5, 0.3, 0.3, 0.57), description="share of the live tokens removed at each stage (p0, p1, ...)")
        layers: tuple[int, ...] | None = Field(
            None, description="stage layers; None: 0 then evenly spaced (L/4, L/2, ...)")
        input_stage: bool = Field(True, description="whether the first fraction applies before the LLM")

        @field_validator("prune_fractions")
        @classmethod
        def _fractions(cls, value: tuple[float, ...]) -> tuple[float, ...]:
            if not value or any(not 0 <= p < 1 for p in value):
                raise ValueError("prune fractions must be in [0, 1); 0.3 removes 30% of the live tokens")
            return value

    def stage_layers(self, num_layers: int) -> list[int]:
        """Layers of the stages for a model of ``num_layers`` decoder layers."""
        if self.config.layers is not None:
            return list(self.config.layers)
        fractions = self.config.prune_fractions
        inner = len(fractions) - (1 if self.config.input_stage else 0)
        layers = [round(num_layers * i / (inner + 1)) for i in range(1, inner + 1)]
        layers = ([0] if self.config.input_stage else []) + layers
        if any(b <= a for a, b in zip(layers, layers[1:])) or (layers and layers[-1] >= num_layers):
            raise BudgetError(
                f"{len(fractions)} progressive stages do not fit a {num_layers}-layer model; give "
                "fewer prune_fractions or explicit layers.")
        return layers

    def keep_fractions(self) -> list[float]:
        """Kept fraction of N after each stage: cumulative products of ``1 - p``."""
        out, live = [], 1.0
        for p in self.config.prune_fractions:
            live *= 1.0 - p
            out.append(live)
        return out

    def plan(self, n_visual: int, num_layers: int, budget: Budget | None, min_keep: int = 1) -> list[Stage]:
        layers = self.stage_layers(num_layers)
        if len(layers) != len(self.config.prune_fractions):
            raise BudgetError(f"layers {layers} and prune_fractions {self.config.prune_fractions} differ in length.")
        if budget is not None:
            return fit_stage_counts(layers, self.keep_fractions(), n_visual, num_layers, budget, min_keep)
        check_schedule(layers, self.keep_fractions(), num_layers)
        stages, live = [], n_visual
        for layer, p in zip(layers, self.config.prune_fractions):
            live = max(min_keep, min(live, math.floor(live * (1.0 - p) + 1e-9)))
            stages.append(Stage(layer, live))
        return stages
