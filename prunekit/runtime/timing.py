"""Wall-clock accounting of prunekit's own work (planning, relevance, selection)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import torch


class PartTimer(Protocol):
    """What times the runtime's parts: `StageTimer`, or a benchmark's own (see `PruneHandle.traced`)."""

    def __call__(self, name: str) -> AbstractContextManager[None]:
        """A context manager timing one occurrence of part ``name``."""

    def reset(self) -> None:
        """Called at the start of every prefill."""

    def snapshot(self) -> dict[str, float]:
        """Milliseconds per part since the last reset (the prefill's `ForwardStats` timings)."""


class StageTimer:
    """Accumulates milliseconds per named part. With ``sync=True`` it synchronises CUDA around each
    part so GPU work is attributed correctly (benchmarks only: syncs cost time)."""

    def __init__(self, sync: bool = False) -> None:
        self.sync = sync
        self._ms: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync and torch.cuda.is_available():
                torch.cuda.synchronize()
            self._ms[name] += (time.perf_counter() - start) * 1e3

    def snapshot(self) -> dict[str, float]:
        """Totals since the last reset."""
        return dict(self._ms)

    def reset(self) -> None:
        """Start counting from zero."""
        self._ms.clear()
