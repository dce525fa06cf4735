"""Named registries of stages, adapters and presets, filled by plugins through pluggy hooks."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prunekit.errors import RegistryCollisionError, UnknownStrategyError

KINDS = ("segmenter", "merger", "allocator", "frame_selector", "layer_scheduler", "encoder", "adapter", "preset")
BUILTIN_SOURCE = "prunekit"


@dataclass(frozen=True)
class Entry:
    """One registered object: what it is, under which name, and which distribution provided it."""

    kind: str
    name: str
    obj: Any
    source: str
    description: str = ""


class Registry:
    """Holds every registered stage class, adapter and preset by ``(kind, name)``.

    Third-party names must be namespaced (``"acme.topk"``); plain names are reserved for built-ins.
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}

    def copy(self) -> Registry:
        """A new registry holding the same entries (registering into it leaves this one unchanged)."""
        clone = Registry()
        clone._entries = {kind: dict(entries) for kind, entries in self._entries.items()}
        return clone

    def register(self, kind: str, name: str, obj: Any, *, source: str = BUILTIN_SOURCE,
                 description: str = "") -> None:
        """Add ``obj`` under ``(kind, name)``; raises on an unknown kind, a bad name or a collision."""
        if kind not in self._entries:
            raise UnknownStrategyError(_unknown_message("kind", kind, KINDS))
        if source != BUILTIN_SOURCE and "." not in name:
            raise RegistryCollisionError(
                f"plugin {source!r} registered {kind} {name!r}: third-party names must be namespaced, "
                f"e.g. '{source.replace('-', '_')}.{name}'."
            )
        existing = self._entries[kind].get(name)
        if existing is not None:
            raise RegistryCollisionError(
                f"{kind} {name!r} is registered twice: by {existing.source!r} and by {source!r}; "
                "rename one of them."
            )
        if not description:
            description = _first_line(getattr(obj, "__doc__", None) or "")
        self._entries[kind][name] = Entry(kind, name, obj, source, description)

    def get(self, kind: str, name: str) -> Any:
        """The object registered as ``(kind, name)``, or an error with "did you mean"."""
        return self.entry(kind, name).obj

    def entry(self, kind: str, name: str) -> Entry:
        """The full `Entry` for ``(kind, name)``."""
        if kind not in self._entries:
            raise UnknownStrategyError(_unknown_message("kind", kind, KINDS))
        try:
            return self._entries[kind][name]
        except KeyError:
            raise UnknownStrategyError(_unknown_message(kind, name, self.names(kind))) from None

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind``."""
        return sorted(self._entries[kind])

    def entries(self, kind: str | None = None) -> Iterator[Entry]:
        """All entries, optionally of one kind, sorted by kind then name."""
        kinds = KINDS if kind is None else (kind,)
        for k in kinds:
            for name in self.names(k):
                yield self._entries[k][name]

    def scoped(self, source: str) -> ScopedRegistry:
        """A view that records ``source`` on everything registered through it."""
        return ScopedRegistry(self, source)


class ScopedRegistry:
    """What a plugin's hook receives: `register` stamps the plugin's distribution name."""

    def __init__(self, registry: Registry, source: str) -> None:
        self._registry, self.source = registry, source

    def register(self, kind: str, name: str, obj: Any, *, description: str = "") -> None:
        """Register ``obj`` as ``(kind, name)`` on behalf of this plugin."""
        self._registry.register(kind, name, obj, source=self.source, description=description)

    def register_stage(self, cls: Any, *, description: str = "") -> None:
        """Register a stage class under its ``Config``'s ``name`` and its interface's kind."""
        name = cls.Config.model_fields["name"].default
        if not isinstance(name, str):
            raise RegistryCollisionError(f"{cls.__name__}.Config.name needs a default (its registered name).")
        self.register(cls.kind, name, cls, description=description)

    def register_preset(self, name: str, factory: Callable[[], Any], *, description: str = "") -> None:
        """Register a zero-argument factory returning a `PipelineConfig`."""
        self.register("preset", name, factory, description=description)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _unknown_message(kind: str, name: str, known: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listing = ", ".join(known) if known else "(none registered)"
    return f"unknown {kind} {name!r}.{hint} Registered: {listing}.{_autoload_note()}"


DISABLE_ENV = "PRUNEKIT_DISABLE_PLUGIN_AUTOLOAD"


def autoload_disabled() -> bool:
    """Whether ``PRUNEKIT_DISABLE_PLUGIN_AUTOLOAD`` switches third-party plugin autoload off."""
    return os.environ.get(DISABLE_ENV, "").strip() not in ("", "0", "false", "False")


def _autoload_note() -> str:
    """Why a plugin's names may be missing: autoload switched off by the environment."""
    if not autoload_disabled():
        return ""
    return (f" Plugin autoload is off ({DISABLE_ENV} is set), so only built-ins and explicitly loaded plugins "
            f"are registered; unset {DISABLE_ENV} to load installed plugins.")
