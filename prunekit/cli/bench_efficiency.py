"""``prunekit bench efficiency``: FLOPs, TTFT, prefill and decode speed, memory and prunekit's overhead.

    prunekit bench efficiency --model-shape llava-ov-7b --frames 32 \\
        --strategies hieravid-30,hieravid-20,hieravid-10,fastv,visionzip --repeats 10 --out results/

Builds the real architecture from its config with random weights (bf16 on a GPU; float32 tiny shapes
on the CPU), runs the unpruned model and every strategy side by side in one process and writes
``efficiency.json``, ``efficiency.md`` and plots. The harness lives in ``prunekit.benchmarks.efficiency``
(``benchmarks/efficiency`` in a source checkout).
"""

from __future__ import annotations

import argparse

from prunekit.cli.harness import benchmark_package

__all__ = ["add_efficiency_parser", "add_bench_parsers", "efficiency_command"]


def add_efficiency_parser(bench_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``efficiency`` to the ``prunekit bench`` subcommands; returns its parser."""
    p = bench_subparsers.add_parser(
        "efficiency", help="speed, FLOPs and memory of strategies vs the unpruned model (7B shapes on a GPU)",
        description=__doc__.split("\n\n")[0] + " Medians over --repeats runs after warm-up; ratios against the "
        "unpruned model measured in the same run.")
    try:
        benchmark_package("efficiency").add_arguments(p)
    except ModuleNotFoundError as exc:  # the harness is not installed: say so when the command runs
        reason = str(exc)
        p.set_defaults(func=lambda args: _missing(reason))
        return p
    p.set_defaults(func=efficiency_command)
    return p


add_bench_parsers = add_efficiency_parser  # the name `prunekit.cli.bench` looks for


def efficiency_command(args: argparse.Namespace) -> int:
    """Handler: run the benchmark with the parsed options; prints the markdown table."""
    pkg = benchmark_package("efficiency")
    pkg.run_efficiency(pkg.config_from_args(args))
    return 0


def _missing(reason: str) -> int:
    from prunekit.errors import PrunekitError

    raise PrunekitError(f"the efficiency benchmark is not installed ({reason}); install prunekit with its "
                        "benchmarks or run from a source checkout.")
