"""Data-parallel evaluation: under ``accelerate launch`` or ``torchrun`` every process takes every k-th batch.

Batches are formed from the whole item list first, then dealt out (batch ``b`` goes to process
``b % world_size``), so every item is padded with the same neighbours as in a single-process run and
gets the same prediction. The predictions are gathered to every process (``all_gather_object``),
checked to cover each item exactly once, and only the main process writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from prunekit.errors import PrunekitError


@dataclass(frozen=True)
class World:
    """This process's place among the evaluation processes (``size == 1``: a plain single-process run)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> World:
        """The world that ``accelerate launch`` / ``torchrun`` describe in ``RANK``, ``WORLD_SIZE`` and
        ``LOCAL_RANK``; joins the process group (NCCL with GPUs, Gloo without) when there are several."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        world = cls(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))
        if size > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(world.local_rank)
            torch.distributed.init_process_group(backend)
        return world

    @property
    def is_main(self) -> bool:
        """Whether this process writes the outputs."""
        return self.rank == 0

    def device(self, requested: str) -> str:
        """``requested`` (``cpu`` or ``cuda``), with ``cuda`` meaning this process's own GPU."""
        return f"cuda:{self.local_rank}" if requested == "cuda" and self.size > 1 else requested

    def batches(self, count: int) -> list[int]:
        """The batch indices this process evaluates, out of ``count``."""
        return list(range(self.rank, count, self.size))

    def gather(self, local: dict[int, dict], n_items: int) -> tuple[list[dict], list[int]]:
        """Every process's ``{item index: prediction}`` merged into one list (each item exactly once), and
        how many items each process evaluated."""
        parts = [local]
        if self.size > 1:
            parts = [None] * self.size
            torch.distributed.all_gather_object(parts, local)
        merged: dict[int, dict] = {}
        for part in parts:
            twice = merged.keys() & part.keys()
            if twice:
                raise PrunekitError(f"items {sorted(twice)[:5]} were evaluated by more than one process.")
            merged.update(part)
        missing = sorted(set(range(n_items)) - merged.keys())
        if missing:
            raise PrunekitError(f"items {missing[:5]} (of {len(missing)} missing) were evaluated by no process.")
        return [merged[i] for i in range(n_items)], [len(part) for part in parts]

    def barrier(self) -> None:
        """Wait for every process (a no-op alone)."""
        if self.size > 1:
            torch.distributed.barrier()

    def finish(self) -> None:
        """Leave the process group (a no-op alone), so the run ends without NCCL's resource-leak warning."""
        if self.size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
