"""The wheel ships the library, its strategies, adapters and benchmarks code and the tiny model; not raw
results, training logs or the tiny model's trainer (those stay in the source tree)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    out = tmp_path_factory.mktemp("wheel")
    # build and egg-info folders outside the checkout: a stale build/lib there would leak old files in
    (out / "setup.cfg").write_text(f"[build]\nbuild_base = {out / 'build'}\n[egg_info]\negg_base = {out}\n")
    env = {**os.environ, "DIST_EXTRA_CONFIG": str(out / "setup.cfg")}
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("prunekit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return {info.filename: info.file_size for info in archive.infolist()}


def test_the_wheel_ships_the_code_and_the_tiny_model(wheel_files: dict[str, int]) -> None:
    for path in ("prunekit/model_adapter.py", "prunekit/testing/conformance.py", "prunekit/merging/plan.py",
                 "prunekit/strategies/hieravid/presets.py", "prunekit/strategies/fastv.py",
                 "prunekit/adapters/random_models.py", "prunekit/benchmarks/strategy_spec.py",
                 "prunekit/benchmarks/synthetic/generator.py", "prunekit/assets/demo-clip.npz",
                 "prunekit/assets/tiny-video-llm/model.safetensors", "prunekit/assets/tiny-video-llm/README.md",
                 "prunekit/assets/tiny-video-llm-deep/model.safetensors",
                 "prunekit/assets/tiny-video-llm-deep/README.md"):
        assert path in wheel_files, f"{path} is missing from the wheel"


def test_the_wheel_leaves_results_logs_and_the_trainer_in_the_tree(wheel_files: dict[str, int]) -> None:
    unwanted = [name for name in wheel_files
                if "/results/" in name or "/predictions/" in name or name.endswith((".jsonl", ".log", ".tar.xz"))
                or "training_log" in name or "/synthetic/training/" in name]
    assert unwanted == []
    weights = sum(wheel_files[f"prunekit/assets/{model}/model.safetensors"]
                  for model in ("tiny-video-llm", "tiny-video-llm-deep"))
    rest = sum(wheel_files.values()) - weights
    assert rest < 2_000_000, f"{rest} bytes besides the weights: did data slip into a package?"
