"""Registers the built-in model adapters."""

from __future__ import annotations

from prunekit.adapters.llava_onevision import LlavaOnevisionAdapter
from prunekit.adapters.llava_video import LlavaVideoAdapter
from prunekit.adapters.qwen2_vl import Qwen2VLAdapter, Qwen25VLAdapter
from prunekit.adapters.qwen3_5 import Qwen35Adapter
from prunekit.adapters.qwen3_vl import Qwen3VLAdapter
from prunekit.hookspecs import hookimpl
from prunekit.registry import ScopedRegistry

ADAPTERS = (LlavaOnevisionAdapter, LlavaVideoAdapter, Qwen2VLAdapter, Qwen25VLAdapter, Qwen3VLAdapter, Qwen35Adapter)


@hookimpl
def prunekit_register_adapters(registry: ScopedRegistry) -> None:
    for adapter in ADAPTERS:
        registry.register("adapter", adapter.name, adapter)
