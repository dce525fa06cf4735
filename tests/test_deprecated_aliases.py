"""Old import paths still work, warn with the new path, and hand out the very same objects."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize(("old", "new", "name"), [
    ("prunekit.adapter", "prunekit.model_adapter", "ModelAdapter"),
    ("prunekit.modelzoo", "prunekit.adapters.random_models", "build_model"),
    ("prunekit.adapters.pooling", "prunekit.speedups", "fast_video_pooling"),
])
def test_moved_module_warns_and_forwards(monkeypatch: pytest.MonkeyPatch, old: str, new: str, name: str) -> None:
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        alias = importlib.import_module(old)
    assert getattr(alias, name) is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError):
        alias.no_such_name  # noqa: B018


def test_flops_from_budget_warns_and_is_the_flops_module_function() -> None:
    import prunekit.budget

    with pytest.warns(DeprecationWarning, match=r"prunekit\.flops"):
        assert prunekit.budget.flops is importlib.import_module("prunekit.flops").flops
    assert prunekit.model_adapter.ModelAdapter.__module__ == "prunekit.model_adapter"
