"""Greedy DPP MAP: the torch path against an independent naive reference, and the fast-path plumbing.

The GPU kernel itself (`prunekit.ops.dpp_triton`) is checked against the torch path on the GPU by the
efficiency benchmark (`benchmarks/efficiency`, "dpp-check" lines); CI has no GPU. Here: the torch
path equals a from-the-definition reference (log-det gains recomputed from scratch each step, float64),
the fill rule, batching, dispatch, and (when Triton is installed) the kernel in Triton's CPU interpreter.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from prunekit.ops import dpp_triton
from prunekit.ops.dpp import conditional_kernel, greedy_map, greedy_map_torch


def naive_greedy_map(kernel: torch.Tensor, keep: int, fill: torch.Tensor, eps: float = 1e-6) -> list[int]:
    """Greedy MAP from the definition: add the item maximising det(L_Y+i) / det(L_Y), recomputed from scratch.

    The gain of ``i`` given the set ``Y`` is the Schur complement ``L_ii - L_iY L_Y^-1 L_Yi`` (float64,
    explicit solve, no incremental Cholesky). Stops when the best gain is <= eps, then fills with the
    highest ``fill`` scores (lowest index on ties), and returns the sorted selection.
    """
    L = kernel.double()
    n = L.shape[0]
    chosen: list[int] = []
    for _ in range(keep):
        best, best_gain = -1, -math.inf
        for i in range(n):
            if i in chosen:
                continue
            if chosen:
                y = torch.tensor(chosen)
                gain = float(L[i, i] - L[i, y] @ torch.linalg.solve(L[y][:, y], L[y, i]))
            else:
                gain = float(L[i, i])
            if gain > best_gain:
                best, best_gain = i, gain
        if best_gain <= eps:
            break
        chosen.append(best)
    rest = [i for i in sorted(range(n), key=lambda i: (-float(fill[i]), i)) if i not in chosen]
    return sorted(chosen + rest[: keep - len(chosen)])


def _random_case(seed: int, n: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, dim, generator=gen)
    rel = 0.2 + 0.8 * torch.rand(n, generator=gen)  # away from 0 so no gain ties at exhaustion
    return conditional_kernel(feats, rel), rel


@pytest.mark.parametrize("seed", range(6))
def test_torch_path_equals_naive_reference(seed: int) -> None:
    n, dim = 14 + seed, 24
    kernel, rel = _random_case(seed, n, dim)
    keep = 3 + seed
    got = greedy_map_torch(kernel[None], torch.tensor([keep]), torch.ones(1, n, dtype=torch.bool), fill_score=rel[None])
    assert got[0].tolist() == naive_greedy_map(kernel, keep, rel)


def test_exhausted_kernel_fills_by_relevance() -> None:
    n, dim, keep = 12, 3, 8  # rank 3 < keep: the greedy stops after 3 picks, 5 are filled by relevance
    kernel, rel = _random_case(7, n, dim)
    got = greedy_map_torch(kernel[None], torch.tensor([keep]), torch.ones(1, n, dtype=torch.bool), fill_score=rel[None])
    assert got[0].numel() == keep
    assert got[0].tolist() == naive_greedy_map(kernel, keep, rel, eps=1e-6)


def test_padded_batch_equals_rows_alone() -> None:
    sizes, keeps, dim = [9, 15, 4], [4, 7, 4], 16
    n = max(sizes)
    kernels, rels = [], []
    for i, size in enumerate(sizes):
        k, r = _random_case(20 + i, size, dim)
        kernels.append(torch.nn.functional.pad(k, (0, n - size, 0, n - size)))
        rels.append(torch.nn.functional.pad(r, (0, n - size)))
    valid = torch.arange(n)[None, :] < torch.tensor(sizes)[:, None]
    batched = greedy_map_torch(torch.stack(kernels), torch.tensor(keeps), valid, fill_score=torch.stack(rels))
    for b, (size, keep) in enumerate(zip(sizes, keeps)):
        alone = greedy_map_torch(kernels[b][None, :size, :size], torch.tensor([keep]),
                                 torch.ones(1, size, dtype=torch.bool), fill_score=rels[b][None, :size])
        assert torch.equal(batched[b], alone[0])
        assert batched[b].tolist() == naive_greedy_map(kernels[b][:size, :size], keep, rels[b][:size])


def test_cpu_dispatch_uses_the_torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    kernel, rel = _random_case(3, 10, 8)
    assert not dpp_triton.available(kernel)
    args = (kernel[None], torch.tensor([5]), torch.ones(1, 10, dtype=torch.bool))
    assert torch.equal(greedy_map(*args, fill_score=rel[None])[0], greedy_map_torch(*args, fill_score=rel[None])[0])


def test_backend_switch_and_trace_checker() -> None:
    kernel, rel = _random_case(4, 16, 8)
    picks = greedy_map_torch(kernel[None], torch.tensor([6]), torch.ones(1, 16, dtype=torch.bool),
                             fill_score=rel[None])[0]
    # replay the greedy order (not the sorted selection) from the naive reference: every pick is a greedy argmax
    order: list[int] = []
    for k in range(1, 7):
        step = [i for i in naive_greedy_map(kernel, k, rel) if i not in order]
        order += step
    assert sorted(order) == picks.tolist()
    ok, worst = dpp_triton.check_greedy_trace(kernel, torch.tensor(order), torch.ones(16, dtype=torch.bool))
    assert ok and worst <= 1e-9
    bad, gap = dpp_triton.check_greedy_trace(kernel, torch.tensor(order[::-1]), torch.ones(16, dtype=torch.bool))
    assert not bad and gap > 1e-3


INTERPRETER_SCRIPT = textwrap.dedent("""
    import warnings, torch
    from prunekit.ops import dpp_triton
    from prunekit.ops.dpp import conditional_kernel, greedy_map, greedy_map_torch
    assert dpp_triton.available(torch.zeros(1))
    gen = torch.Generator().manual_seed(0)
    sizes, keeps, n = [19, 11, 6], [9, 11, 2], 19
    feats, rel = torch.randn(3, n, 12, generator=gen), torch.rand(3, n, generator=gen)
    valid = torch.arange(n)[None, :] < torch.tensor(sizes)[:, None]
    kernel = conditional_kernel(feats, rel)
    keep = torch.tensor(keeps)
    ref = greedy_map_torch(kernel, keep, valid, fill_score=rel)
    fast = greedy_map(kernel, keep, valid, fill_score=rel)  # dispatches to the kernel (one program per row)
    assert all(torch.equal(a, b) for a, b in zip(ref, fast)), (ref, fast)
    chosen, count, err = dpp_triton.greedy_map_triton(kernel, keep, valid)
    assert int(err) == 0 and count.tolist() == keeps
    # a cooperative group cannot synchronise in the sequential interpreter: the error flag is raised
    _, _, err = dpp_triton.greedy_map_triton(kernel, keep, valid, programs=2)
    assert int(err) > 0
    print("ok")
""")


@pytest.mark.skipif(not dpp_triton.HAS_TRITON, reason="Triton is not installed")
@pytest.mark.skipif(os.environ.get("PRUNEKIT_TEST_TRITON_INTERPRETER") != "1",
                    reason="opt-in (PRUNEKIT_TEST_TRITON_INTERPRETER=1): Triton 3.8's CPU interpreter crashed with "
                           "SIGSEGV once in a full CI run although it passes alone; the kernel is checked against "
                           "the torch path on the GPU by `prunekit bench efficiency`")
def test_triton_kernel_in_the_cpu_interpreter() -> None:
    env = dict(os.environ, TRITON_INTERPRET="1", PRUNEKIT_DISABLE_PLUGIN_AUTOLOAD="1")
    env.pop("PRUNEKIT_DPP_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", INTERPRETER_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


@pytest.mark.parametrize("errors", [0, 2])
def test_plan_verify_reads_the_kernel_error_counters_with_its_own_checks(errors: int,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from prunekit.pipeline import Pipeline
    from prunekit.types import VideoLayout

    monkeypatch.setattr(dpp_triton, "_DISABLED", [])
    monkeypatch.setattr(dpp_triton, "_ERROR_FLAGS", [])
    feats = torch.randn(4, 9, 8)
    plan = Pipeline.from_preset("hieravid-30").start(feats, VideoLayout.contiguous(0, 4, (3, 3), 40), 28)
    plan.checks.require(torch.tensor(True), lambda: "never raised")
    plan.checks.error_counters.append((torch.tensor([errors, 0], dtype=torch.int32), dpp_triton.report_errors))
    if errors:
        with pytest.warns(RuntimeWarning, match="barrier timed out"):
            plan.verify()
    else:
        plan.verify()
    assert bool(dpp_triton._DISABLED) == bool(errors)
    assert not plan.checks and dpp_triton._ERROR_FLAGS == []  # the plan's own queue, not the process's


def test_a_pipeline_queues_the_dpp_kernels_counters_on_its_own_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    from prunekit.pipeline import Pipeline
    from prunekit.types import VideoLayout

    monkeypatch.setattr(dpp_triton, "_ERROR_FLAGS", [])
    monkeypatch.setattr(dpp_triton, "available", lambda tensor=None: True)
    launched = []

    def fake_launch(kernel, keep, valid, eps):  # noqa: ANN001, ANN202 - the Triton launch, stubbed
        launched.append(keep)
        chosen = torch.full((kernel.shape[0], int(keep.max())), -1, dtype=torch.long)
        return chosen, torch.zeros(kernel.shape[0], dtype=torch.int32), torch.zeros(2, dtype=torch.int32)

    monkeypatch.setattr(dpp_triton, "greedy_map_triton", fake_launch)
    layout = VideoLayout.contiguous(0, 4, (3, 3), 40)
    pipe = Pipeline.from_preset("hieravid-30")
    plan = pipe.start(torch.randn(4, 9, 8), layout, 28)
    feats, attn = torch.randn(layout.num_visual, 8), torch.rand(layout.num_visual)
    for index in range(len(plan.stages)):
        result = pipe.step(plan, index, feats, attn)
        feats, attn = result.merge.apply(feats)[result.keep], attn[result.keep]
    assert launched and len(plan.checks.error_counters) == len(launched) and dpp_triton._ERROR_FLAGS == []
    plan.verify()
    assert not plan.checks


def test_unread_error_counters_stay_one_running_sum_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dpp_triton, "_ERROR_FLAGS", [])
    for errors in (0, 3, 1):
        dpp_triton.note_error_flag(torch.tensor([errors, 0], dtype=torch.int32))
    pending = dpp_triton.take_error_flags()
    assert len(pending) == 1 and int(pending[0]) == 4
    assert dpp_triton._ERROR_FLAGS == []
