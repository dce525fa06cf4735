"""Registers the built-in strategies through the same hooks third-party plugins use.

Each method module declares its stages and presets where it defines them
(`prunekit.strategies.registration`); importing the modules below is what fills the declarations.
"""

from __future__ import annotations

from prunekit.hookspecs import hookimpl
from prunekit.registry import ScopedRegistry
from prunekit.strategies import (  # noqa: F401  (imported for their declarations)
    cdpruner,
    compositions,
    divprune,
    dycoke,
    earlytom,
    fastv,
    fastvid,
    framefusion,
    holitom,
    pdrop,
    prunevid,
    vidcom2,
    visionzip,
)
from prunekit.strategies.generic import allocators, schedulers, segmenters, selectors  # noqa: F401
from prunekit.strategies.hieravid import allocator, merger, presets, segmenter, selector  # noqa: F401
from prunekit.strategies.registration import BUILTIN


@hookimpl
def prunekit_register_strategies(registry: ScopedRegistry) -> None:
    """Register every built-in stage class under its config name."""
    BUILTIN.register_stages(registry)


@hookimpl
def prunekit_register_presets(registry: ScopedRegistry) -> None:
    """Register every built-in preset, described by its one-line summary."""
    BUILTIN.register_presets(registry)
