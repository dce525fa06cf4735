"""The whole plugin contract: three historic hooks in the ``prunekit`` pluggy project."""

from __future__ import annotations

import pluggy

from prunekit.registry import ScopedRegistry

hookspec = pluggy.HookspecMarker("prunekit")
hookimpl = pluggy.HookimplMarker("prunekit")


@hookspec(historic=True)
def prunekit_register_strategies(registry: ScopedRegistry) -> None:
    """Register stage classes (segmenters, mergers, allocators, frame selectors, layer schedulers).

    Call ``registry.register_stage(MyStage)`` for each; names must be namespaced (``acme.topk``).
    """


@hookspec(historic=True)
def prunekit_register_adapters(registry: ScopedRegistry) -> None:
    """Register model adapters with ``registry.register("adapter", name, AdapterClass)``."""


@hookspec(historic=True)
def prunekit_register_presets(registry: ScopedRegistry) -> None:
    """Register named pipelines with ``registry.register_preset(name, factory)``."""
