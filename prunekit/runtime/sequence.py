"""Ragged per-sample token sets <-> left-padded batch tensors, and the masks that go with them."""

from __future__ import annotations

import torch


def left_pad_index(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ragged index rows into ``[B, Lmax]`` left-padded gather indices and a validity mask.

    Padding entries point at index 0 (any valid index would do: they are masked out).
    """
    length = max(int(r.numel()) for r in rows)
    device = rows[0].device
    index = torch.zeros(len(rows), length, dtype=torch.long, device=device)
    valid = torch.zeros(len(rows), length, dtype=torch.bool, device=device)
    for b, row in enumerate(rows):
        if row.numel():
            index[b, length - row.numel():] = row
            valid[b, length - row.numel():] = True
    return index, valid


def gather_tokens(x: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """Gather along the token dimension ``dim`` of ``x`` with per-batch ``index [B, L']``.

    The batch dimension is ``dim - 1`` (``[B, L, ...]`` or ``[k, B, L, ...]``).
    """
    shape = [1] * x.ndim
    shape[dim - 1], shape[dim] = index.shape
    idx = index.view(shape)
    expand = list(x.shape)
    expand[dim] = index.shape[1]
    return torch.gather(x, dim, idx.expand(expand))


def prefill_mask(valid: torch.Tensor, like: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """``[B, 1, L, L]`` causal mask over ``valid [B, L]`` keys, in the format of ``like``.

    Boolean (True = attend) when ``like`` is None or boolean, else additive in ``dtype``. Padding
    queries attend to themselves so no row is fully masked (which would give NaN in SDPA).
    """
    length = valid.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
    allowed = causal[None] & valid[:, None, :]
    allowed |= torch.eye(length, dtype=torch.bool, device=valid.device)[None] & ~valid[:, :, None]
    return to_mask_format(allowed[:, None], like, dtype)


def to_mask_format(allowed: torch.Tensor, like: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """Boolean ``allowed`` as a boolean mask, or as an additive one if ``like`` is a float mask."""
    if like is None or like.dtype == torch.bool:
        return allowed
    dtype = like.dtype
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min)
