"""Registers the peer methods (the strategy zoo)."""

from __future__ import annotations

from prunekit.hookspecs import hookimpl
from prunekit.registry import ScopedRegistry

STAGES: tuple[type, ...] = ()
PRESETS: dict = {}


@hookimpl
def prunekit_register_strategies(registry: ScopedRegistry) -> None:
    for stage in STAGES:
        registry.register_stage(stage)


@hookimpl
def prunekit_register_presets(registry: ScopedRegistry) -> None:
    for name, factory in PRESETS.items():
        registry.register_preset(name, factory, description=(factory.__doc__ or "").strip())
