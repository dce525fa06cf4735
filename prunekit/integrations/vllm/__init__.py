"""vLLM plugin: serve Qwen2.5-VL and Qwen3-VL with a prunekit pre-LLM strategy.

vLLM calls `register` in every process through the ``vllm.general_plugins`` entry point. It
replaces the two architectures with subclasses (`prunekit.integrations.vllm.models`) whose video
post-processing keeps the tokens prunekit chooses, at exactly the count vLLM reserved from
``video_pruning_rate``. Without a strategy setting (see `settings`) the subclasses behave exactly
like vLLM's own classes. See the docs page "Serving with vLLM".
"""

from __future__ import annotations

from prunekit.integrations.vllm.settings import CONFIG_KEY, ENV_VAR, check_rate, load_strategy, strategy_setting

__all__ = ["ARCHITECTURES", "CONFIG_KEY", "ENV_VAR", "register", "load_strategy", "check_rate",
           "strategy_setting"]

#: vLLM architecture name -> the prunekit subclass that replaces it
ARCHITECTURES = {
    "Qwen2_5_VLForConditionalGeneration": "prunekit.integrations.vllm.models:PrunekitQwen2_5_VL",
    "Qwen3VLForConditionalGeneration": "prunekit.integrations.vllm.models:PrunekitQwen3VL",
}


def register() -> None:
    """Entry point of ``vllm.general_plugins``: register the subclasses (safe to call repeatedly)."""
    from vllm import ModelRegistry

    from prunekit.integrations.vllm.cpu_fix import fix_cpu_runner

    for architecture, target in ARCHITECTURES.items():
        ModelRegistry.register_model(architecture, target)
    fix_cpu_runner()
