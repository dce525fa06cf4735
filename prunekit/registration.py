"""Declare stages and presets where they are defined; a plugin's hooks then register the declarations.

The pattern of timm's ``@register_model``: a method module decorates its stage classes and preset
factories, so adding a method is one module; the package's plugin module imports its method modules
and hands `Declarations.register_stages` / `Declarations.register_presets` to the pluggy hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from prunekit.errors import RegistryCollisionError
from prunekit.registry import ScopedRegistry

StageClass = TypeVar("StageClass", bound=type)


class Declarations:
    """Stage classes and preset factories declared by one package, in declaration order."""

    def __init__(self) -> None:
        self.stages: list[type] = []
        self.presets: dict[str, tuple[Callable[[], Any], str]] = {}

    def stage(self, cls: StageClass) -> StageClass:
        """Class decorator: declare a stage (registered under its ``Config``'s ``name``)."""
        if cls not in self.stages:
            self.stages.append(cls)
        return cls

    def preset(self, name: str, factory: Callable[[], Any], description: str = "") -> Callable[[], Any]:
        """Declare a zero-argument factory returning a `PipelineConfig` as preset ``name``."""
        if name in self.presets and self.presets[name][0] is not factory:
            raise RegistryCollisionError(f"preset {name!r} is declared twice; rename one of them.")
        self.presets[name] = (factory, description or (factory.__doc__ or "").strip())
        return factory

    def register_stages(self, registry: ScopedRegistry) -> None:
        """Register every declared stage (the body of a ``prunekit_register_strategies`` hook)."""
        for stage in self.stages:
            registry.register_stage(stage)

    def register_presets(self, registry: ScopedRegistry) -> None:
        """Register every declared preset (the body of a ``prunekit_register_presets`` hook)."""
        for name, (factory, description) in self.presets.items():
            registry.register_preset(name, factory, description=description)
