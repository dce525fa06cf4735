"""Every CLI failure exits non-zero with one line that says the fix (issue 23), checked before any model loads."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prunekit.cli import main
from prunekit.tiny import TINY_CHAT_TEMPLATE, TINY_MODEL_DIR


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code != 0, (argv, out, err)
    assert len(lines) == 1 and lines[0].startswith("prunekit") and "error: " in lines[0], err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    path.write_bytes(b"not decoded: every case below fails before the video is read")
    return str(path)


CASES = [
    (["run", "--max-new-tokens", "0"], "--max-new-tokens: must be a positive integer"),
    (["run", "--max-new-tokens", "-1"], "--max-new-tokens: must be a positive integer"),
    (["run", "--frames", "0"], "--frames: must be a positive integer"),
    (["run", "--device", "tpu"], "use auto, cpu, cuda or cuda:N"),
    (["run", "--options", "||"], "two or more non-empty options"),
    (["run", "--preset", "hieravid-3"], "Did you mean 'hieravid-30'"),
    (["run", "--preset", "missing.yaml"], "config file 'missing.yaml' does not exist"),
    (["run", "--budget", "1.5"], "retain must be a number in (0, 1]"),
    (["run", "--model", "/nonexistent", "--video", "{clip}", "--question", "q"], "no such folder"),
    (["run", "--model", "org/name"], "also pass --video FILE and --question TEXT"),
    (["bench", "accuracy", "--batch-size", "0"], "--batch-size: must be a positive integer"),
    (["bench", "accuracy", "--frames", "0"], "--frames: must be a positive integer"),
    (["bench", "accuracy", "--limit", "-5"], "--limit: must be a positive integer"),
    (["bench", "accuracy", "--strategies", "nope"], "unknown preset 'nope'"),
    (["bench", "accuracy", "--device", "tpu"], "use auto, cpu, cuda or cuda:N"),
    (["bench", "accuracy", "--model", "/nonexistent"], "no such folder"),
    (["bench", "efficiency", "--model-shape", "bogus"], "unknown shape(s) bogus"),
    (["bench", "efficiency", "--repeats", "0"], "--repeats must be at least 1"),
    (["bench", "efficiency", "--strategies", "nope"], "unknown preset 'nope'"),
    (["bench", "efficiency", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize(("argv", "fragment"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_cli_failure_is_one_line_and_non_zero(capsys: pytest.CaptureFixture[str], clip: str, argv: list[str],
                                              fragment: str) -> None:
    line = one_line_error(capsys, [a.replace("{clip}", clip) for a in argv])
    assert fragment in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a host without a GPU")
def test_run_on_cuda_without_a_gpu_says_to_use_the_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert "use --device cpu" in one_line_error(capsys, ["run", "--device", "cuda"])


def test_a_hub_id_offline_fails_at_once_and_says_how_to_use_a_folder(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, clip: str, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    line = one_line_error(capsys, ["run", "--model", "org/name", "--video", clip, "--question", "q"])
    assert "not in the local Hugging Face cache" in line and "--model DIR" in line


def test_a_checkpoint_without_chat_template_asks_for_prompt(capsys: pytest.CaptureFixture[str], clip: str,
                                                            tmp_path: Path) -> None:
    folder = tmp_path / "no-template"
    shutil.copytree(TINY_MODEL_DIR, folder, ignore=shutil.ignore_patterns(TINY_CHAT_TEMPLATE, "*.log", "*.png"))
    line = one_line_error(capsys, ["run", "--model", str(folder), "--video", clip, "--question", "q",
                                   "--device", "cpu"])
    assert "has no chat template; pass --prompt tiny" in line


@pytest.mark.parametrize(("scheduler", "fragment"), [
    ("{name: fixed, layers: [2, 1], keep_fractions: [0.5, 0.2]}", "strictly increasing"),
    ("{name: fixed, layers: [0, 1, 2], keep_fractions: [1.5, 2.0, 3.0]}", "kept fractions must be in (0, 1]"),
])
def test_validate_checks_the_schedule_without_a_model(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                      scheduler: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\nselector: {{name: uniform}}\nscheduler: {scheduler}\n")
    assert fragment in one_line_error(capsys, ["validate", str(path)])


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["bench", "--help"], ["run", "--help"]])
def test_help_and_version_do_not_import_torch(argv: list[str]) -> None:
    code = ("import sys\nfrom prunekit.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_bench_accuracy_checks_names_and_pinned_budgets_but_leaves_unreachable_budgets_to_the_harness() -> None:
    """PDrop cannot reach 10% at any depth (its first stage is at L/4): the harness records that cell as
    skipped; an unknown name or a pinned budget outside (0, 1] fails before a model loads."""
    from prunekit.cli.bench import _check_strategies
    from prunekit.errors import PrunekitError

    _check_strategies(["pdrop", "fastv@0.3", "hieravid"], [0.1], "layer_average")
    with pytest.raises(PrunekitError, match="unknown preset 'nope'"):
        _check_strategies(["nope"], [0.3], "layer_average")
    with pytest.raises(PrunekitError, match="after '@'"):
        _check_strategies(["fastv@2"], [0.3], "layer_average")
