"""Deprecated alias of `prunekit.adapters.random_models` (random-weight models); import from there."""

from prunekit._deprecation import moved_module

__getattr__ = moved_module("prunekit.modelzoo", "prunekit.adapters.random_models")
