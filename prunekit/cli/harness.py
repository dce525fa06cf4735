"""Find the benchmark harness the ``prunekit bench`` commands drive."""

from __future__ import annotations

import importlib
from types import ModuleType

from prunekit.errors import PrunekitError


def benchmark_package(name: str) -> ModuleType:
    """``prunekit.benchmarks.<name>``; from a source checkout not yet installed that way, ``benchmarks.<name>``."""
    try:
        return importlib.import_module(f"prunekit.benchmarks.{name}")
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("prunekit.benchmarks"):
            raise
    try:
        return importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != "benchmarks":
            raise
        raise PrunekitError("the benchmark harness is not installed: reinstall prunekit, or run from a source "
                            "checkout's root folder.") from None
