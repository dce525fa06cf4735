"""Which prunekit strategy a vLLM model runs, checked at start-up (no vLLM import here).

The strategy is named in the model config (``hf_overrides={"prunekit_strategy": ...}``) or in the
environment variable ``PRUNEKIT_VLLM_STRATEGY``; the model config wins. The value is a preset name,
a ``.yaml``/``.yml``/``.json`` config file, or (model config only) an inline config mapping.
vLLM's ``video_pruning_rate`` fixes how many tokens survive; a budget written in a config must agree.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from prunekit.config import PipelineConfig
from prunekit.errors import BudgetError, ConfigError
from prunekit.pipeline import Pipeline
from prunekit.pre_llm import check_pre_llm

CONFIG_KEY = "prunekit_strategy"
ENV_VAR = "PRUNEKIT_VLLM_STRATEGY"
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def strategy_setting(hf_config: Any, environ: Mapping[str, str] | None = None) -> Any:
    """The raw strategy setting: ``hf_config.prunekit_strategy``, else ``$PRUNEKIT_VLLM_STRATEGY``, else None."""
    value = getattr(hf_config, CONFIG_KEY, None)
    if value is None:
        value = (os.environ if environ is None else environ).get(ENV_VAR) or None
    return value


def load_strategy(setting: Any) -> Pipeline:
    """Build the pipeline a setting names and check that it can run before the LLM.

    Raises:
        UnknownStrategyError: an unknown preset name (the message lists the known ones).
        ConfigError: an invalid config, or a strategy with in-LLM or attention-ranked stages.
    """
    if isinstance(setting, Mapping):
        config = PipelineConfig.parse(dict(setting))
    elif isinstance(setting, str) and setting.endswith(CONFIG_SUFFIXES):
        if not os.path.isfile(setting):
            raise ConfigError(f"prunekit strategy file {setting!r} does not exist (set {CONFIG_KEY} or {ENV_VAR} "
                              "to a preset name or an existing config file).")
        config = PipelineConfig.load(setting)
    elif isinstance(setting, str):
        from prunekit import presets

        config = presets.get(setting)
        config = config.with_budget(None)  # a preset's default retention gives way to vLLM's rate
    else:
        raise ConfigError(f"{CONFIG_KEY} must be a preset name, a config file path or a config mapping, "
                          f"got {type(setting).__name__}.")
    pipeline = Pipeline(config)
    check_pre_llm(pipeline)
    return pipeline


def check_rate(pipeline: Pipeline, pruning_rate: float | None) -> None:
    """Raise `BudgetError` if the pipeline's own budget disagrees with vLLM's ``video_pruning_rate``.

    vLLM reserves ``(1 - rate)`` of the video tokens in the prompt before any feature exists, so
    that is the count prunekit must keep; a config that asks for another retention is refused.
    """
    budget = pipeline.budget
    if budget is None:
        return
    wanted = 1.0 - (pruning_rate or 0.0)
    if not math.isclose(budget.retain, wanted, abs_tol=1e-6):
        raise BudgetError(
            f"strategy {pipeline.config.name!r} asks to retain {budget.retain:g} of the video tokens but vLLM's "
            f"video_pruning_rate={pruning_rate or 0.0:g} reserves {wanted:g} of them in the prompt. Remove the "
            f"config's budget (vLLM's rate then decides) or pass video_pruning_rate={1.0 - budget.retain:g}.")
