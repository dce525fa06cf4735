"""Runtime: hooks that run pipelines inside Hugging Face models."""

from prunekit.runtime.apply import PruneHandle, apply, is_pruned
from prunekit.runtime.stats import ForwardStats, SampleStats

__all__ = ["apply", "is_pruned", "PruneHandle", "ForwardStats", "SampleStats"]
