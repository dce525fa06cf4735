"""The efficiency benchmark's decode measurement: per-step times, alternated rows, paired speedups."""

from __future__ import annotations

import json
import math

import pytest

import prunekit
from prunekit.adapters.random_models import build_model, video_inputs
from prunekit.benchmarks.efficiency import decode
from prunekit.cli import main


def test_paired_speedup_is_the_geometric_mean_with_a_t_interval() -> None:
    exact = decode.paired_speedup([10.0, 12.0, 8.0], [5.0, 6.0, 4.0])
    assert exact["speedup"] == pytest.approx(2.0) and exact["ci_low"] == pytest.approx(2.0)
    assert exact["ci_high"] == pytest.approx(2.0) and exact["runs"] == 3
    noisy = decode.paired_speedup([10.0] * 5, [9.0, 10.0, 11.0, 10.0, 10.0])
    logs = [math.log(10 / r) for r in (9.0, 10.0, 11.0, 10.0, 10.0)]
    sd = math.sqrt(sum((x - sum(logs) / 5) ** 2 for x in logs) / 4)
    assert noisy["speedup"] == pytest.approx(math.exp(sum(logs) / 5))
    assert math.log(noisy["ci_high"] / noisy["speedup"]) == pytest.approx(2.776 * sd / math.sqrt(5))
    assert decode.paired_speedup([10.0], [5.0])["ci_low"] is None
    assert decode.t975(4) == 2.776 and decode.t975(11) == 2.228 and decode.t975(100) == 1.96


def test_decode_once_times_every_decode_step_and_leaves_no_hooks() -> None:
    model = build_model("llava_onevision", "tiny")
    inputs = video_inputs(model, 8).kwargs
    with prunekit.apply(model, "hieravid-30"):
        times = decode.decode_once(model, inputs, new_tokens=6, cuda=False)
    # 6 new tokens: one prefill and 5 decode forwards, 4 start-to-start steps
    assert len(times.host_ms) == len(times.forward_ms) == 5 and len(times.step_ms) == 4
    assert all(t > 0 for t in times.step_ms + times.host_ms)
    assert not model._forward_pre_hooks and not model._forward_hooks


def test_bench_decode_rows_alternated_with_intervals(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "eff"
    assert main(["bench", "efficiency", "--model-shape", "tiny", "--strategies", "hieravid-30,fastv",
                 "--repeats", "1", "--decode-repeats", "0", "--profile-repeats", "1", "--warmup", "0",
                 "--new-tokens", "2", "--decode-runs", "3", "--decode-tokens", "5", "--decode-strategies",
                 "hieravid-30", "--limit-repeats", "0", "--no-progress", "--out", str(out)]) == 0
    run = json.loads((out / "efficiency.json").read_text())["runs"][0]
    rows = run["decode"]["rows"]
    assert list(rows) == ["unpruned", "hieravid-30"] and run["decode"]["timer"] == "host clock"
    for row in rows.values():
        assert len(row["runs"]) == 3 and row["step_ms"] > 0 and row["host_ms"] > 0
        sp = row["speedup"]
        assert sp["runs"] == 3 and sp["ci_low"] <= sp["speedup"] <= sp["ci_high"]
    assert rows["unpruned"]["speedup"]["speedup"] == pytest.approx(1.0)
    assert "limit" not in run["strategies"][0]  # --limit-repeats 0 skips the limit rows
    assert "| decode speedup | 95% interval |" in (out / "efficiency.md").read_text()
    assert run["strategies"][1]["metrics"]["decode_ms"]["median"] is None  # --decode-repeats 0: no old decode runs
