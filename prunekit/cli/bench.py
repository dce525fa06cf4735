"""``prunekit bench``: compare pruning strategies; ``prunekit bench accuracy`` for any model and dataset.

Plain ``prunekit bench`` is the embedded default: the bundled tiny video LLM on the synthetic test
split, unpruned and the main strategies at 30/20/10% (layer-averaged), offline on CPU in minutes; it
prints the comparison table and writes records, the table and a plot to ``--out``. Runs are
resumable: finished cells found in ``--out`` are not run again.

Further ``bench`` subcommands come from the modules in `BENCH_COMMANDS`: each exposes
``add_bench_parsers(bench_subparsers)`` (or ``add_parsers``) and binds handlers with
``set_defaults(func=...)``, like the top-level command modules. A listed module that is not
installed is skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from prunekit.cli.checks import (
    add_loading_args,
    check_model_name,
    check_pipeline,
    load_pretrained,
    positive_int,
    resolve_device,
)
from prunekit.cli.harness import benchmark_package
from prunekit.errors import PrunekitError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["BENCH_COMMANDS", "DEFAULT_STRATEGIES", "DEFAULT_BUDGETS", "DEFAULT_ITEMS", "add_parsers",
           "accuracy_command", "default_command"]

BENCH_COMMANDS: list[str] = ["prunekit.cli.bench_efficiency"]
"""Modules adding ``prunekit bench <name>`` subcommands (``accuracy`` is built in)."""

DEFAULT_STRATEGIES = ("hieravid", "visionzip", "divprune", "random")
DEFAULT_BUDGETS = (0.3, 0.2, 0.1)
DEFAULT_ITEMS = 270  # 30 per question type of the synthetic suite
DEFAULT_OUT = "prunekit-bench"


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add ``prunekit bench`` with its ``accuracy`` subcommand and those of `BENCH_COMMANDS`."""
    p = subparsers.add_parser(
        "bench", help="compare pruning strategies (default: tiny model + synthetic suite, offline)",
        description="Without a benchmark name: the embedded default, the accuracy harness on the bundled tiny "
                    f"video LLM and {DEFAULT_ITEMS} items of the synthetic test split, unpruned and "
                    f"{', '.join(DEFAULT_STRATEGIES)} at {', '.join(f'{b:g}' for b in DEFAULT_BUDGETS)} "
                    "(layer-averaged retention). Prints the table, writes records and a plot.")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: ./{DEFAULT_OUT})")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=default_command)
    sub = p.add_subparsers(title="benchmarks", metavar="BENCHMARK")
    _add_accuracy(sub)
    for name in BENCH_COMMANDS:
        module = _optional_module(name)
        if module is not None:
            (getattr(module, "add_bench_parsers", None) or module.add_parsers)(sub)


def _optional_module(name: str) -> ModuleType | None:
    if name in sys.modules:
        return sys.modules[name]
    try:
        if importlib.util.find_spec(name) is None:
            return None
    except (ModuleNotFoundError, ValueError):  # a parent package is missing
        return None
    return importlib.import_module(name)


def _add_accuracy(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser(
        "accuracy", help="accuracy and fidelity of strategies x budgets on a video-QA dataset",
        description="Run the unpruned model once and every strategy at every budget on the same items; report "
                    "accuracy (95% bootstrap CI), relative accuracy, fidelity to the unpruned model (answer "
                    "agreement, KL of the answer-option distribution), realized retention and FLOPs ratio. "
                    "Multiple choice is scored by the log-likelihood of the option letters, open-ended "
                    "questions by exact match of the generated word.")
    a.add_argument("--model", default=None,
                   help="Hugging Face id, local folder, or a bundled tiny model: tiny-deep (the default, 28 "
                        "LLM layers) or tiny-shallow (4 layers, faster)")
    a.add_argument("--data", default="synthetic:test",
                   help="JSONL manifest, or synthetic:test / synthetic:val (default: synthetic:test)")
    a.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES),
                   help="comma-separated presets ('prunekit presets'), 'hieravid' (paper preset per budget) "
                        "or config files")
    a.add_argument("--budgets", default=",".join(f"{b:g}" for b in DEFAULT_BUDGETS),
                   help="comma-separated retention values in (0, 1]")
    a.add_argument("--mode", choices=("layer_average", "input"), default="layer_average",
                   help="how budgets are measured (default: layer_average, the papers' 'x%% retained')")
    a.add_argument("--limit", type=positive_int, default=None, help="use only the first N items")
    a.add_argument("--batch-size", type=positive_int, default=8, help="items per forward, left-padded (default 8)")
    a.add_argument("--frames", type=positive_int, default=None,
                   help="frames per video (default: 16 tiny, 32 otherwise)")
    a.add_argument("--prompt", choices=("auto", "tiny", "chat"), default="auto",
                   help="prompt format (auto: the model's chat template if it has one)")
    a.add_argument("--mc-answer", choices=("auto", "letter", "option"), default="auto",
                   help="multiple-choice candidates scored: the option letters or the options' first tokens "
                        "(auto: letters for chat prompts, what the tiny model was trained to answer otherwise)")
    a.add_argument("--max-new-tokens", type=positive_int, default=None,
                   help="generation length for open-ended items (default: 3 tiny, 8 otherwise)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    a.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: ./{DEFAULT_OUT})")
    add_loading_args(a)
    a.add_argument("--no-plot", action="store_true", help="do not write the plot")
    a.add_argument("--no-progress", action="store_true", help="hide progress bars")
    a.set_defaults(func=accuracy_command)


def default_command(args: argparse.Namespace) -> int:
    """Handler of plain ``prunekit bench``: ``bench accuracy`` with every default, on `DEFAULT_ITEMS` items."""
    parser = argparse.ArgumentParser(prog="prunekit bench")
    _add_accuracy(parser.add_subparsers())
    argv = ["accuracy", "--limit", str(DEFAULT_ITEMS), "--out", args.out]
    argv += ["--no-progress"] if args.no_progress else []
    return accuracy_command(parser.parse_args(argv))


def accuracy_command(args: argparse.Namespace) -> int:
    """Handler of ``prunekit bench accuracy``; returns 1 when a cell failed with an unexpected error."""
    acc = benchmark_package("accuracy")
    start = time.perf_counter()
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    budgets = _budgets(args.budgets)
    _check_strategies(strategies, budgets, args.mode)  # before the model loads
    if args.model not in (None, "tiny"):
        check_model_name(args.model)
    device = resolve_device(args.device)
    world = acc.World.from_env()  # several processes under accelerate launch / torchrun: data parallel
    model, processor, model_name = load_model(args.model, world.device(device),
                                              allow_pickle=getattr(args, "allow_pickle", False))
    if not world.is_main:  # the main process writes any missing synthetic clips first
        world.barrier()
    items, dataset_name = _load_items(acc, args.data, args.limit)
    if world.is_main:
        world.barrier()
    style = acc.scoring.resolve_style(processor, args.prompt)
    frames = args.frames or (_tiny_frames() if style == "tiny" else 32)
    max_new_tokens = args.max_new_tokens or (3 if style == "tiny" else 8)  # tiny answers: one word, one token
    harness = acc.AccuracyHarness(
        model, processor, items, args.out, model_name=model_name, dataset_name=dataset_name, num_frames=frames,
        mode=args.mode, batch_size=args.batch_size, seed=args.seed, prompt_style=style, mc_answer=args.mc_answer,
        max_new_tokens=max_new_tokens, progress=not args.no_progress, world=world)
    failed: list[str] = []

    def on_error(cell, exc: Exception) -> None:  # noqa: ANN001
        failed.append(cell.label)
        print(f"prunekit: warning: {cell.label} failed: {type(exc).__name__}: {exc}", file=sys.stderr)

    records = harness.run(strategies, budgets, on_error=on_error)
    world.finish()
    if not world.is_main:
        return 1 if failed else 0
    paths = acc.write_outputs(records, args.out, plot=not args.no_plot)
    print(acc.markdown_table(records))
    print()
    resumed = sum(bool(r.get("resumed")) for r in records)
    processes = f" on {world.size} processes" if world.size > 1 else ""
    print(f"{len(records)} cells ({resumed} resumed from {args.out}) in {time.perf_counter() - start:.1f} s"
          f"{processes}; wrote {', '.join(str(p) for p in paths.values())}")
    return 1 if failed else 0


def _budgets(text: str) -> list[float]:
    try:
        values = [float(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise PrunekitError(f"--budgets must be comma-separated numbers in (0, 1], got {text!r}.") from None
    if not values or any(not 0 < b <= 1 for b in values):
        raise PrunekitError(f"--budgets must be comma-separated numbers in (0, 1], got {text!r}.")
    return values


def _check_strategies(strategies: list[str], budgets: list[float], mode: str) -> None:
    """Every strategy resolves (preset, ``hieravid``, config file, each optionally ``@budget``) at every budget,
    before a model loads. A budget its schedule cannot reach is not an error here: the harness plans at the
    model's depth and records such a cell as skipped."""
    from prunekit.errors import BudgetError

    if not strategies:
        raise PrunekitError("--strategies is empty; name presets ('prunekit presets') or config files.")
    try:  # the harness's own parser, so the check and the run agree on what a name means
        specs = benchmark_package("strategy_spec").parse_strategies(strategies, budgets)[1:]  # [0]: unpruned
    except ValueError:
        specs = None
    if specs is None or any(not 0 < spec.budget <= 1 for spec in specs):
        raise PrunekitError(f"--strategies {','.join(strategies)!r}: the budget after '@' must be a number in "
                            "(0, 1], e.g. fastv@0.3.")
    for spec in specs:
        if spec.strategy == "hieravid":
            continue  # the paper preset per budget, resolved by the harness
        with contextlib.suppress(BudgetError):
            check_pipeline(spec.strategy, spec.budget, mode)


def _tiny_frames() -> int:
    from prunekit.tiny import TINY_NUM_FRAMES

    return TINY_NUM_FRAMES


def load_model(name: str | None, device: str, *, allow_pickle: bool = False) -> tuple[nn.Module, object, str]:
    """``(model, processor, record name)``: a bundled tiny model for None, ``tiny`` (the default, ``deep``),
    ``tiny-deep`` or ``tiny-shallow``; else a hub id or folder (safetensors only unless ``allow_pickle``)."""
    from prunekit.tiny import DEFAULT_TINY, TINY_MODELS

    tiny = {None: DEFAULT_TINY, "tiny": DEFAULT_TINY, **{f"tiny-{k}": k for k in TINY_MODELS}}
    if name in tiny:
        from prunekit.tiny import load_tiny

        try:
            model, processor = load_tiny(device, name=tiny[name])
        except FileNotFoundError as exc:
            raise PrunekitError(str(exc)) from None
        return model, processor, f"prunekit-tiny-{tiny[name]}"
    model, processor = load_pretrained(name, device, allow_pickle=allow_pickle)
    return model, processor, name


def _load_items(acc: ModuleType, data: str, limit: int | None) -> tuple[list, str]:
    if data.startswith("synthetic:"):
        split = data.split(":", 1)[1]
        if split not in ("test", "val", "fresh"):
            raise PrunekitError(f"unknown synthetic split {split!r}; use synthetic:test, synthetic:val or "
                                "synthetic:fresh (held out from training).")
        return acc.load_synthetic(split, limit), f"synthetic-{split}"
    if not Path(data).is_file():
        raise PrunekitError(f"--data {data!r}: no such manifest (or use synthetic:test).")
    items = acc.load_manifest(data)
    return (items[:limit] if limit else items), Path(data).name
