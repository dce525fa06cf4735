"""GPU check and timing of DivPrune's max-min diversity kernel (Triton) against the torch loop.

`capture_select_calls` records the selector's real inputs during a benchmark forward; `compare`
re-runs them through both backends, compares the kept indices and times each (CUDA events).
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager
from typing import Any

import torch

from prunekit.ops import diversity_triton
from prunekit.ops.diversity import max_min_diversity
from prunekit.ops.similarity import cosine_matrix

from .probes import environment_variable, median_ms, recording_calls

SELECTOR = "MaxMinDiversitySelector"


def applies(handle: Any) -> bool:
    """Whether ``handle``'s frame selector is DivPrune's max-min diversity."""
    return type(handle.pipeline.selector).__name__ == SELECTOR


def backend(name: str) -> AbstractContextManager[None]:
    """Force the max-min diversity backend (``"torch"`` or ``"auto"``) inside the block."""
    return environment_variable("PRUNEKIT_DIVERSITY_BACKEND", name)


def capture_select_calls(handle: Any) -> AbstractContextManager[list[tuple[torch.Tensor, int]]]:
    """Record ``(features, keep)`` of every ``select`` call of ``handle``'s selector."""
    return recording_calls(handle.pipeline.selector, "select",
                           lambda features, keep, context: (features.detach().clone(), int(keep)))


def compare(calls: list[tuple[torch.Tensor, int]], cuda: bool, repeats: int = 5) -> list[dict[str, Any]]:
    """Per captured call: kept indices of both backends identical?, and each backend's median ms.

    ``fast_path`` says whether the Triton kernel could run at all (on the CPU both sides are the torch loop).
    """
    out = []
    for i, (features, keep) in enumerate(calls):
        dist = 1.0 - cosine_matrix(features)
        run = functools.partial(max_min_diversity, dist, keep)
        with backend("torch"), torch.inference_mode():
            ref = run()
            torch_ms = median_ms(run, repeats, cuda=cuda)
        with backend("auto"), torch.inference_mode():
            fast = run()
            fast_ms = median_ms(run, repeats, cuda=cuda)
        out.append({"call": i, "tokens": int(features.shape[0]), "keep": keep,
                    "fast_path": diversity_triton.available(dist),
                    "identical": bool(torch.equal(ref.cpu(), fast.cpu())), "torch_ms": torch_ms, "fast_ms": fast_ms})
    return out
