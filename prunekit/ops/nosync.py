"""Small tensor helpers that never make the host wait for the GPU.

A host synchronisation in the middle of the LLM forward stalls the CPU until every queued layer has
finished, after which the GPU idles while Python launches the next kernels one by one. These helpers
replace the usual culprits: ``torch.tensor(list, device="cuda")`` (a pageable copy synchronises the
stream) and ``nonzero`` / boolean indexing (the output size must be read back).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def to_device(values: Sequence[int] | Sequence[float], device: torch.device | str,
              dtype: torch.dtype = torch.long) -> torch.Tensor:
    """A host list as a tensor on ``device``; on CUDA through pinned memory, without a sync."""
    return host_to_device(torch.tensor(values, dtype=dtype), device)


def host_to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A CPU tensor on ``device``; on CUDA through pinned memory, without a sync."""
    if torch.device(device).type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def device_to_host(tensor: torch.Tensor) -> torch.Tensor:
    """A copy of a CUDA ``tensor`` in pinned host memory, queued without a sync: read it only after the
    stream has passed this point (an event, or a later sync)."""
    return torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True).copy_(tensor, non_blocking=True)


def true_indices(mask: torch.Tensor, count: int) -> torch.Tensor:
    """Ascending indices of the True entries of 1-D ``mask``, which the caller knows number ``count``.

    Equals ``torch.nonzero(mask).flatten()`` when ``mask`` has exactly ``count`` True entries, but
    takes the size from the caller instead of reading it back from the device.
    """
    return partition_indices(mask, count)[0]


def partition_indices(mask: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ascending indices of the ``count`` True entries of 1-D ``mask`` and of its False entries,
    from one stable sort (no host sync)."""
    if count > mask.numel():
        raise ValueError(f"asked for {count} True entries of a mask of {mask.numel()}.")
    order = torch.sort((~mask).to(torch.uint8), stable=True).indices
    return order[:count], order[count:]


def pad_rows(parts: Sequence[torch.Tensor], fill: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack tensors of different lengths ``[n_i, ...]`` into ``[B, max n_i, ...]`` padded with ``fill``, and
    the ``[B, max n_i]`` mask of real rows: one concatenation and one gather, whatever the number of parts
    (a loop of slice assignments costs a few launches per part). Lengths are read on the host, for free.
    """
    sizes = [int(p.shape[0]) for p in parts]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"pad_rows needs at least one part and no empty part, got sizes {sizes}.")
    device, width = parts[0].device, max(sizes)
    flat = torch.cat(list(parts))
    starts = [0]
    for n in sizes[:-1]:
        starts.append(starts[-1] + n)
    columns = torch.arange(width, device=device)
    lengths = to_device(sizes, device)
    valid = columns[None, :] < lengths[:, None]
    index = torch.minimum(columns[None, :], lengths[:, None] - 1) + to_device(starts, device)[:, None]
    padded = flat[index]
    mask = valid.view(*valid.shape, *([1] * (padded.ndim - 2)))
    return torch.where(mask, padded, torch.full_like(padded, fill)), valid


def index_add(out: torch.Tensor, index: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``out.index_add_(0, index, source)`` summed in a fixed order on every device; returns ``out``.

    CUDA's ``index_add_`` adds with atomics, so float sums over repeated indices differ in the last bit
    from run to run; ``index_put_(accumulate=True)`` sorts the indices first and is deterministic.
    """
    return out.index_put_((index,), source, accumulate=True)
