"""Data-parallel evaluation: two processes (torchrun, Gloo on the CPU) give the single-process results."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prunekit.benchmarks.accuracy import World
from prunekit.cli import main
from prunekit.errors import PrunekitError

ARGS = ["bench", "accuracy", "--limit", "18", "--strategies", "random,hieravid", "--budgets", "0.3",
        "--batch-size", "4", "--no-plot", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_two_processes_give_identical_predictions_and_split_the_items(tmp_path: Path) -> None:
    single, parallel = tmp_path / "single", tmp_path / "parallel"
    assert main([*ARGS, "--out", str(single)]) == 0
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", str(_free_port()), "-m", "prunekit", *ARGS, "--out", str(parallel)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "on 2 processes" in run.stdout
    for a, b in zip(_records(single), _records(parallel), strict=True):
        assert (a["processes"], b["processes"]) == (1, 2)
        assert a["items_per_process"] == [18]
        assert len(b["items_per_process"]) == 2 and min(b["items_per_process"]) > 0  # every item once, split
        assert sum(b["items_per_process"]) == 18
        assert (a["accuracy"], a["agreement"], a["kl"]) == (b["accuracy"], b["agreement"], b["kl"])
        preds = f"predictions/{a['cell_id']}.jsonl"
        assert (single / preds).read_text() == (parallel / preds).read_text()


def test_gather_refuses_an_item_evaluated_twice_or_never(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    assert world.batches(5) == [0, 1, 2, 3, 4] and world.device("cuda") == "cuda"
    assert World(rank=1, size=2, local_rank=1).batches(5) == [1, 3]
    assert World(rank=1, size=2, local_rank=1).device("cuda") == "cuda:1"
    merged, counts = world.gather({1: {"id": "b"}, 0: {"id": "a"}}, 2)
    assert [p["id"] for p in merged] == ["a", "b"] and counts == [2]
    with pytest.raises(PrunekitError, match="evaluated by no process"):
        world.gather({0: {"id": "a"}}, 2)

    def both_took_item_0(parts: list, local: dict) -> None:  # what all_gather_object would fill in
        parts[:] = [local, {0: {"id": "a"}}]

    monkeypatch.setattr(torch.distributed, "all_gather_object", both_took_item_0)
    with pytest.raises(PrunekitError, match="more than one process"):
        World(rank=0, size=2).gather({0: {"id": "a"}, 1: {"id": "b"}}, 2)
