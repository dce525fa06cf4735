"""``prunekit run``: the README's default job, offline on the bundled tiny model."""

from __future__ import annotations

import pytest

from prunekit.cli import main


def test_default_run_answers_and_reports_what_pruning_did(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--compare", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "unpruned answer:" in out and "hieravid-30 answer:" in out
    assert "correct answer: 'blue'" in out  # the demo clip's answer, so a wrong answer shows as wrong
    assert "unpruned answer: 'blue' (right)" in out and "hieravid-30 answer: 'blue' (right)" in out
    # the deep default model: HieraVid's published layers L/4, L/2, 3L/4 of 28 (256 visual tokens)
    assert "kept per stage: layer 0: 128, layer 7: 89, layer 14: 62, layer 21: 26" in out
    assert "layer-average 29.8%" in out and "prefill speed-up" in out


def test_run_with_a_budget_meets_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--preset", "random", "--budget", "0.25", "--mode", "input", "--device", "cpu"]) == 0
    assert "retention: input 25.0%" in capsys.readouterr().out


def test_run_with_a_model_needs_video_and_question(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--model", "some/model"]) == 2
    assert "--video" in capsys.readouterr().err
