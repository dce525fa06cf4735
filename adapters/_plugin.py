"""Registers the built-in model adapters."""

from __future__ import annotations

from prunekit.hookspecs import hookimpl
from prunekit.registry import ScopedRegistry

ADAPTERS: dict[str, str] = {}  # filled as adapters land: name -> "module:Class"


@hookimpl
def prunekit_register_adapters(registry: ScopedRegistry) -> None:
    import importlib

    for name, target in ADAPTERS.items():
        module, cls = target.split(":")
        registry.register("adapter", name, getattr(importlib.import_module(module), cls))
