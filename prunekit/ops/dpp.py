"""Greedy MAP inference for (conditional) determinantal point processes, batched over segments.

Implements the incremental-Cholesky greedy algorithm of Chen, Zhang & Zhou, "Fast Greedy MAP
Inference for Determinantal Point Process to Improve Recommendation Diversity" (NeurIPS 2018).
All segments run as one padded batch: one loop over greedy steps, no loop over segments and no
host synchronisation inside the loop. On CUDA tensors with Triton importable, `greedy_map` runs the
whole greedy loop in one persistent kernel (`prunekit.ops.dpp_triton`) instead, one launch per call
(``PRUNEKIT_DPP_BACKEND=torch`` forces this file's torch loop).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from prunekit.ops import dpp_triton
from prunekit.ops.nosync import to_device
from prunekit.ops.similarity import cosine_matrix


def conditional_kernel(features: torch.Tensor, relevance: torch.Tensor | None) -> torch.Tensor:
    """``L = diag(r) S diag(r)`` with ``S`` the cosine similarity of ``features [..., n, D]``."""
    sim = cosine_matrix(features)  # [..., n, n]
    if relevance is None:
        return sim
    r = relevance.to(sim.dtype)
    return r[..., :, None] * sim * r[..., None, :]


def greedy_map(kernel: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor,
               fill_score: torch.Tensor | None = None, eps: float = 1e-6,
               error_counters: list[tuple[torch.Tensor, Callable[[int], None]]] | None = None,
               ) -> list[torch.Tensor]:
    """Select ``keep[b]`` items per batch row by greedy DPP MAP; exact counts guaranteed.

    Args:
        kernel: ``[B, n, n]`` PSD kernels (padded rows/cols are ignored through ``valid``).
        keep: ``[B]`` items to select per row (``<= valid[b].sum()``); pass it on the CPU (the
            counts are host values) to keep the GPU path free of host syncs.
        valid: ``[B, n]`` which items exist.
        fill_score: ``[B, n]`` ranking used to fill the remaining slots once the kernel is
            numerically exhausted (rank-deficient); defaults to the kernel diagonal.
        eps: marginal-gain threshold below which the greedy stops.
        error_counters: where the Triton kernel's barrier-timeout counters go, unread (a sample's
            ``DeviceChecks.error_counters``: the plan reads them with its other checks). Without it they
            are queued per process and `dpp_triton.check_error_flags` reads them.

    Returns:
        One sorted index tensor per batch row, on the kernel's device.
    """
    if dpp_triton.available(kernel):
        fast = _greedy_map_triton(kernel, keep, valid, fill_score, eps, error_counters)
        if fast is not None:
            return fast
    return greedy_map_torch(kernel, keep, valid, fill_score, eps)


def greedy_map_torch(kernel: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor,
                     fill_score: torch.Tensor | None = None, eps: float = 1e-6) -> list[torch.Tensor]:
    """`greedy_map` as a torch loop over greedy steps (any device; the CPU path)."""
    bsz, n, _ = kernel.shape
    kernel = kernel.float()
    device = kernel.device
    keeps = keep.tolist()  # host counts (a device tensor costs one sync here)
    k_max = max(keeps, default=0)
    rows = torch.arange(bsz, device=device)
    keep = keep.to(device)
    d2 = torch.diagonal(kernel, dim1=-2, dim2=-1).clone()  # [B, n] marginal gains
    d2 = d2.masked_fill(~valid, float("-inf"))
    chol = kernel.new_zeros(bsz, k_max, n)  # [B, k, n] incremental Cholesky rows
    chosen = torch.full((bsz, k_max), -1, dtype=torch.long, device=device)
    active = torch.ones(bsz, dtype=torch.bool, device=device)
    for step in range(k_max):
        j = d2.argmax(-1)  # [B]
        gain = d2[rows, j]
        ok = active & (step < keep) & (gain > eps)
        chosen[:, step] = torch.where(ok, j, -1)
        active = ok
        c_j = chol[rows, :step, j]  # [B, step]
        # bmm, not einsum: einsum took ~500x longer on CPU for these shapes
        proj = torch.bmm(c_j.unsqueeze(1), chol[:, :step]).squeeze(1)  # [B, n]
        e = (kernel[rows, j] - proj) / gain.clamp_min(eps).sqrt()[:, None]
        e = torch.where(ok[:, None], e, torch.zeros_like(e))
        chol[:, step] = e
        d2 = d2 - e.square()
        d2.scatter_(1, j[:, None], float("-inf"))  # scalar scatter: no host copy
    if fill_score is None:
        fill_score = torch.diagonal(kernel, dim1=-2, dim2=-1)
    return fill_on_device(chosen, (chosen >= 0).sum(1), keeps, valid.to(device), fill_score.to(device))


def _greedy_map_triton(kernel: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor,
                       fill_score: torch.Tensor | None, eps: float,
                       error_counters: list[tuple[torch.Tensor, Callable[[int], None]]] | None,
                       ) -> list[torch.Tensor] | None:
    """The Triton path: one kernel launch and a vectorised fill, all on the device, no host sync.

    The kernel's barrier-timeout counter is queued, unread: on ``error_counters`` (a plan's checks, read by
    `SamplePlan.verify` after the forward) or, outside a plan, per process (`dpp_triton.check_error_flags`);
    the fill still makes every row's count exact. Returns None when the launch failed.
    """
    counts = keep.tolist()  # free when the caller passes host counts, as the selectors do
    try:
        chosen, count, err = dpp_triton.greedy_map_triton(kernel, to_device(counts, kernel.device, torch.int32),
                                                          valid.to(kernel.device), eps)
    except Exception as exc:  # noqa: BLE001 - a compiler/driver problem must not break pruning
        dpp_triton.disable(f"{type(exc).__name__}: {exc}")
        return None
    if error_counters is None:
        dpp_triton.note_error_flag(err)
    else:
        error_counters.append((err, dpp_triton.report_errors))
    scores = torch.diagonal(kernel, dim1=-2, dim2=-1) if fill_score is None else fill_score
    return fill_on_device(chosen, count, counts, valid.to(kernel.device), scores)


def fill_on_device(chosen: torch.Tensor, count: torch.Tensor, keep: list[int], valid: torch.Tensor,
                   fill_score: torch.Tensor) -> list[torch.Tensor]:
    """Complete each row's ``count[b]`` greedy picks to ``keep[b]`` with the best-scoring unpicked valid
    items (`fill_order`), without leaving the device.

    Returns row ``b``'s ``keep[b]`` picks, sorted, as slices of one ``[B, n]`` tensor.
    """
    bsz, n = valid.shape
    steps = torch.arange(chosen.shape[1], device=chosen.device)[None, :]
    greedy = steps < count[:, None].to(chosen.device)
    picked = torch.zeros(bsz, n + 1, dtype=torch.bool, device=chosen.device)
    picked.scatter_(1, torch.where(greedy, chosen.long(), n), True)  # column n swallows the unused slots
    picked = picked[:, :n]
    order = fill_order(fill_score, ~valid.bool() | picked)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=order.device).expand(bsz, n))
    missing = to_device(keep, chosen.device) - count.to(chosen.device).long()  # pinned copy: no sync
    selected = picked | (rank < missing[:, None])
    ordered = torch.sort((~selected).to(torch.uint8), dim=1, stable=True).indices
    return [ordered[b, : keep[b]] for b in range(bsz)]


def fill_order(score: torch.Tensor, excluded: torch.Tensor) -> torch.Tensor:
    """``[..., n]`` order in which items fill the slots the greedy left: highest score first, lowest
    index on ties, NaN scores after every number, and ``excluded`` items (picked or invalid) last."""
    key = score.float().nan_to_num(nan=float("-inf"), posinf=float("inf"))
    order = torch.argsort(-key, dim=-1, stable=True)
    return order.gather(-1, torch.argsort(excluded.gather(-1, order).to(torch.uint8), dim=-1, stable=True))
