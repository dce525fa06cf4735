"""`PruneHandle.traced`: a benchmark's own timer sees the runtime's parts, then the runtime's timer is back."""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

import torch

import prunekit
from prunekit.adapters.random_models import build_model, video_inputs
from prunekit.benchmarks.efficiency.probes import instrument


class CountingTimer:
    """Counts how often each part ran."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    @contextmanager
    def __call__(self, name: str):  # noqa: ANN204
        self.calls[name] += 1
        yield

    def reset(self) -> None:
        pass

    def snapshot(self) -> dict[str, float]:
        return {name: 0.0 for name in self.calls}


def test_traced_times_the_runtime_parts_and_restores_the_timer() -> None:
    model = build_model("llava_onevision", "tiny")
    inputs = video_inputs(model, 4).kwargs
    with prunekit.apply(model, "hieravid-30") as handle, torch.no_grad():
        own = handle.timer
        with handle.traced(CountingTimer()) as timer:
            model(**inputs)
        assert {"hooks_prefill", "hooks_layers", "plan", "select"} <= set(timer.calls)
        assert timer.calls["hooks_prefill"] == 1 and handle.timer is own
        count = dict(timer.calls)
        model(**inputs)  # after the block the benchmark's timer sees nothing more
        assert dict(timer.calls) == count and handle.stats().timings_ms


def test_the_efficiency_probes_time_stages_through_the_public_handle() -> None:
    model = build_model("llava_onevision", "tiny")
    inputs = video_inputs(model, 4).kwargs
    with prunekit.apply(model, "hieravid-30") as handle, torch.no_grad():
        with instrument(handle, cuda=False) as timer:
            model(**inputs)
        assert {"segment", "merge", "selector", "hooks_prefill", "hooks_layers"} <= set(timer.counts())
        assert "select_segments" not in vars(handle.pipeline.selector)  # the stage wrappers are gone
