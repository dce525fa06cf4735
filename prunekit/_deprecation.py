"""Old import paths kept as aliases: importing one warns once and forwards every name to the new module."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def moved_module(old: str, new: str) -> Callable[[str], Any]:
    """Warn that module ``old`` moved to ``new``; return a module ``__getattr__`` forwarding to ``new``."""
    warnings.warn(f"{old} is deprecated and will be removed; import from {new} instead.",
                  DeprecationWarning, stacklevel=3)
    target = importlib.import_module(new)

    def forward(name: str) -> Any:
        return getattr(target, name)

    return forward


def moved_name(module: str, name: str, new_module: str) -> Any:
    """Warn that ``module.name`` moved to ``new_module.name`` and return the object."""
    warnings.warn(f"{module}.{name} is deprecated; import it from {new_module} instead.",
                  DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(new_module), name)
