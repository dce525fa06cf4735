"""Plugin discovery: the ``prunekit`` entry-point group, loaded through pluggy.

Built-ins register through the same group as third-party plugins. A plugin that fails to import
or to register is skipped with a warning that names it; it never breaks ``import prunekit``.
Set ``PRUNEKIT_DISABLE_PLUGIN_AUTOLOAD=1`` to load only the built-ins.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from importlib.metadata import entry_points
from types import ModuleType

import pluggy

from prunekit import hookspecs
from prunekit.registry import BUILTIN_SOURCE, DISABLE_ENV, Registry, autoload_disabled

ENTRY_POINT_GROUP = "prunekit"
BUILTIN_MODULES = (
    "prunekit.strategies._plugin",
    "prunekit.adapters._plugin",
)
HOOKS = ("prunekit_register_strategies", "prunekit_register_adapters", "prunekit_register_presets")

_lock = threading.RLock()
_state: dict[str, object] = {}


class PluginWarning(UserWarning):
    """A plugin was skipped because it failed to load or register."""


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (plugins loaded on first use)."""
    _ensure_loaded()
    return _state["pm"]  # type: ignore[return-value]


def get_registry() -> Registry:
    """The process-wide registry, filled by every loaded plugin."""
    _ensure_loaded()
    return _state["registry"]  # type: ignore[return-value]


def loaded_plugins() -> list[tuple[str, str]]:
    """``(plugin name, source distribution)`` of every plugin that registered successfully."""
    _ensure_loaded()
    return list(_state["plugins"])  # type: ignore[arg-type]


def reload_plugins() -> Registry:
    """Forget every plugin and discover them again (e.g. after installing one in-process)."""
    with _lock:
        _state.clear()
        importlib.invalidate_caches()
    return get_registry()


def _ensure_loaded() -> None:
    with _lock:
        if "registry" in _state:
            return
        pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        pm.add_hookspecs(hookspecs)
        registry = Registry()
        plugins: list[tuple[str, str]] = []
        for name, source, module in _discover():
            if module is None:
                continue
            registered = _register_plugin(pm, registry, name, source, module)
            if registered is not None:
                registry = registered
                plugins.append((name, source))
        pm.check_pending()
        _state.update(pm=pm, registry=registry, plugins=plugins)


def _discover() -> list[tuple[str, str, ModuleType | None]]:
    """Built-ins first (always), then third-party entry points unless autoload is disabled."""
    found: list[tuple[str, str, ModuleType | None]] = []
    for module_name in BUILTIN_MODULES:
        found.append((module_name, BUILTIN_SOURCE, importlib.import_module(module_name)))
    if autoload_disabled():
        return found
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value in BUILTIN_MODULES:
            continue
        source = ep.dist.name if ep.dist is not None else ep.name
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not break prunekit
            warnings.warn(
                f"prunekit: skipping plugin {ep.name!r} from distribution {source!r}: it failed to "
                f"import ({type(exc).__name__}: {exc}). Fix or uninstall it, or set {DISABLE_ENV}=1.",
                PluginWarning, stacklevel=3)
            module = None
        found.append((ep.name, source, module))
    return found


def _register_plugin(pm: pluggy.PluginManager, registry: Registry, name: str, source: str,
                     module: ModuleType) -> Registry | None:
    """Register one plugin and call its hooks on a copy of ``registry``: the copy if all succeed, else None."""
    scratch = registry.copy()  # collisions are detected against what is already there
    try:
        pm.register(module, name=name)
        pm.check_pending()  # a misspelled hook name fails this plugin only, not every plugin
        others = [plugin for plugin in pm.get_plugins() if plugin is not module]
        for hook in HOOKS:
            pm.subset_hook_caller(hook, remove_plugins=others)(registry=scratch.scoped(source))
    except Exception as exc:
        if pm.is_registered(module):
            pm.unregister(module)
        warnings.warn(
            f"prunekit: skipping plugin {name!r} from distribution {source!r}: registering failed "
            f"({type(exc).__name__}: {exc}).", PluginWarning, stacklevel=4)
        return None
    return scratch
