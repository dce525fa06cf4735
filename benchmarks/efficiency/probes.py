"""Timing instruments: CUDA-event probes on model parts, and an event timer for prunekit's own parts.

Nothing here synchronises inside a forward: events are recorded on the current stream and read
after the forward has finished, so the measured run keeps its natural CPU/GPU overlap. On the CPU
(tiny shapes) the same API falls back to host clocks.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 1, cuda: bool = True) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` calls after ``warmup`` (CUDA events, or the host clock)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(cuda)
        start = Mark(cuda)
        fn()
        end = Mark(cuda)
        sync(cuda)
        times.append(start.until(end))
    return statistics.median(times)


def sync(cuda: bool) -> None:
    """Wait for the current CUDA device (a no-op on the CPU)."""
    if cuda:
        torch.cuda.synchronize()


class Mark:
    """A point in time: a CUDA event on GPU, a host clock reading on CPU."""

    __slots__ = ("event", "host")

    def __init__(self, cuda: bool) -> None:
        self.host = time.perf_counter()
        self.event = None
        if cuda:
            self.event = torch.cuda.Event(enable_timing=True)
            self.event.record()

    def until(self, other: Mark) -> float:
        """Milliseconds from this mark to ``other`` (call after synchronising)."""
        if self.event is not None and other.event is not None:
            return float(self.event.elapsed_time(other.event))
        return (other.host - self.host) * 1e3

    def host_until(self, other: Mark) -> float:
        """Host milliseconds from this mark to ``other``."""
        return (other.host - self.host) * 1e3


@dataclass
class Interval:
    """A timed call of a module (or region)."""

    start: Mark
    end: Mark | None = None

    def ms(self) -> float:
        return self.start.until(self.end) if self.end is not None else float("nan")


class ModuleProbe:
    """Records one `Interval` per forward call of ``module`` (pre-hook first, post-hook last)."""

    def __init__(self, module: nn.Module, cuda: bool) -> None:
        self.cuda = cuda
        self.calls: list[Interval] = []
        self._handles = [
            module.register_forward_pre_hook(self._pre, prepend=True),
            module.register_forward_hook(self._post),
        ]

    def _pre(self, module: nn.Module, args: tuple) -> None:
        self.calls.append(Interval(Mark(self.cuda)))

    def _post(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self.calls and self.calls[-1].end is None:
            self.calls[-1].end = Mark(self.cuda)

    def reset(self) -> None:
        self.calls.clear()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


class EventTimer:
    """Drop-in for `prunekit.runtime.timing.StageTimer` that times with CUDA events (no syncs).

    ``timer(name)`` is a context manager; `snapshot` synchronises once and returns GPU-timeline
    milliseconds per name (host milliseconds on the CPU). `host_snapshot` gives host time per name.
    """

    sync = False

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self._spans: dict[str, list[tuple[Mark, Mark]]] = defaultdict(list)
        self._kept: dict[str, list[tuple[Mark, Mark]]] = defaultdict(list)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = Mark(self.cuda)
        try:
            yield
        finally:
            self._spans[name].append((start, Mark(self.cuda)))

    def wrap(self, name: str, fn: Callable) -> Callable:
        """``fn`` timed under ``name``."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self(name):
                return fn(*args, **kwargs)

        return timed

    def snapshot(self) -> dict[str, float]:
        if self.cuda:
            torch.cuda.synchronize()
        return {name: sum(a.until(b) for a, b in spans) for name, spans in self._spans.items()}

    def host_snapshot(self) -> dict[str, float]:
        return {name: sum(a.host_until(b) for a, b in spans) for name, spans in self._spans.items()}

    def counts(self) -> dict[str, int]:
        return {name: len(spans) for name, spans in self._spans.items()}

    def reset(self) -> None:
        """Called by the runtime at the start of every prefill: the spans of the previous one are kept
        apart (see `take`)."""
        for name, spans in self._spans.items():
            self._kept[name].extend(spans)
        self._spans.clear()

    def clear(self) -> None:
        self._spans.clear()
        self._kept.clear()

    def all_spans(self) -> dict[str, list[tuple[Mark, Mark]]]:
        """Every span per part since the timer was created (earlier prefills' and the current one's)."""
        spans: dict[str, list[tuple[Mark, Mark]]] = defaultdict(list)
        for source in (self._kept, self._spans):
            for name, items in source.items():
                spans[name].extend(items)
        return spans


PARTS = ("segment", "summarize", "merge", "relevance", "allocate", "selector", "dpp", "plan", "select",
         "hooks_prefill", "hooks_layers")


@contextmanager
def instrument(handle: Any, cuda: bool) -> Iterator[EventTimer | None]:
    """Time prunekit's parts of ``handle`` (a `PruneHandle`) with an `EventTimer`, then undo.

    Parts: ``segment`` (segmenter), ``summarize`` (allocator summaries), ``merge`` (merger),
    ``relevance`` (last-query attention, the runtime's own timer), ``allocate`` (per-segment counts),
    ``selector`` (frame selector, all segments), ``dpp`` (greedy MAP kernel + fill inside the selector),
    the runtime's own ``plan`` and ``select`` regions (a stage's `Pipeline.step`), and the totals of the
    runtime's hooks: ``hooks_prefill`` (before the LLM: layouts, planning, layer-0 stage, gathers) and
    ``hooks_layers`` (in-LLM stages: relevance, selection, gathers, masks).
    The runtime's parts come from `PruneHandle.traced`, the stages' from wrapping ``handle.pipeline``.
    """
    timer = EventTimer(cuda)
    pipe = handle.pipeline
    patched: list[tuple[object, str]] = []

    def patch(obj: object, attr: str, name: str) -> None:
        if obj is None or not hasattr(obj, attr):
            return
        setattr(obj, attr, timer.wrap(name, getattr(obj, attr)))
        patched.append((obj, attr))

    import prunekit.ops.dpp as dpp_module

    patch(pipe.segmenter, "segment", "segment")
    patch(pipe.allocator, "summarize", "summarize")
    patch(pipe.allocator, "allocate", "allocate")
    patch(pipe.merger, "merge", "merge")
    patch(pipe.selector, "select_segments", "selector")
    original_greedy = dpp_module.greedy_map
    dpp_module.greedy_map = timer.wrap("dpp", original_greedy)
    selector_module = _module_of(pipe.selector)
    swapped_selector = selector_module is not None and getattr(selector_module, "greedy_map", None) is original_greedy
    if swapped_selector:
        selector_module.greedy_map = dpp_module.greedy_map
    try:
        with handle.traced(timer):
            yield timer
    finally:
        for obj, attr in patched:
            delattr(obj, attr)  # the instance attribute shadowed the class method
        dpp_module.greedy_map = original_greedy
        if swapped_selector:
            selector_module.greedy_map = original_greedy


def _module_of(obj: object) -> Any:
    import sys

    return sys.modules.get(type(obj).__module__)


def merged_snapshot(timer: EventTimer) -> tuple[dict[str, float], dict[str, float]]:
    """(GPU-timeline ms, host ms) per part, over every prefill since the timer was created."""
    if timer.cuda:
        torch.cuda.synchronize()
    spans = timer.all_spans()
    gpu = {name: sum(a.until(b) for a, b in items) for name, items in spans.items()}
    host = {name: sum(a.host_until(b) for a, b in items) for name, items in spans.items()}
    return gpu, host


@contextmanager
def environment_variable(name: str, value: str) -> Iterator[None]:
    """Set environment variable ``name`` to ``value`` inside the block (restored, or removed, after)."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextmanager
def recording_calls(obj: Any, method: str, record: Callable[..., Any]) -> Iterator[list[Any]]:
    """Inside the block every call of ``obj.method`` first appends ``record(*args)`` to the yielded list,
    then runs as before (the instance attribute is removed after)."""
    original = getattr(obj, method)
    calls: list[Any] = []

    def recording(*args: Any) -> Any:
        calls.append(record(*args))
        return original(*args)

    setattr(obj, method, recording)
    try:
        yield calls
    finally:
        delattr(obj, method)
