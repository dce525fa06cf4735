"""Greedy max-min diversity (DivPrune) as one Triton kernel (GPU fast path of `prunekit.ops.diversity`).

The torch loop launches a few small kernels per greedy step, and DivPrune takes hundreds to
thousands of steps per video (615 at LLaVA-OV 32 frames, 10%), so the launches, not the
arithmetic, are its cost (63.5 ms on an H200, 40% of the unpruned prefill). Here one program per
batch row runs the whole loop: the row's distances to the selected set live in registers; per step
it takes the largest (lowest index on ties), loads the picked item's distance row and takes the
elementwise minimum. No launch and no host synchronisation inside the loop.

The algorithm only compares and takes minima of the given float32 distances, so the picks are
bit-identical to the torch path's for the same distance matrix (finite entries; a NaN would be
ranked differently). Rows of up to `MAX_ITEMS` items fit in one program's registers; longer rows
use the torch path.

Importing this module never fails: without Triton (CPU-only installs, CI) `available()` is False.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

from prunekit.ops.dpp_triton import HAS_TRITON, backend_available, triton

if HAS_TRITON:  # pragma: no cover - depends on the installation
    import triton.language as tl

__all__ = ["MAX_ITEMS", "available", "disable", "max_min_triton"]

MAX_ITEMS = 32768  # items per row held in one program's registers (1024 threads x 32)
_DISABLED: list[str] = []


def available(tensor: torch.Tensor | None = None) -> bool:
    """Whether the Triton path can run (on ``tensor``'s device, if given).

    ``PRUNEKIT_DIVERSITY_BACKEND=torch`` disables it; ``TRITON_INTERPRET=1`` (Triton's CPU interpreter,
    used by the tests) enables it for CPU tensors. A failure to compile or launch disables it.
    """
    return backend_available(tensor, "PRUNEKIT_DIVERSITY_BACKEND", _DISABLED)


def disable(reason: str) -> None:
    """Switch the fast path off for this process (after a compile or launch failure), with one warning."""
    if not _DISABLED:
        warnings.warn(f"prunekit: the Triton max-min diversity kernel failed ({reason}); using the torch loop "
                      "from now on.", RuntimeWarning, stacklevel=3)
    _DISABLED.append(reason)


if HAS_TRITON:

    @triton.jit
    def _max_min_kernel(dist_ptr, first_ptr, out_ptr, n, keep, stride_b, stride_r, stride_ob,
                        BLOCK: tl.constexpr):
        """One program = the whole greedy loop of batch row ``program_id(0)``."""
        b = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        in_row = cols < n
        base = dist_ptr + b * stride_b
        j = tl.load(first_ptr + b).to(tl.int32)
        tl.store(out_ptr + b * stride_ob, j)
        # distance of every item to the selected set; selected items and padding are -inf
        to_set = tl.load(base + j.to(tl.int64) * stride_r + cols, mask=in_row, other=float("-inf"))
        to_set = tl.where(cols == j, float("-inf"), to_set)
        for i in range(1, keep):
            best = tl.max(to_set, 0)
            j = tl.min(tl.where(to_set == best, cols, BLOCK), 0)  # the lowest index among the largest
            tl.store(out_ptr + b * stride_ob + i, j)
            row = tl.load(base + j.to(tl.int64) * stride_r + cols, mask=in_row, other=float("-inf"))
            to_set = tl.minimum(to_set, row)
            to_set = tl.where(cols == j, float("-inf"), to_set)


def max_min_triton(dist: torch.Tensor, first: torch.Tensor, keep: int) -> torch.Tensor:
    """Greedy picks, in order, of ``keep`` items per row of ``dist [B, n, n]`` starting from ``first [B]``.

    Returns ``[B, keep]`` int64 (unsorted: pick order). ``dist`` is read as float32; ``n`` must be at
    most `MAX_ITEMS` and ``1 <= keep <= n``.
    """
    if not HAS_TRITON:
        raise RuntimeError("Triton is not importable; use prunekit.ops.diversity.max_min_diversity_torch.")
    bsz, n, _ = dist.shape
    if n > MAX_ITEMS or not 1 <= keep <= n:
        raise ValueError(f"max_min_triton needs 1 <= keep <= n <= {MAX_ITEMS}; got n={n}, keep={keep}")
    dist = dist.float().contiguous()
    first = first.to(device=dist.device, dtype=torch.int64).contiguous()
    out = torch.empty(bsz, keep, device=dist.device, dtype=torch.int32)
    block = max(16, triton.next_power_of_2(n))
    num_warps = max(4, min(32, block // 512))
    on_device = torch.cuda.device(dist.device) if dist.device.type == "cuda" else contextlib.nullcontext()
    with on_device:
        _max_min_kernel[(bsz,)](dist, first, out, n, keep, dist.stride(0), dist.stride(1), out.stride(0),
                                BLOCK=block, num_warps=num_warps)
    return out.long()
