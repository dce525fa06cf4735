"""GPU checks and timings of the DPP fast path (Triton) against the torch path.

* `capture_selector_calls`: records the frame selector's real inputs during a benchmark forward;
  `compare_captured` re-runs them through both backends and compares the kept indices.
* `synthetic_check`: random conditional-DPP kernels at HieraVid stage sizes, one to many segments;
  mismatches are replayed in float64 (`check_greedy_trace`) to tell near-ties from errors.
* `dpp_timings`: greedy MAP time per backend at the stage sizes (median of CUDA-event timings).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch

from prunekit.ops import dpp as dpp_ops
from prunekit.ops import dpp_triton

from .probes import environment_variable, median_ms, recording_calls


def backend(name: str) -> AbstractContextManager[None]:
    """Force the DPP backend (``"torch"`` or ``"auto"``) inside the block."""
    return environment_variable("PRUNEKIT_DPP_BACKEND", name)


def capture_selector_calls(handle: Any) -> AbstractContextManager[list[tuple]]:
    """Record ``(features, keeps, contexts)`` of every ``select_segments`` call of ``handle``'s selector."""
    return recording_calls(handle.pipeline.selector, "select_segments", lambda features, keeps, contexts: (
        [f.detach().clone() for f in features], list(keeps), list(contexts)))


def compare_captured(handle: Any, calls: list[tuple]) -> list[dict]:
    """Re-run captured selector calls with the torch and the fast backend; compare kept indices."""
    selector = handle.pipeline.selector
    out = []
    for i, (features, keeps, contexts) in enumerate(calls):
        with backend("torch"), torch.inference_mode():
            ref = selector.select_segments(features, keeps, contexts)
        with backend("auto"), torch.inference_mode():
            fast = selector.select_segments(features, keeps, contexts)
        same = [bool(torch.equal(torch.as_tensor(a).cpu(), torch.as_tensor(b).cpu())) for a, b in zip(ref, fast)]
        out.append({
            "call": i, "segments": len(features), "tokens": [int(f.shape[0]) for f in features][:64],
            "keep": keeps[:64], "identical_segments": sum(same), "all_identical": all(same),
        })
    return out


def random_kernels(sizes: list[int], dim: int, device: torch.device, seed: int) -> tuple[torch.Tensor, ...]:
    """Padded ``[S, n, n]`` conditional kernels of random features, with validity and relevance."""
    gen = torch.Generator(device=device).manual_seed(seed)
    n = max(sizes)
    feats = torch.randn(len(sizes), n, dim, device=device, generator=gen)
    rel = torch.rand(len(sizes), n, device=device, generator=gen)
    valid = torch.arange(n, device=device)[None, :] < torch.tensor(sizes, device=device)[:, None]
    kernel = dpp_ops.conditional_kernel(feats, rel)
    return kernel, valid, rel


def split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal integers."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def synthetic_check(device: torch.device, stages: list[tuple[int, int]], segment_counts: list[int],
                    dim: int = 3584, seed: int = 0, programs: list[int | None] | None = None) -> list[dict]:
    """Fast path vs torch path on random kernels; near-tie analysis in float64 for mismatches."""
    rows = []
    for n_in, n_keep in stages:
        for segs in segment_counts:
            sizes, keeps = split(n_in, segs), split(n_keep, segs)
            kernel, valid, rel = random_kernels(sizes, dim, device, seed + n_in + segs)
            keep = torch.tensor(keeps)  # host counts, as the selectors pass them
            with backend("torch"):
                ref = dpp_ops.greedy_map(kernel, keep, valid, fill_score=rel)
            for p in programs or [None]:
                chosen, count, err = dpp_triton.greedy_map_triton(kernel, keep, valid, programs=p)
                plan = dpp_triton.plan_launch(len(sizes), kernel.shape[-1], device, p)
                fast = dpp_ops.fill_on_device(chosen, count, keeps, valid, rel)  # the shared fill rule
                chosen = dpp_triton.picks_as_padded(chosen, count)
                same = [bool(torch.equal(a, b)) for a, b in zip(ref, fast)]
                worst = 0.0
                traces_ok = True
                for b in [i for i, s in enumerate(same) if not s][:2]:  # replay up to two mismatching rows
                    ok, gap = dpp_triton.check_greedy_trace(kernel[b], chosen[b], valid[b])
                    traces_ok &= ok
                    worst = max(worst, gap)
                rows.append({
                    "stage": f"{n_in}->{n_keep}", "segments": segs, "programs": plan.programs, "width": plan.width,
                    "barrier_timeouts": int(err.item()), "identical_segments": sum(same), "of": len(same),
                    "mismatch_traces_greedy_valid": traces_ok, "worst_relative_gap": worst,
                })
    return rows


def dpp_timings(device: torch.device, stages: list[tuple[int, int]], segment_counts: list[int], dim: int = 3584,
                repeats: int = 10, torch_repeats: int = 1, programs: list[int | None] | None = None) -> list[dict]:
    """Median milliseconds of ``greedy_map`` (kernel given) per backend, and of the kernel alone."""
    rows = []
    for n_in, n_keep in stages:
        for segs in segment_counts:
            sizes, keeps = split(n_in, segs), split(n_keep, segs)
            kernel, valid, rel = random_kernels(sizes, dim, device, 1)
            keep = torch.tensor(keeps)
            row = {"stage": f"{n_in}->{n_keep}", "segments": segs, "steps": max(keeps)}
            args = (kernel, keep, valid)

            def full(args: tuple = args, rel: torch.Tensor = rel) -> Any:
                return dpp_ops.greedy_map(*args, fill_score=rel)

            with backend("torch"):
                row["torch_ms"] = median_ms(full, torch_repeats)
            with backend("auto"):
                row["triton_ms"] = median_ms(full, repeats)
            sms = torch.cuda.get_device_properties(device).multi_processor_count
            for p in programs or []:
                plan = dpp_triton.plan_launch(segs, kernel.shape[-1], device, p)
                if p is not None and (plan.programs * segs > sms or (plan.programs == 1 and max(sizes) > 512)):
                    continue  # not co-resident, or a single program on a large row (seconds, known slow)

                def only_kernel(args: tuple = args, p: int | None = p) -> Any:
                    return dpp_triton.greedy_map_triton(*args, programs=p)

                row[f"kernel_P{plan.programs}_ms"] = median_ms(only_kernel, repeats)
            rows.append(row)
    return rows
