"""Greedy DPP MAP inference as one persistent Triton kernel (GPU fast path of `prunekit.ops.dpp`).

The torch implementation (`prunekit.ops.dpp.greedy_map`) launches a chain of small kernels for
every greedy step; at HieraVid's stage sizes (hundreds to thousands of steps) that launch chain,
not the arithmetic, is the cost. Here the whole greedy loop of a batch row (a segment) runs inside
one kernel launch:

* one *group* of ``P`` programs per batch row; each program owns ``W`` consecutive columns of the
  row's kernel and keeps its slice of the marginal gains ``d2`` in registers;
* per step every program takes its local argmax, the group agrees on the global one through a
  small partials buffer and a spin barrier on a global counter (skipped when ``P == 1``), then each
  program extends its columns of the incremental Cholesky factor (Chen, Zhang & Zhou, NeurIPS 2018)
  and updates its gains;
* no host synchronisation and no launch inside the loop; the host side adds a vectorised fill of
  the slots left after numerical exhaustion (same rule as the torch path).

The selection is the same algorithm, in float32, as the torch path: per step the largest marginal
gain wins, the lowest index on exact ties. Summation order differs, so on inputs with near-ties
(relative gain gaps near float32 rounding) the two paths may legitimately pick different items;
`check_greedy_trace` verifies a selection against a float64 replay.

Cooperative groups (``P > 1``) need every program of the grid resident at once; the launcher keeps
the grid at most the number of multiprocessors, and a spin limit turns any deadlock into an error
flag (the caller then falls back to the torch path) instead of a hang.

Importing this module never fails: without Triton (CPU-only installs, CI) `available()` is False.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from dataclasses import dataclass

import torch

try:  # pragma: no cover - depends on the installation
    import triton
    import triton.language as tl

    HAS_TRITON = True
except Exception:  # noqa: BLE001 - any import problem means "no fast path"
    triton = None
    tl = None
    HAS_TRITON = False

__all__ = ["HAS_TRITON", "available", "disable", "greedy_map_triton", "picks_as_padded", "plan_launch",
           "LaunchPlan", "check_greedy_trace", "note_error_flag", "check_error_flags", "take_error_flags",
           "report_errors"]

MAX_SPIN = 1 << 22  # barrier polls before a group gives up (about a second); see module docstring


_DISABLED: list[str] = []  # why the fast path was switched off in this process (first failure)
_ERROR_FLAGS: list[torch.Tensor] = []  # summed error counters not yet read back, one per device


def note_error_flag(err: torch.Tensor) -> None:
    """Add a launch's error counter to its device's pending sum (no sync; the queue stays one tensor per
    device however many launches run unread, e.g. `greedy_map` called outside a plan)."""
    total = err.sum(dtype=torch.int64)
    for i, pending in enumerate(_ERROR_FLAGS):
        if pending.device == total.device:
            _ERROR_FLAGS[i] = pending + total
            return
    _ERROR_FLAGS.append(total)


def take_error_flags() -> list[torch.Tensor]:
    """The queued error counters (emptying the queue), for a caller that reads them with its own checks."""
    flags, _ERROR_FLAGS[:] = list(_ERROR_FLAGS), []
    return flags


def report_errors(count: int) -> None:
    """Act on the summed error counters: a barrier timeout switches the fast path off, with a warning.

    A timed-out row's picks were completed by the fill rule, so its count is still exact, but it
    may not be the greedy MAP selection.
    """
    if count:
        disable("a barrier timed out (is another kernel occupying the GPU?); the affected selections were "
                "completed by relevance order")


def check_error_flags() -> None:
    """Read the queued error counters with one sync and `report_errors`."""
    flags = take_error_flags()
    if flags:
        report_errors(int(torch.stack([f.sum().to(flags[0].device) for f in flags]).sum()))


def disable(reason: str) -> None:
    """Switch the fast path off for this process (after a compile or launch failure), with one warning."""
    if not _DISABLED:
        warnings.warn(f"prunekit: the Triton DPP kernel failed ({reason}); using the torch loop from now on.",
                      RuntimeWarning, stacklevel=3)
    _DISABLED.append(reason)


def available(tensor: torch.Tensor | None = None) -> bool:
    """Whether the Triton path can run (on ``tensor``'s device, if given).

    ``PRUNEKIT_DPP_BACKEND=torch`` disables it; ``TRITON_INTERPRET=1`` (Triton's CPU interpreter,
    used by the tests) enables it for CPU tensors. A failure to compile or launch disables it.
    """
    return backend_available(tensor, "PRUNEKIT_DPP_BACKEND", _DISABLED)


def backend_available(tensor: torch.Tensor | None, backend_env: str, disabled: list[str]) -> bool:
    """Whether a Triton kernel can run on ``tensor``'s device (any device, for None): Triton is installed,
    neither a failure (``disabled``) nor ``backend_env=torch`` switched it off, and the tensor is on CUDA
    (or on the CPU under ``TRITON_INTERPRET=1``)."""
    if not HAS_TRITON or disabled or os.environ.get(backend_env, "auto") == "torch":
        return False
    if tensor is None:
        return torch.cuda.is_available() or _interpreting()
    return tensor.is_cuda or (_interpreting() and tensor.device.type == "cpu")


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


if HAS_TRITON:

    @triton.jit
    def _greedy_dpp_kernel(
        kernel_ptr, valid_ptr, keep_ptr, chol_ptr, out_ptr, count_ptr, part_val_ptr, part_idx_ptr, bar_ptr, err_ptr,
        n, eps,
        stride_kb, stride_kr, stride_vb, stride_cb, stride_cc, stride_ob,
        P: tl.constexpr, W: tl.constexpr, BLOCK_T: tl.constexpr, PB: tl.constexpr, MAX_POLLS: tl.constexpr,
    ):
        """One program = ``W`` columns of batch row ``pid // P``; the row's ``P`` programs cooperate."""
        pid = tl.program_id(0)
        b = pid // P
        p = pid % P
        cols = p * W + tl.arange(0, W)
        in_row = cols < n
        valid = tl.load(valid_ptr + b * stride_vb + cols, mask=in_row, other=0) != 0
        colmask = in_row & valid
        diag = tl.load(kernel_ptr + b * stride_kb + cols * stride_kr + cols, mask=in_row, other=0.0)
        d2 = tl.where(colmask, diag, float("-inf"))
        keep_b = tl.load(keep_ptr + b)
        kbase = kernel_ptr + b * stride_kb
        cbase = chol_ptr + b * stride_cb  # chol[b, col, step]: column-major incremental Cholesky
        toffs = tl.arange(0, BLOCK_T)
        step = 0
        go = keep_b > 0
        while go:
            # -- which item: the largest marginal gain, lowest index on ties ---------------------
            local_val = tl.max(d2, 0)
            local_idx = tl.min(tl.where(d2 == local_val, cols, 2147483647), 0)
            if P > 1:
                par = step % 2
                slot = (b * 2 + par) * PB + p
                tl.store(part_val_ptr + slot, local_val)
                tl.store(part_idx_ptr + slot, local_idx)
                tl.debug_barrier()
                tl.atomic_add(bar_ptr + b, 1, sem="release", scope="gpu")
                target = (step + 1) * P
                seen = tl.atomic_add(bar_ptr + b, 0, sem="acquire", scope="gpu")
                polls = 0
                while (seen < target) & (polls < MAX_POLLS):
                    seen = tl.atomic_add(bar_ptr + b, 0, sem="acquire", scope="gpu")
                    polls += 1
                tl.debug_barrier()
                poffs = tl.arange(0, PB)
                pmask = poffs < P
                base = (b * 2 + par) * PB
                vals = tl.load(part_val_ptr + base + poffs, mask=pmask, other=float("-inf"), volatile=True)
                idxs = tl.load(part_idx_ptr + base + poffs, mask=pmask, other=2147483647, volatile=True)
                gain = tl.max(vals, 0)
                j = tl.min(tl.where(vals == gain, idxs, 2147483647), 0)
                synced = seen >= target
                tl.atomic_add(err_ptr, 1, mask=seen < target)
            else:
                gain = local_val
                j = local_idx
                synced = step >= 0
            ok = (gain > eps) & (step < keep_b) & (step < n) & (j < n)
            tl.store(out_ptr + b * stride_ob + step, j, mask=ok & (p == 0))
            j = tl.minimum(j, n - 1)
            # -- extend the Cholesky factor on my columns: e = (L[j, :] - c_j . C) / sqrt(gain) ------
            proj = tl.zeros([W], dtype=tl.float32)
            for s0 in range(0, step, BLOCK_T):
                s = s0 + toffs
                smask = s < step
                cj = tl.load(cbase + j * stride_cc + s, mask=smask, other=0.0, cache_modifier=".cg")
                tile = tl.load(cbase + cols[:, None] * stride_cc + s[None, :],
                               mask=in_row[:, None] & smask[None, :], other=0.0)
                proj += tl.sum(tile * cj[None, :], 1)
            row = tl.load(kbase + j * stride_kr + cols, mask=in_row, other=0.0)
            e = (row - proj) / tl.sqrt(tl.maximum(gain, eps))
            e = tl.where(colmask, e, 0.0)
            tl.store(cbase + cols * stride_cc + step, e, mask=in_row)
            d2 = d2 - e * e
            d2 = tl.where(cols == j, float("-inf"), d2)
            tl.debug_barrier()  # my stores of this step before anyone's loads of the next
            step += tl.where(ok, 1, 0)
            go = ok & (step < keep_b) & synced
        if p == 0:
            tl.store(count_ptr + b, step)


@dataclass(frozen=True)
class LaunchPlan:
    """How the kernel is launched: ``programs`` per batch row, ``width`` columns each."""

    programs: int
    width: int
    block_t: int
    num_warps: int


def plan_launch(batch: int, n: int, device: torch.device, programs: int | None = None) -> LaunchPlan:
    """Choose programs per row ``P`` and columns per program ``W``.

    Per greedy step a program reads ``step * W`` floats of the factor in chunks of ``BLOCK_T`` steps
    (a dependent chain of L2 round trips), and a group of ``P > 1`` pays one barrier (a few
    microseconds). Measured on an H100 (see docs/benchmarks-efficiency.md): slices of about 32
    columns are fastest from about 64 items per row on, as long as the whole grid fits the
    multiprocessors at once (the barrier needs co-residency); more than 64 programs per row only
    adds barrier contention.
    """
    if programs is None:
        if device.type != "cuda":  # Triton's interpreter runs programs one after another: no barriers
            programs = 1
        else:
            sms = torch.cuda.get_device_properties(device).multi_processor_count
            programs = max(1, min(sms // max(batch, 1), math.ceil(n / 32), 64))
    programs = max(1, int(programs))
    width = max(16, triton.next_power_of_2(math.ceil(n / programs)) if HAS_TRITON else 16)
    programs = math.ceil(n / width)
    block_t = max(8, min(256, 8192 // width))
    num_warps = 8 if width * block_t >= 8192 else 4
    return LaunchPlan(programs, width, block_t, num_warps)


def greedy_map_triton(kernel: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor, eps: float = 1e-6,
                      programs: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy DPP MAP steps for every batch row in one launch (no fill), without host synchronisation.

    Args:
        kernel: ``[B, n, n]`` float32 kernels.
        keep: ``[B]`` integer steps per row.
        valid: ``[B, n]`` which items exist.
        eps: stop a row when its best marginal gain is not above ``eps``.
        programs: force the programs per row (default: `plan_launch`).

    Returns:
        ``chosen [B, n]`` int32 (greedy picks in order; entries from ``count[b]`` on are undefined),
        ``count [B]`` int32 (picks per row) and a one-element int32 error counter (non-zero: a barrier
        timed out and the picks are incomplete).
    """
    if not HAS_TRITON:
        raise RuntimeError("Triton is not importable; use prunekit.ops.dpp.greedy_map (torch path).")
    bsz, n, _ = kernel.shape
    device = kernel.device
    kernel = kernel.float().contiguous()
    valid = valid.to(device=device, dtype=torch.int8).contiguous()
    keep = keep.to(device=device, dtype=torch.int32).contiguous()
    plan = plan_launch(bsz, n, device, programs)
    chol_cols = 32 * math.ceil(max(n, 1) / 32)  # steps <= n; rows 128-byte aligned
    chol = torch.empty(bsz, plan.programs * plan.width, chol_cols, device=device, dtype=torch.float32)
    out = torch.empty(bsz, max(n, 1), device=device, dtype=torch.int32)
    pb = triton.next_power_of_2(plan.programs)
    part_val = torch.empty(bsz * 2 * pb, device=device, dtype=torch.float32)
    part_idx = torch.empty(bsz * 2 * pb, device=device, dtype=torch.int32)
    ints = torch.zeros(2 * bsz + 1, device=device, dtype=torch.int32)  # barrier counters, counts, error flag
    bar, count, err = ints[:bsz], ints[bsz:2 * bsz], ints[2 * bsz:]
    if bsz and n:
        # Triton launches on the current CUDA device, not the tensors' (a sharded model's later layers)
        on_device = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
        with on_device:
            _greedy_dpp_kernel[(bsz * plan.programs,)](
                kernel, valid, keep, chol, out, count, part_val, part_idx, bar, err,
                n, float(eps),
                kernel.stride(0), kernel.stride(1), valid.stride(0), chol.stride(0), chol.stride(1), out.stride(0),
                P=plan.programs, W=plan.width, BLOCK_T=plan.block_t, PB=pb,
                MAX_POLLS=MAX_SPIN if not _interpreting() else 64,
                num_warps=plan.num_warps,
            )
    return out, count, err


def picks_as_padded(chosen: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """``chosen`` with entries from ``count[b]`` on set to -1 (the torch path's convention), int64."""
    steps = torch.arange(chosen.shape[1], device=chosen.device)[None, :]
    return torch.where(steps < count[:, None].to(chosen.device), chosen.long(), -1)


def check_greedy_trace(kernel: torch.Tensor, chosen: torch.Tensor, valid: torch.Tensor,
                       rtol: float = 1e-4) -> tuple[bool, float]:
    """Replay ``chosen [n_steps]`` (one row, ``-1`` padded) in float64: is every pick a greedy argmax?

    Returns ``(ok, worst)``: ``worst`` is the largest relative shortfall ``(max gain - picked gain) /
    max gain`` over the steps; a pick within ``rtol`` of the maximum counts as a tie.
    """
    L = kernel.double()
    picks = [int(i) for i in chosen.cpu().tolist() if int(i) >= 0]
    n = L.shape[0]
    d2 = torch.diagonal(L).clone()
    d2[~valid.to(L.device).bool()] = float("-inf")
    chol = torch.zeros(len(picks), n, dtype=torch.float64, device=L.device)
    best = torch.empty(len(picks), dtype=torch.float64, device=L.device)
    got = torch.empty_like(best)
    for t, j in enumerate(picks):
        best[t], got[t] = d2.max(), d2[j]
        e = (L[j] - chol[:t, j] @ chol[:t]) / d2[j].clamp_min(1e-30).sqrt()
        chol[t] = e
        d2 = d2 - e * e
        d2[j] = float("-inf")
    gaps = (best - got) / best.abs().clamp_min(1e-30)
    worst = float(gaps.max()) if len(picks) else 0.0
    return worst <= rtol, worst
