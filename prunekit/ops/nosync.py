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
