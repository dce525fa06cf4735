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
import sys
from types import ModuleType

from prunekit.cli.harness import benchmark_package
from prunekit.errors import PrunekitError

__all__ = ["add_efficiency_parser", "add_bench_parsers", "efficiency_command"]


def add_efficiency_parser(bench_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``efficiency`` to the ``prunekit bench`` subcommands; returns its parser.

    The harness imports torch, so its options are parsed when the command runs (`efficiency_command`),
    not when ``prunekit --help`` builds the parsers.
    """
    p = bench_subparsers.add_parser(
        "efficiency", help="speed, FLOPs and memory of strategies vs the unpruned model (7B shapes on a GPU)",
        add_help=False, description=_description())
    p.set_defaults(func=efficiency_command, takes_extra=True)
    return p


add_bench_parsers = add_efficiency_parser  # the name `prunekit.cli.bench` looks for


def _description() -> str:
    return (__doc__.split("\n\n")[0] + " Medians over --repeats runs after warm-up; ratios against the "
            "unpruned model measured in the same run.")


def full_parser(pkg: ModuleType) -> argparse.ArgumentParser:
    """The parser with every option of the harness (``prunekit bench efficiency --help`` shows it)."""
    from prunekit.cli import OneLineErrorParser

    parser = OneLineErrorParser(prog="prunekit bench efficiency", description=_description())
    pkg.add_arguments(parser)
    return parser


def efficiency_command(args: argparse.Namespace) -> int:
    """Handler: check the options, run the benchmark, print the markdown table; 1 when a row failed."""
    try:
        pkg = benchmark_package("efficiency")
    except ModuleNotFoundError as exc:
        return _missing(str(exc))
    try:
        options = full_parser(pkg).parse_args(getattr(args, "extra", []))
    except SystemExit as exc:  # --help or a usage error, already printed
        return exc.code if isinstance(exc.code, int) else 2
    check_options(options, pkg)
    result = pkg.run_efficiency(pkg.config_from_args(options))
    failures = [*result.get("errors", []), *_failed_rows(result)]
    if failures:
        print(f"prunekit: error: {len(failures)} part(s) of the benchmark failed (see 'FAILED' above).",
              file=sys.stderr)
        return 1
    return 0


def check_options(options: argparse.Namespace, pkg: ModuleType) -> None:
    """Every option that can be checked before a model is built; a one-line `PrunekitError` otherwise."""
    from prunekit.cli.checks import check_pipeline

    shapes = [s.strip() for s in (options.model_shape or "").split(",") if s.strip()]
    unknown = [s for s in shapes if s not in pkg.SHAPES]
    if not shapes or unknown:
        raise PrunekitError(f"--model-shape {options.model_shape!r}: unknown shape(s) "
                            f"{', '.join(unknown) or '(none)'}; choose from {', '.join(pkg.SHAPES)}.")
    at_least = {"--repeats": (options.repeats, 1), "--new-tokens": (options.new_tokens, 1),
                "--batch": (options.batch, 1), "--frames": (options.frames, 1),
                "--decode-repeats": (options.decode_repeats, 0),
                "--decode-runs": (getattr(options, "decode_runs", None), 0),
                "--decode-tokens": (getattr(options, "decode_tokens", None), 1),
                "--profile-repeats": (options.profile_repeats, 0),
                "--warmup": (options.warmup, 0), "--scene-frames": (options.scene_frames, 0),
                "--torch-profile": (options.torch_profile, 0)}
    for flag, (value, least) in at_least.items():
        if value is not None and value < least:
            raise PrunekitError(f"{flag} must be at least {least}, got {value}.")
    try:
        budgets = [float(b) for b in options.budgets.split(",") if b.strip()]
        specs = pkg.parse_strategies([s for s in options.strategies.split(",") if s.strip()], budgets)
    except ValueError:
        raise PrunekitError(f"--budgets {options.budgets!r} / --strategies {options.strategies!r}: budgets must be "
                            "numbers in (0, 1], e.g. --budgets 0.3,0.1 or --strategies fastv@0.3.") from None
    for spec in specs[1:]:  # the first is the unpruned model
        if spec.budget is not None and not 0 < spec.budget <= 1:
            raise PrunekitError(f"budget {spec.budget:g} of {spec.strategy!r} is not in (0, 1].")
        check_pipeline(spec.strategy, spec.budget, "layer_average")
    if options.device not in ("auto", "cpu") and not options.device.startswith("cuda"):
        raise PrunekitError(f"--device {options.device!r} is not supported; use auto, cpu or cuda.")


def _failed_rows(result: dict) -> list[str]:
    return [entry["error"] for run in result.get("runs", []) for entry in run.get("strategies", [])
            if entry.get("error")]


def _missing(reason: str) -> int:
    raise PrunekitError(f"the efficiency benchmark is not installed ({reason}); install prunekit with its "
                        "benchmarks or run from a source checkout.")
