"""`prunekit bench efficiency` end to end on the tiny CPU shape (the GPU runs use the same code)."""

from __future__ import annotations

import json

from prunekit.cli import main


def test_efficiency_benchmark_runs_on_cpu_and_writes_every_output(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "eff"
    assert main(["bench", "efficiency", "--model-shape", "tiny", "--strategies", "hieravid-30,fastv",
                 "--repeats", "1", "--decode-repeats", "1", "--profile-repeats", "1", "--warmup", "0",
                 "--new-tokens", "2", "--no-progress", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= {"efficiency.json", "efficiency.md", "speedup_vs_flops.png",
                                               "ttft_breakdown.png"}
    run = json.loads((out / "efficiency.json").read_text())["runs"][0]
    names = [e["name"] for e in run["strategies"]]
    assert names == ["unpruned", "hieravid-30", "fastv"]
    hieravid = run["strategies"][1]
    assert 0.0 < hieravid["ratios"]["flops_ratio"] < 1.0
    assert hieravid["overhead"]["available"] and hieravid["overhead"]["total_ms"] > 0
    assert hieravid["stats"]["samples"][0]["layer_average_retention"] <= 0.3 + 1e-9


def test_merge_keeps_every_run_and_writes_one_report(tmp_path) -> None:  # noqa: ANN001
    from prunekit.benchmarks.efficiency import merge

    runs = []
    for shape, frames in (("tiny", "4"), ("tiny", "8")):
        out = tmp_path / f"{shape}-{frames}"
        assert main(["bench", "efficiency", "--model-shape", shape, "--frames", frames, "--strategies", "fastv",
                     "--repeats", "1", "--decode-repeats", "1", "--profile-repeats", "1", "--warmup", "0",
                     "--new-tokens", "2", "--no-progress", "--out", str(out)]) == 0
        runs.append(out / "efficiency.json")
    assert merge.main([str(tmp_path / "merged"), *map(str, runs), "--note", "two runs"]) == 0
    merged = json.loads((tmp_path / "merged" / "efficiency.json").read_text())
    assert [r["frames"] for r in merged["runs"]] == [4, 8] and merged["note"] == "two runs"
    assert (tmp_path / "merged" / "efficiency.md").read_text().count("### tiny") == 2


def test_sdpa_backend_and_fast_pooling_are_applied_and_recorded(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "eff"
    assert main(["bench", "efficiency", "--model-shape", "tiny", "--strategies", "fastv", "--repeats", "1",
                 "--decode-repeats", "1", "--profile-repeats", "1", "--warmup", "0", "--new-tokens", "2",
                 "--sdpa-backend", "math", "--fast-pooling", "--no-progress", "--out", str(out)]) == 0
    result = json.loads((out / "efficiency.json").read_text())
    assert result["environment"]["sdpa_backend"] == "math" and result["config"]["sdpa_backend"] == "math"
    assert result["environment"]["fast_pooling"] and result["runs"][0]["fast_pooling"]
    report = (out / "efficiency.md").read_text()
    assert "SDPA kernel pinned: math" in report and "channels-last view (`--fast-pooling`)" in report


def test_sync_report_says_it_needs_a_gpu(capsys) -> None:  # noqa: ANN001
    import torch

    from prunekit.benchmarks.efficiency import syncs

    if torch.cuda.is_available():  # pragma: no cover - CI has no GPU
        return
    assert syncs.main(["presets"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().out


def test_hostprofile_names_prunekit_functions_and_compares_decode_steps(capsys) -> None:  # noqa: ANN001
    from prunekit.benchmarks.efficiency import hostprofile

    assert hostprofile.main(["--model-shape", "tiny", "--prefills", "1", "--decode-steps", "2", "--rows", "12"]) == 0
    text = capsys.readouterr().out
    assert "collections per generate(1)" in text
    assert "runtime/session.py" in text and "(_prefill)" in text  # prunekit's own code, by function
    assert "per decode step, by host time" in text and "aten::" in text
