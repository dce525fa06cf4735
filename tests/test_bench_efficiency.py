"""`prunekit bench efficiency` end to end on the tiny CPU shape (the GPU runs use the same code)."""

from __future__ import annotations

import json

import pytest

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
    for entry in run["strategies"]:  # the zero-overhead limit of every row, printed beside its speedup
        assert entry["limit"]["llm_prefill_ms"]["median"] > 0 and entry["ratios"]["of_limit"] > 0
    assert hieravid["tokens_per_layer"][-1] < run["sequence_length"] == run["strategies"][0]["tokens_per_layer"][0]
    assert "| limit ms | of limit |" in (out / "efficiency.md").read_text()


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

    assert hostprofile.main(["--model-shape", "tiny", "--prefills", "1", "--decode-steps", "2", "--rows", "40"]) == 0
    text = capsys.readouterr().out
    assert "collections per generate(1)" in text
    assert "runtime/session.py" in text and "(_prefill)" in text  # prunekit's own code, by function
    assert "per decode step, by host time" in text and "aten::" in text


def test_hostprofile_own_code_is_found_by_module_origin_not_by_folder_name(tmp_path) -> None:  # noqa: ANN001
    """A venv inside a clone folder named ``prunekit`` (issue 23) holds no prunekit code."""
    import transformers

    from prunekit.benchmarks.efficiency import hostprofile
    from prunekit.runtime import session

    roots = hostprofile.own_code_roots()
    assert hostprofile.is_own_code(session.__file__, roots)
    assert not hostprofile.is_own_code(transformers.__file__, roots)
    clone_venv = tmp_path / "prunekit" / ".venv" / "lib" / "site-packages" / "transformers" / "x.py"
    assert not hostprofile.is_own_code(str(clone_venv), roots)
    assert not hostprofile.is_own_code("<built-in method>", roots)


def test_hostprofile_decode_tables_keep_each_ops_least_time_over_repeats() -> None:
    from prunekit.benchmarks.efficiency.hostprofile import _least

    least = _least([{"op": (3, 50.0, 0.0)}, {"op": (3, 20.0, 0.0), "other": (1, 1.0, 0.0)}])
    assert least == {"op": (3, 20.0, 0.0)}


def test_gap_report_labels_gpu_idle_time_with_the_host_range_open_then() -> None:
    from prunekit.benchmarks.efficiency.gaps import analyse

    def x(cat, name, ts, dur):  # noqa: ANN001, ANN202
        return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur}

    trace = {"traceEvents": [
        x("user_annotation", "gaps:vision tower", 0, 90), x("kernel", "vision_gemm", 0, 90),
        x("user_annotation", "gaps:language model", 95, 400),
        x("user_annotation", "prunekit.plan", 100, 60), x("kernel", "merge", 140, 20),  # idle 90-140: plan
        x("user_annotation", "gaps:layer 00", 160, 120), x("kernel", "gemm", 165, 100),  # idle 160-165: too short
        x("gpu_memcpy", "copy", 265, 5),
        x("user_annotation", "gaps:layer 01", 290, 170), x("kernel", "gemm", 400, 50),  # idle 270-400: layer 01
    ]}
    report = analyse(trace, min_gap_us=10)
    assert report.window_us == 450 - 90  # from the end of the vision tower to the last kernel
    assert report.busy_us == 20 + 100 + 5 + 50
    assert report.idle_by_label == {"prunekit.plan": 50, "layer 01": 130}
    assert [(g.end - g.start, label) for g, label in report.largest] == [(130, "layer 01"), (50, "prunekit.plan")]
    assert report.largest[0][0].name == "copy -> gemm"
    assert "prunekit.plan" in report.table("x")
    with pytest.raises(ValueError, match="no GPU kernels"):
        analyse({"traceEvents": trace["traceEvents"][:1]})


def test_gap_profile_labels_modules_and_prunekit_parts(capsys) -> None:  # noqa: ANN001
    import torch

    import prunekit
    from prunekit.adapters.random_models import build_model, video_inputs
    from prunekit.benchmarks.efficiency import gaps

    model = build_model("llava_onevision", "tiny")
    inputs = video_inputs(model, 8).kwargs
    with prunekit.apply(model, "hieravid-30") as handle:
        own_timer = handle.timer
        with handle.traced(gaps.LabelledTimer(own_timer)):
            trace = gaps.profile_prefill(model, inputs, warmup=1)
            assert handle.stats() is not None and own_timer.snapshot()  # the runtime's timer still counts
        assert handle.timer is own_timer
    names = {e["name"] for e in trace["traceEvents"] if e.get("cat") == "user_annotation"}
    assert {"gaps:vision tower", "gaps:language model", "gaps:layer 00", "gaps:layer 03", "prunekit.plan"} <= names
    assert not prunekit.is_pruned(model) and not model.model.language_model.layers[0]._forward_pre_hooks
    if not torch.cuda.is_available():  # pragma: no branch - CI has no GPU
        assert gaps.main(["--model-shape", "tiny"]) == 2
        assert "needs a CUDA GPU" in capsys.readouterr().out


def test_flops_ratio_is_per_sample_at_batch_two(tmp_path) -> None:  # noqa: ANN001
    # The unpruned FLOPs were once counted for one row while a pruned entry summed its rows, so the
    # printed ratio grew with the batch (HieraVid-30 read 1.100 at batch 4).
    out = tmp_path / "eff"
    assert main(["bench", "efficiency", "--model-shape", "tiny", "--strategies", "hieravid-30", "--batch", "2",
                 "--repeats", "1", "--decode-repeats", "1", "--profile-repeats", "1", "--warmup", "0",
                 "--new-tokens", "2", "--no-progress", "--no-dpp-check", "--out", str(out)]) == 0
    run = json.loads((out / "efficiency.json").read_text())["runs"][0]
    hieravid = run["strategies"][1]
    samples = hieravid["stats"]["samples"]
    assert len(samples) == 2
    assert all(s["n_visual"] + s["n_text"] == run["sequence_length"] for s in samples)
    assert hieravid["ratios"]["flops_ratio"] == pytest.approx(hieravid["stats"]["flops_ratio"], rel=1e-9)
    assert hieravid["ratios"]["flops_ratio"] < 0.5
