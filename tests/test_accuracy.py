"""Accuracy harness: metrics known by hand, manifests, scoring, resumable runs, and the ``bench`` command line.

The end-to-end tests use a tiny random LLaVA-OneVision saved to a temp folder and a manifest of
generated clips: offline and a few seconds on CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import prunekit
from prunekit import video
from prunekit.benchmarks.accuracy import (
    AccuracyHarness,
    QAItem,
    agreement,
    bootstrap_ci,
    kl_divergence,
    load_manifest,
    markdown_table,
    match_open,
    mean_kl,
    normalize_answer,
    paired_ratio_ci,
    write_manifest,
)
from prunekit.errors import InvalidInputError
from tests.tiny_checkpoints import save_tiny_llava_ov

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# -- metrics -----------------------------------------------------------------------------------


def test_bootstrap_ci_brackets_the_mean_with_the_binomial_width() -> None:
    values = [1] * 30 + [0] * 70
    lo, hi = bootstrap_ci(values, n_resamples=4000, seed=1)
    half = 1.96 * math.sqrt(0.3 * 0.7 / 100)  # normal approximation, 0.0898
    assert lo < 0.3 < hi
    assert abs((hi - lo) / 2 - half) < 0.02


def test_bootstrap_ci_is_reproducible_for_a_seed() -> None:
    values = np.random.default_rng(0).integers(0, 2, 50)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)


def test_bootstrap_ci_of_a_constant_sample_has_zero_width_and_of_nothing_is_nan() -> None:
    assert bootstrap_ci([1, 1, 1, 1]) == (1.0, 1.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))


def test_paired_ratio_ci_of_identical_runs_is_exactly_one() -> None:
    values = [1, 0, 1, 1, 0, 1, 0, 1]
    assert paired_ratio_ci(values, values) == (1.0, 1.0)


def test_kl_divergence_matches_the_hand_computation() -> None:
    """KL([1/2, 1/2] || [1/4, 3/4]) = 1/2 ln 2 + 1/2 ln(2/3) = 0.143841 nats."""
    p, q = np.log([0.5, 0.5]), np.log([0.25, 0.75])
    assert kl_divergence(p, q) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3), abs=1e-9)
    assert kl_divergence(p, q) == pytest.approx(0.143841, abs=1e-6)


def test_kl_divergence_is_zero_for_equal_distributions_and_asymmetric_otherwise() -> None:
    p, q = np.log([0.7, 0.2, 0.1]), np.log([0.1, 0.2, 0.7])
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    r = np.log([0.5, 0.25, 0.25])
    assert kl_divergence(p, r) != pytest.approx(kl_divergence(r, p))
    assert kl_divergence(p, q) == pytest.approx(0.6 * math.log(7), abs=1e-9)  # symmetric pair: 0.7ln7 - 0.1ln7


def test_kl_divergence_renormalises_log_scores_and_ignores_zero_mass() -> None:
    p = np.log([1.0, 1.0])  # unnormalised: means [1/2, 1/2]
    q = np.log([0.25, 0.75])
    assert kl_divergence(p, q) == pytest.approx(0.143841, abs=1e-6)
    assert kl_divergence([0.0, -np.inf], np.log([0.5, 0.5])) == pytest.approx(math.log(2))


def test_agreement_is_the_share_of_identical_predictions() -> None:
    assert agreement(["A", "B", "C", "D"], ["A", "B", "D", "D"]) == 0.75


def test_mean_kl_averages_per_item_divergences() -> None:
    ref = [np.log([0.5, 0.5]), np.log([0.5, 0.5])]
    other = [np.log([0.5, 0.5]), np.log([0.25, 0.75])]
    assert mean_kl(ref, other) == pytest.approx(0.143841 / 2, abs=1e-6)


# -- items and scoring -------------------------------------------------------------------------


def test_manifest_accepts_letters_option_texts_and_indices_with_relative_videos(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "video": "clips/a.mp4", "question": "q?", "options": ["red", "blue"], "answer": "B"},
        {"id": "b", "video": "clips/b.mp4", "question": "q?", "options": ["red", "blue"], "answer": "red"},
        {"id": "c", "video": "/abs/c.mp4", "question": "q?", "options": ["x", "y", "z"], "answer": 2},
        {"id": "d", "video": "d.mp4", "question": "what color?", "answer": "Red", "category": "color"},
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_manifest(path)
    assert [it.answer for it in items] == ["B", "A", "C", "Red"]
    assert [it.type for it in items] == ["multiple_choice"] * 3 + ["open_ended"]
    assert items[0].video == str(tmp_path / "clips" / "a.mp4") and items[2].video == "/abs/c.mp4"
    assert load_manifest(write_manifest(items, tmp_path / "copy.jsonl")) == items


def test_manifest_rejects_an_answer_that_is_no_option(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"video": "v.mp4", "question": "q", "options": ["a", "b"], "answer": "c"}) + "\n")
    with pytest.raises(InvalidInputError, match="neither an option letter"):
        load_manifest(path)


def test_open_answers_match_on_normalised_leading_words() -> None:
    assert normalize_answer("  Red. ") == "red"
    assert match_open("Red.", "red") == ("red", True)
    assert match_open("blue sky", "blue") == ("blue", True)
    assert match_open("dark blue", "blue") == ("dark", False)
    assert match_open("New York city", "new york") == ("new york", True)


# -- end to end on a tiny random model ---------------------------------------------------------

_WORDS = ["[UNK]", "red", "green", "blue", "yellow", "A", "B", "C", "D", "what", "color"]
_COLORS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llava_ov(tmp_path_factory.mktemp("tiny-random-llava-ov"), _WORDS)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six questions (three multiple choice, three open-ended) over three one-colour clips."""
    folder = tmp_path_factory.mktemp("qa")
    items = []
    for i, (name, rgb) in enumerate(_COLORS.items()):
        frames = np.zeros((8, 56, 56, 3), np.uint8)
        frames[:] = rgb
        video.write(folder / f"{name}.mp4", frames, fps=8)
        items.append(QAItem(f"mc{i}", "what color", "ABC"[i], tuple(_COLORS), str(folder / f"{name}.mp4"), None, "mc"))
        items.append(QAItem(f"open{i}", "what color", name, None, str(folder / f"{name}.mp4"), None, "open"))
    return write_manifest(items[:6], folder / "manifest.jsonl")


def _harness(tiny_dir: Path, manifest: Path, out: Path) -> AccuracyHarness:
    from prunekit.tiny import load_tiny

    model, processor = load_tiny(model_dir=tiny_dir)
    return AccuracyHarness(model, processor, load_manifest(manifest), out, model_name="tiny-random", num_frames=4,
                           batch_size=2, progress=False, n_resamples=200, max_new_tokens=2)


def _count_forwards(model: torch.nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_harness_reports_fidelity_retention_and_flops_per_cell(tiny_dir: Path, manifest: Path,
                                                               tmp_path: Path) -> None:
    records = _harness(tiny_dir, manifest, tmp_path).run(["random"], [0.5])
    base, pruned = records
    assert base["strategy"] == "unpruned" and base["relative_accuracy"] == 1.0 and base["agreement"] == 1.0
    assert base["kl"] == 0.0 and base["flops_ratio"] == 1.0
    assert pruned["status"] == "ok" and pruned["n_items"] == 6 and pruned["n_multiple_choice"] == 3
    n_visual = 4 * 4 + 1  # 4 frames x 2x2 pooled tokens + the newline
    assert abs(pruned["layer_average_retention"] - 0.5) <= 1 / n_visual
    assert pruned["flops_ratio"] < 1 and pruned["kl"] >= 0 and 0 <= pruned["agreement"] <= 1
    lo, hi = pruned["accuracy_ci"]
    assert lo <= pruned["accuracy"] <= hi
    env = pruned["environment"]
    assert {"torch", "transformers", "prunekit"} <= set(env) and pruned["config_fingerprint"]
    assert pruned["seed"] == 0 and pruned["config"]["budget"]["retain"] == 0.5


def test_a_second_run_skips_finished_cells_and_only_runs_new_ones(tiny_dir: Path, manifest: Path,
                                                                 tmp_path: Path) -> None:
    first = _harness(tiny_dir, manifest, tmp_path).run(["random"], [0.5])
    again = _harness(tiny_dir, manifest, tmp_path)
    calls = _count_forwards(again.model)
    second = again.run(["random"], [0.5])
    assert calls[0] == 0 and all(r["resumed"] for r in second)
    assert [r["accuracy"] for r in second] == [r["accuracy"] for r in first]
    third = again.run(["random", "uniform"], [0.5])
    assert [bool(r.get("resumed")) for r in third] == [True, True, False]
    assert calls[0] > 0
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert len(lines) == 3  # unpruned, random, uniform: nothing recorded twice


def test_a_cell_is_not_resumed_after_its_provider_changed_version(tiny_dir: Path, manifest: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Resumed cells are keyed on the distributions and versions providing their stages (issue 23)."""
    from prunekit.benchmarks.accuracy import runner

    first = _harness(tiny_dir, manifest, tmp_path).run(["random"], [0.5])
    assert first[1]["providers"] == {"prunekit": prunekit.__version__}
    real = runner.providers
    monkeypatch.setattr(runner, "providers", lambda config, strategy=None: {**real(config, strategy), "prunekit": "9"})
    again = _harness(tiny_dir, manifest, tmp_path).run(["random"], [0.5])
    assert again[0].get("resumed") and not again[1].get("resumed")  # the unpruned cell has no provider
    assert again[1]["providers"] == {"prunekit": "9"}


def test_a_budget_the_schedule_cannot_reach_is_recorded_as_skipped_once(tiny_dir: Path, manifest: Path,
                                                                        tmp_path: Path) -> None:
    """FastV prunes after layer 2 of this 4-layer model: 30% layer-averaged is out of reach."""
    (_, fastv) = _harness(tiny_dir, manifest, tmp_path).run(["fastv"], [0.3])
    assert fastv["status"] == "skipped" and "below what this schedule can reach" in fastv["reason"]
    (_, again) = _harness(tiny_dir, manifest, tmp_path).run(["fastv"], [0.3])
    assert again["resumed"] and "skipped: retain=0.3" in markdown_table([again])


def _bench_parser() -> argparse.ArgumentParser:
    from prunekit.cli import bench

    parser = argparse.ArgumentParser(prog="prunekit")
    bench.add_parsers(parser.add_subparsers())
    return parser


def test_bench_accuracy_command_runs_end_to_end_and_writes_records_table_and_plot(
        tiny_dir: Path, manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = _bench_parser().parse_args([
        "bench", "accuracy", "--model", str(tiny_dir), "--data", str(manifest), "--strategies", "hieravid,random",
        "--budgets", "0.3", "--frames", "4", "--batch-size", "2", "--limit", "5", "--out", str(out),
        "--no-progress"])
    assert args.func(args) == 0
    table = capsys.readouterr().out
    assert "| unpruned | — |" in table and "| hieravid-30 | 0.3 |" in table and "| random | 0.3 |" in table
    records = json.loads((out / "results.json").read_text())
    assert [r["strategy"] for r in records] == ["unpruned", "hieravid", "random"]
    assert all(r["n_items"] == 5 for r in records)
    assert (out / "accuracy_vs_flops.png").stat().st_size > 0 and (out / "results.md").is_file()
    assert len((out / "records.jsonl").read_text().splitlines()) == 3


def test_plain_bench_is_the_embedded_default_and_other_benchmarks_plug_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from prunekit.cli import bench

    assert _bench_parser().parse_args(["bench"]).func is bench.default_command
    plugin = types.ModuleType("fake_bench_plugin")
    plugin.add_bench_parsers = lambda sub: sub.add_parser("fake").set_defaults(func=lambda a: 7)
    monkeypatch.setitem(sys.modules, "fake_bench_plugin", plugin)
    monkeypatch.setattr(bench, "BENCH_COMMANDS", ["fake_bench_plugin", "not_installed_bench_module"])
    assert _bench_parser().parse_args(["bench", "fake"]).func(None) == 7


def test_bench_accuracy_on_the_bundled_tiny_model_and_synthetic_suite(tmp_path: Path) -> None:
    """The embedded default, reduced: bundled trained model, synthetic test items, offline, via the CLI."""
    from prunekit.cli import main

    out = tmp_path / "bench"
    code = main(["bench", "accuracy", "--data", "synthetic:test", "--strategies", "hieravid,random",
                 "--budgets", "0.3", "--limit", "18", "--out", str(out), "--no-progress"])
    assert code == 0
    records = {r["strategy"]: r for r in json.loads((out / "results.json").read_text())}
    assert set(records) == {"unpruned", "hieravid", "random"} and records["unpruned"]["n_items"] == 18
    assert records["unpruned"]["accuracy"] > 0.25  # the trained model beats chance on its own suite
    assert abs(records["hieravid"]["layer_average_retention"] - 0.3) < 0.01


def test_a_strategy_can_pin_its_budget(tiny_dir: Path, manifest: Path, tmp_path: Path) -> None:
    """``name@0.25`` runs at 0.25 only, beside the strategies that take every ``--budgets`` value."""
    records = _harness(tiny_dir, manifest, tmp_path).run(["random@0.25", "uniform"], [0.5])
    assert [(r["strategy"], r["budget"]) for r in records] == [("unpruned", None), ("random", 0.25),
                                                               ("uniform", 0.5)]
