"""The registry: lookups with "did you mean", collisions, namespacing, sources and listings."""

from __future__ import annotations

from typing import Literal

import pytest

import prunekit
from prunekit import PipelineConfig, UnknownStrategyError, presets
from prunekit.errors import RegistryCollisionError
from prunekit.interfaces import FrameSelector, StageConfig
from prunekit.registry import BUILTIN_SOURCE, KINDS, Registry


class _Keep(FrameSelector):
    """Keeps the first tokens."""

    class Config(StageConfig):
        name: Literal["acme.keep"] = "acme.keep"

    def select(self, features, keep, context):  # noqa: ANN001, ANN201
        return list(range(keep))


def test_unknown_stage_suggests_close_names_and_lists_all(builtin_plugins_only: Registry) -> None:
    with pytest.raises(UnknownStrategyError) as info:
        builtin_plugins_only.get("frame_selector", "dppp")
    message = str(info.value)
    assert "unknown frame_selector 'dppp'" in message
    assert "Did you mean 'dpp'?" in message
    for name in builtin_plugins_only.names("frame_selector"):
        assert name in message


def test_unknown_preset_suggests_the_nearest_presets(builtin_plugins_only: Registry) -> None:
    with pytest.raises(UnknownStrategyError, match=r"Did you mean 'hieravid-30'"):
        presets.get("hieravid30")


def test_unknown_name_without_close_match_still_lists_registered_names() -> None:
    registry = Registry()
    registry.register("frame_selector", "dpp", object)
    with pytest.raises(UnknownStrategyError) as info:
        registry.get("frame_selector", "zzzzzz")
    assert "Did you mean" not in str(info.value) and "Registered: dpp." in str(info.value)


def test_unknown_error_message_is_not_quoted_like_a_key_error() -> None:
    with pytest.raises(UnknownStrategyError) as info:
        Registry().get("segmenter", "x")
    assert str(info.value).startswith("unknown segmenter 'x'")
    assert isinstance(info.value, KeyError)  # still catchable as a KeyError


def test_unknown_kind_is_an_error_listing_the_kinds() -> None:
    with pytest.raises(UnknownStrategyError, match="unknown kind 'selector'.*frame_selector"):
        Registry().register("selector", "x", object)
    with pytest.raises(UnknownStrategyError, match="Did you mean 'segmenter'"):
        Registry().get("segmentor", "single")


def test_registering_a_name_twice_is_a_collision_naming_both_sources() -> None:
    registry = Registry()
    registry.scoped("acme-plugin").register("frame_selector", "acme.keep", _Keep)
    with pytest.raises(RegistryCollisionError, match="'acme-plugin' and by 'other-plugin'"):
        registry.scoped("other-plugin").register("frame_selector", "acme.keep", _Keep)


def test_builtin_names_cannot_be_taken_twice_either() -> None:
    registry = Registry()
    registry.register("frame_selector", "dpp", object)
    with pytest.raises(RegistryCollisionError, match="registered twice"):
        registry.register("frame_selector", "dpp", object)


def test_same_name_in_different_kinds_is_allowed() -> None:
    registry = Registry()
    registry.register("segmenter", "fixed", object)
    registry.register("layer_scheduler", "fixed", object)
    assert registry.names("segmenter") == ["fixed"] == registry.names("layer_scheduler")


def test_third_party_names_must_be_namespaced() -> None:
    registry = Registry()
    with pytest.raises(RegistryCollisionError, match=r"must be namespaced, e.g. 'acme_plugin.topk'"):
        registry.scoped("acme-plugin").register("frame_selector", "topk", _Keep)
    assert registry.names("frame_selector") == []
    registry.scoped("acme-plugin").register("frame_selector", "acme.topk", _Keep)  # namespaced: fine
    registry.register("frame_selector", "topk", _Keep)  # plain names are the built-ins' own


def test_register_stage_uses_the_config_name_and_kind_and_records_the_source() -> None:
    registry = Registry()
    registry.scoped("acme-plugin").register_stage(_Keep)
    entry = registry.entry("frame_selector", "acme.keep")
    assert entry.obj is _Keep and entry.source == "acme-plugin"
    assert entry.description == "Keeps the first tokens."  # the docstring's first line


def test_register_stage_requires_a_default_name() -> None:
    class Nameless(_Keep):
        class Config(StageConfig):
            pass

    with pytest.raises(RegistryCollisionError, match="needs a default"):
        Registry().scoped("acme").register_stage(Nameless)


def test_entries_are_sorted_by_kind_then_name() -> None:
    registry = Registry()
    registry.register("layer_scheduler", "b", object)
    registry.register("segmenter", "z", object)
    registry.register("segmenter", "a", object)
    assert [(e.kind, e.name) for e in registry.entries()] == [
        ("segmenter", "a"), ("segmenter", "z"), ("layer_scheduler", "b")]
    assert [e.name for e in registry.entries("segmenter")] == ["a", "z"]


def test_builtins_register_every_kind_they_ship_with_the_prunekit_source(builtin_plugins_only: Registry) -> None:
    for kind in ("segmenter", "merger", "allocator", "frame_selector", "layer_scheduler", "preset"):
        entries = list(builtin_plugins_only.entries(kind))
        assert entries and all(e.source == BUILTIN_SOURCE for e in entries)
    assert {"hieravid-30", "hieravid-20", "hieravid-10", "uniform", "random"} <= set(presets.list())


def test_list_strategies_reports_kind_name_and_source(builtin_plugins_only: Registry) -> None:
    listed = prunekit.list_strategies()
    assert ("frame_selector", "dpp", BUILTIN_SOURCE) in listed
    assert all(kind != "adapter" and kind in KINDS for kind, _, _ in listed)
    assert prunekit.list_strategies("segmenter") == [
        ("segmenter", n, BUILTIN_SOURCE) for n in builtin_plugins_only.names("segmenter")]


def test_config_dispatch_reports_unknown_stage_names(builtin_plugins_only: Registry) -> None:
    with pytest.raises(UnknownStrategyError, match="Did you mean 'uniform'"):
        PipelineConfig.parse({"selector": "unifrom", "scheduler": "fixed"})


def test_every_builtin_strategy_module_is_imported_by_the_builtin_plugin() -> None:
    """A method module that declares stages or presets but is missing from strategies/_plugin.py would
    register nothing: in a fresh process, importing every module of the package declares nothing new."""
    import subprocess
    import sys

    script = """
import importlib, pkgutil
import prunekit.strategies
from prunekit.strategies._plugin import BUILTIN
stages, presets = list(BUILTIN.stages), dict(BUILTIN.presets)
modules = [m.name for m in pkgutil.walk_packages(prunekit.strategies.__path__, 'prunekit.strategies.')]
for name in modules:
    importlib.import_module(name)
new = [c.__name__ for c in BUILTIN.stages if c not in stages] + [n for n in BUILTIN.presets if n not in presets]
assert 'prunekit.strategies.divprune' in modules and len(stages) == 25, (modules, len(stages))
print('undeclared:', new)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "undeclared: []"
