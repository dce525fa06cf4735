"""Deprecated alias of `prunekit.model_adapter` (the `ModelAdapter` interface); import from there."""

from prunekit._deprecation import moved_module

__getattr__ = moved_module("prunekit.adapter", "prunekit.model_adapter")
