"""DivPrune's greedy max-min diversity: the batched entry point and the Triton kernel against the torch loop."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from prunekit.ops import diversity_triton
from prunekit.ops.diversity import max_min_diversity, max_min_diversity_batched, max_min_diversity_torch
from prunekit.ops.similarity import cosine_matrix


def test_cpu_dispatch_runs_the_torch_loop_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    gen = torch.Generator().manual_seed(1)
    dist = 1.0 - cosine_matrix(torch.randn(3, 30, 6, generator=gen))
    assert not diversity_triton.available(dist)
    batched = max_min_diversity_batched(dist, 9)
    assert batched.shape == (3, 9)
    for b in range(3):
        assert torch.equal(batched[b], max_min_diversity_torch(dist[b], 9))
        assert torch.equal(max_min_diversity(dist[b], 9), batched[b])
    assert torch.equal(max_min_diversity_batched(dist, 30), torch.arange(30).expand(3, 30))
    assert max_min_diversity_batched(dist, 0).shape == (3, 0)


INTERPRETER_SCRIPT = textwrap.dedent("""
    import torch
    from prunekit.ops import diversity_triton
    from prunekit.ops.diversity import max_min_diversity, max_min_diversity_batched, max_min_diversity_torch
    from prunekit.ops.similarity import cosine_matrix
    assert diversity_triton.available(torch.zeros(1))
    launches = []
    kernel = diversity_triton.max_min_triton
    diversity_triton.max_min_triton = lambda *a: launches.append(a[0].shape) or kernel(*a)
    gen = torch.Generator().manual_seed(0)
    cases = [(2, 1, 4), (7, 3, 5), (40, 12, 8), (100, 33, 16), (130, 129, 3)]
    for n, keep, dim in cases:
        feats = torch.randn(3, n, dim, generator=gen)
        feats[:, n // 2] = feats[:, 0]  # coincident items: exact ties
        dist = 1.0 - cosine_matrix(feats)
        ref = torch.stack([max_min_diversity_torch(d, keep) for d in dist])
        fast = max_min_diversity_batched(dist, keep)  # one launch for the three rows
        assert torch.equal(ref, fast), (n, keep, ref, fast)
        assert torch.equal(max_min_diversity(dist[1], keep), ref[1])
    ties = torch.zeros(6, 6)  # every distance equal: the lowest indices win
    assert max_min_diversity(ties, 3).tolist() == max_min_diversity_torch(ties, 3).tolist() == [0, 1, 2]
    assert len(launches) == 2 * len(cases) + 1 and not diversity_triton._DISABLED
    print("ok")
""")


@pytest.mark.skipif(not diversity_triton.HAS_TRITON, reason="Triton is not installed")
@pytest.mark.skipif(os.environ.get("PRUNEKIT_TEST_TRITON_INTERPRETER") != "1",
                    reason="opt-in (PRUNEKIT_TEST_TRITON_INTERPRETER=1), like the DPP kernel's interpreter test; "
                           "on the GPU `prunekit bench efficiency` compares the kernel with the torch loop")
def test_triton_kernel_equals_the_torch_loop_in_the_cpu_interpreter() -> None:
    env = dict(os.environ, TRITON_INTERPRET="1", PRUNEKIT_DISABLE_PLUGIN_AUTOLOAD="1")
    env.pop("PRUNEKIT_DIVERSITY_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", INTERPRETER_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_bench_diversity_check_replays_the_selectors_own_calls() -> None:
    import prunekit
    from prunekit.adapters.random_models import build_model, video_inputs
    from prunekit.benchmarks.efficiency import diversitycheck

    model = build_model("llava_onevision", "tiny")
    inputs = video_inputs(model, 8).kwargs
    with prunekit.apply(model, "divprune") as handle:
        assert diversitycheck.applies(handle)
        with diversitycheck.capture_select_calls(handle) as calls, torch.inference_mode():
            model.generate(**inputs, max_new_tokens=1)
        kept = handle.kept_indices()[0][0]
    assert len(calls) == 1 and calls[0][1] == handle.stats().samples[0].stages[0][1] == 3
    rows = diversitycheck.compare(calls, cuda=False, repeats=1)
    assert rows[0]["identical"] and rows[0]["tokens"] == 32 and rows[0]["keep"] == 3 and not rows[0]["fast_path"]
    assert len(kept) == handle.stats().samples[0].n_text + 3
