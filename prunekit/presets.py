"""Named pipelines: ``presets.get("hieravid-30")``, ``presets.list()``."""

from __future__ import annotations

import builtins

from prunekit.config import PipelineConfig


def get(name: str) -> PipelineConfig:
    """A fresh `PipelineConfig` for the registered preset ``name``."""
    from prunekit.plugins import get_registry

    return get_registry().get("preset", name)()


def list() -> builtins.list[str]:  # noqa: A001 - mirrors timm's list_models
    """Names of every registered preset."""
    from prunekit.plugins import get_registry

    return get_registry().names("preset")
