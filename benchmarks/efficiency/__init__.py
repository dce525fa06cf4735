"""Efficiency benchmark: FLOPs, TTFT, prefill and decode speed, memory and prunekit's own overhead.

    python -m benchmarks.efficiency --model-shape llava-ov-7b --frames 32 --out results/
    prunekit bench efficiency --model-shape tiny

See ``docs/benchmarks-efficiency.md`` for the method and the published numbers.
"""

from .runner import (
    DEFAULT_STRATEGIES,
    EfficiencyConfig,
    StrategySpec,
    add_arguments,
    config_from_args,
    main,
    parse_strategies,
    run_efficiency,
)
from .shapes import SHAPES, ModelShape, get_shape

__all__ = [
    "DEFAULT_STRATEGIES", "EfficiencyConfig", "StrategySpec", "SHAPES", "ModelShape", "add_arguments",
    "config_from_args", "get_shape", "main", "parse_strategies", "run_efficiency",
]
