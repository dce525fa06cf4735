"""The whole plugin contract: three hooks in the ``prunekit`` pluggy project.

`prunekit.plugins` calls each plugin's hooks once, right after registering it, with a registry scoped to
its distribution (pluggy's ``subset_hook_caller``), so one failing plugin is skipped alone.
"""

from __future__ import annotations

import pluggy

from prunekit.registry import ScopedRegistry

hookspec = pluggy.HookspecMarker("prunekit")
hookimpl = pluggy.HookimplMarker("prunekit")


@hookspec
def prunekit_register_strategies(registry: ScopedRegistry) -> None:
    """Register stage classes (segmenters, mergers, allocators, frame selectors, layer schedulers).

    Call ``registry.register_stage(MyStage)`` for each; names must be namespaced (``acme.topk``).
    """


@hookspec
def prunekit_register_adapters(registry: ScopedRegistry) -> None:
    """Register model adapters with ``registry.register("adapter", name, AdapterClass)``."""


@hookspec
def prunekit_register_presets(registry: ScopedRegistry) -> None:
    """Register named pipelines with ``registry.register_preset(name, factory)``."""
