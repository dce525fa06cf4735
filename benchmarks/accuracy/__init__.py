"""Accuracy harness: compare pruning strategies on video QA, with fidelity to the unpruned model.

    from prunekit.benchmarks.accuracy import AccuracyHarness, load_synthetic, write_outputs
    harness = AccuracyHarness(model, processor, load_synthetic("test", 200), "out", num_frames=16)
    records = harness.run(["hieravid", "visionzip"], [0.3, 0.2, 0.1])
    write_outputs(records, "out")  # results.json, results.md, accuracy_vs_flops.png

Command line: ``prunekit bench accuracy`` (and ``prunekit bench`` for the embedded default). Under
``accelerate launch --num_processes N`` or ``torchrun --nproc-per-node N`` the processes share the
batches (`World`); the main process writes the outputs.
"""

from .dataset import LETTERS, QAItem, dataset_fingerprint, load_manifest, load_synthetic, write_manifest
from .distributed import World
from .metrics import agreement, bootstrap_ci, kl_divergence, mean_kl, paired_ratio_ci
from .report import markdown_table, plot_accuracy_vs_flops, write_outputs
from .runner import UNPRUNED, AccuracyHarness, StrategySpec, environment, model_fingerprint, resolve_config
from .scoring import MC_INSTRUCTION, OPEN_INSTRUCTION, build_prompt, match_open, normalize_answer, scoring_description

__all__ = [
    "LETTERS", "QAItem", "dataset_fingerprint", "load_manifest", "load_synthetic", "write_manifest", "World",
    "agreement", "bootstrap_ci", "kl_divergence", "mean_kl", "paired_ratio_ci",
    "markdown_table", "plot_accuracy_vs_flops", "write_outputs",
    "UNPRUNED", "AccuracyHarness", "StrategySpec", "environment", "model_fingerprint", "resolve_config",
    "MC_INSTRUCTION", "OPEN_INSTRUCTION", "build_prompt", "match_open", "normalize_answer", "scoring_description",
]
