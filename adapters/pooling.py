"""Deprecated alias of `prunekit.speedups` (the LLaVA-OneVision pooling speed patch); import from there."""

from prunekit._deprecation import moved_module

__getattr__ = moved_module("prunekit.adapters.pooling", "prunekit.speedups")
