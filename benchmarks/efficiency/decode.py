"""Decode speed that can tell 5% apart: per-step times from CUDA events and host clocks, rows alternated.

Each run is one ``generate(max_new_tokens=T)``; only its decode steps (every forward after the
prefill) are timed. Per step:

* ``step_ms``: GPU timeline from the start of one decode forward to the start of the next (CUDA
  events recorded as the forwards begin); the time one generated token really costs, including what
  ``generate`` does between forwards and any GPU idle time while the host is behind;
* ``host_ms``: host clock from the start to the end of the decode forward (Python, hooks, launches);
* ``forward_ms``: GPU timeline from the start to the end of the decode forward.

``host_ms`` close to ``step_ms`` means the step is host-bound (a shorter KV cache cannot help);
``forward_ms`` well above ``host_ms`` means the GPU bounds it.

A run is summarised by the median over its steps; a row by the median over its runs. Speedups pair
run ``i`` of a row with run ``i`` of the unpruned row (the rows run alternated, so drifts of clock or
temperature hit both) and give the geometric mean of the paired ratios with a 95% t-interval. On the
CPU (CI, tiny shapes) the events fall back to host clocks.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .probes import Mark, sync

# two-sided 95% quantiles of Student's t by degrees of freedom (a smaller df's is used between entries)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(df: int) -> float:
    """Two-sided 95% Student-t quantile for ``df`` degrees of freedom (conservative between table entries)."""
    if df < 1:
        return float("nan")
    if df > 30:
        return 1.96
    return _T975[max(k for k in _T975 if k <= df)]


@dataclass
class StepTimes:
    """The decode steps of one ``generate``: per-step milliseconds (see the module docstring)."""

    step_ms: list[float] = field(default_factory=list)
    host_ms: list[float] = field(default_factory=list)
    forward_ms: list[float] = field(default_factory=list)

    def medians(self) -> dict[str, float | None]:
        """Median of each quantity over the steps."""
        return {k: (statistics.median(v) if v else None) for k, v in
                (("step_ms", self.step_ms), ("host_ms", self.host_ms), ("forward_ms", self.forward_ms))}


class StepRecorder:
    """Forward hooks on ``model`` that mark the start and end of every forward of a ``generate``."""

    def __init__(self, model: nn.Module, cuda: bool) -> None:
        self.cuda = cuda
        self.spans: list[list[Mark | None]] = []
        self._handles = [model.register_forward_pre_hook(self._pre, prepend=True),
                         model.register_forward_hook(self._post, always_call=True)]

    def _pre(self, module: nn.Module, args: tuple) -> None:
        self.spans.append([Mark(self.cuda), None])

    def _post(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self.spans and self.spans[-1][1] is None:
            self.spans[-1][1] = Mark(self.cuda)

    def times(self) -> StepTimes:
        """The decode steps' times (call after synchronising); the first forward is the prefill."""
        steps = self.spans[1:]
        out = StepTimes()
        for (start, _end), (next_start, _) in zip(steps, steps[1:]):
            out.step_ms.append(start.until(next_start))
        for start, end in steps:
            if end is not None:
                out.host_ms.append(start.host_until(end))
                out.forward_ms.append(start.until(end))
        return out

    def remove(self) -> None:
        """Unregister the hooks."""
        for h in self._handles:
            h.remove()
        self._handles.clear()


def decode_once(model: nn.Module, inputs: dict, new_tokens: int, cuda: bool) -> StepTimes:
    """One synchronised ``generate(max_new_tokens=new_tokens)`` (greedy), its decode steps timed."""
    recorder = StepRecorder(model, cuda)
    try:
        sync(cuda)
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        sync(cuda)
        return recorder.times()
    finally:
        recorder.remove()


def measure_alternated(model: nn.Module, inputs: dict, rows: dict[str, Callable[[], Any]], new_tokens: int,
                       runs: int, warmup: int, cuda: bool, progress: Callable[[], None] = lambda: None
                       ) -> dict[str, list[dict[str, float | None]]]:
    """Per row, per run: the step medians of one ``generate``; rows alternated within every run.

    ``rows`` maps a name to a function that prepares the model for that row and returns an object with
    ``remove()`` (a `prunekit` handle) or None (the unpruned model).
    """
    out: dict[str, list[dict[str, float | None]]] = {name: [] for name in rows}
    for run in range(warmup + runs):
        for name, prepare in rows.items():
            handle = prepare()
            try:
                times = decode_once(model, inputs, new_tokens, cuda)
            finally:
                if handle is not None:
                    handle.remove()
            if run >= warmup:
                out[name].append(times.medians())
            progress()
    return out


def paired_speedup(base: Sequence[float], row: Sequence[float]) -> dict[str, float | None]:
    """Speedup of ``row`` over ``base`` (per-run step times, paired by run): geometric mean and 95% CI."""
    logs = [math.log(b / r) for b, r in zip(base, row) if b and r]
    if not logs:
        return {"speedup": None, "ci_low": None, "ci_high": None, "runs": 0}
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return {"speedup": math.exp(mean), "ci_low": None, "ci_high": None, "runs": 1}
    half = t975(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return {"speedup": math.exp(mean), "ci_low": math.exp(mean - half), "ci_high": math.exp(mean + half),
            "runs": len(logs)}


def summarize(per_run: dict[str, list[dict[str, float | None]]], baseline: str, batch: int = 1
              ) -> dict[str, dict[str, Any]]:
    """Per row: medians over runs of each quantity, tokens/s (all ``batch`` rows), and the paired speedup
    over ``baseline``."""
    base_steps = [r["step_ms"] for r in per_run.get(baseline, [])]
    out = {}
    for name, runs in per_run.items():
        row: dict[str, Any] = {"runs": runs}
        for key in ("step_ms", "host_ms", "forward_ms"):
            values = [r[key] for r in runs if r[key] is not None]
            row[key] = statistics.median(values) if values else None
        row["tokens_per_s"] = batch * 1e3 / row["step_ms"] if row["step_ms"] else None
        row["speedup"] = paired_speedup(base_steps, [r["step_ms"] for r in runs])
        out[name] = row
    return out
