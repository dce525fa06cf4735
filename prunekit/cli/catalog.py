"""Catalog subcommands: what is registered, what a config means, what a preset costs.

``prunekit strategies | adapters | presets | plugins | schema | validate FILE | flops ...``. None of them
touches the network or loads a model.
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Sequence
from importlib import metadata

from prunekit._version import __version__
from prunekit.errors import ConfigError
from prunekit.registry import BUILTIN_SOURCE, KINDS, Entry

__all__ = ["add_parsers"]

STAGE_KINDS = ("segmenter", "merger", "allocator", "frame_selector", "layer_scheduler", "encoder")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register the catalog subcommands on the top-level parser's ``subparsers``."""
    p = subparsers.add_parser("strategies", help="list registered stages with their source distribution")
    p.add_argument("--kind", choices=KINDS, help="only this kind (default: every stage kind)")
    p.set_defaults(func=cmd_strategies)

    p = subparsers.add_parser("adapters", help="list model adapters, the model classes each recognises, "
                              "and their source distribution")
    p.set_defaults(func=cmd_adapters)

    p = subparsers.add_parser("presets", help="list named pipelines with description and citation")
    p.set_defaults(func=cmd_presets)

    p = subparsers.add_parser("plugins", help="list loaded plugins and their distributions")
    p.set_defaults(func=cmd_plugins)

    p = subparsers.add_parser("schema", help="print the JSON schema of pipeline configs")
    p.set_defaults(func=cmd_schema)

    p = subparsers.add_parser("validate", help="check a JSON or YAML pipeline config")
    p.add_argument("file", help="path to a .json, .yaml or .yml pipeline config")
    p.set_defaults(func=cmd_validate)

    p = subparsers.add_parser(
        "flops", help="planned stages, retention and prefill FLOPs ratio of a preset for given shapes",
        description="Plan a preset's stages for a model shape and report retention and FastV FLOPs ratio. "
                    "Assumes one segment (segmentation depends on the video).")
    p.add_argument("--hidden", type=_positive_int, required=True, metavar="D", help="hidden size")
    p.add_argument("--intermediate", type=_positive_int, required=True, metavar="M", help="FFN size")
    p.add_argument("--layers", type=_positive_int, required=True, metavar="L", help="decoder layers")
    p.add_argument("--visual", type=_positive_int, required=True, metavar="N", help="visual tokens")
    p.add_argument("--text", type=_non_negative_int, required=True, metavar="T", help="text tokens")
    p.add_argument("--preset", required=True, metavar="NAME", help="a preset name (see 'prunekit presets')")
    p.add_argument("--budget", type=float, metavar="R", help="retention in (0, 1] (default: the preset's)")
    p.add_argument("--mode", choices=("input", "layer_average"), help="how --budget is measured "
                   "(default: layer_average)")
    p.set_defaults(func=cmd_flops)


# -- handlers ---------------------------------------------------------------------------------


def cmd_strategies(args: argparse.Namespace) -> int:
    """Table of registered stages: kind, name, source distribution, one-line description."""
    from prunekit.plugins import get_registry

    kinds = (args.kind,) if args.kind else STAGE_KINDS
    rows = [(e.kind, e.name, e.source, _describe(e)) for kind in kinds for e in get_registry().entries(kind)]
    print(_table(("KIND", "NAME", "SOURCE", "DESCRIPTION"), rows))
    return 0


def cmd_adapters(args: argparse.Namespace) -> int:
    """Table of adapters: name, the model classes it recognises by name, source distribution."""
    from prunekit.plugins import get_registry

    rows = [(e.name, ", ".join(getattr(e.obj, "model_classes", ())) or "-", e.source)
            for e in get_registry().entries("adapter")]
    print(_table(("NAME", "MODEL CLASSES", "SOURCE"), rows))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    """Table of presets: name, the description and citation of the config it builds."""
    from prunekit import presets

    rows = []
    for name in presets.list():
        config = presets.get(name)
        citation = _first_line(config.citation)
        rows.append((name, _first_line(config.description) + (f" [{citation}]" if citation else "")))
    print(_table(("NAME", "DESCRIPTION [CITATION]"), rows))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """Table of loaded plugins: entry-point name, distribution, version."""
    from prunekit.plugins import loaded_plugins

    rows = [(name, source, _version(source)) for name, source in loaded_plugins()]
    print(_table(("PLUGIN", "DISTRIBUTION", "VERSION"), rows))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """JSON schema of a pipeline config."""
    from prunekit.config import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Load a config file, build its stages and plan its schedule; print OK and its fingerprint."""
    from prunekit.cli.checks import check_without_model
    from prunekit.config import PipelineConfig
    from prunekit.pipeline import Pipeline

    config = PipelineConfig.load(args.file)
    check_without_model(Pipeline(config))
    print(f"OK {args.file}: {config.name!r}, fingerprint {config.fingerprint()}")
    return 0


def cmd_flops(args: argparse.Namespace) -> int:
    """Plan the preset's stages for the given shape and print retention and FLOPs ratio."""
    from prunekit.budget import Budget, realized_retention, visual_tokens_per_layer
    from prunekit.flops import flops, flops_ratio
    from prunekit.pipeline import Pipeline

    if args.mode is not None and args.budget is None:
        raise ConfigError("--mode needs --budget (e.g. --budget 0.3 --mode input).")
    budget = None if args.budget is None else Budget(args.budget, args.mode or "layer_average")
    pipeline = Pipeline.from_preset(args.preset, budget)
    n, num_layers = args.visual, args.layers
    # as Pipeline.start: retain = 1 plans nothing, and a stage keeping every token is a no-op
    full = pipeline.budget is not None and pipeline.budget.retain >= 1.0
    stages = [] if full else pipeline.scheduler.plan(n, num_layers, pipeline.budget, min_keep=1)
    stages = [s for s in stages if s.keep < n]
    per_layer = visual_tokens_per_layer(stages, n, num_layers)
    retention = realized_retention(stages, n, num_layers) if stages else {"input": 1.0, "layer_average": 1.0}
    ratio = flops_ratio(per_layer, n, args.text, args.hidden, args.intermediate)
    pruned = flops([v + args.text for v in per_layer], args.hidden, args.intermediate)

    requested = "the preset's published fractions" if pipeline.budget is None else (
        f"retain {pipeline.budget.retain:g} ({pipeline.budget.mode})")
    print(f"preset {args.preset!r}, budget: {requested}")
    print(f"model: {num_layers} layers, hidden {args.hidden}, intermediate {args.intermediate}; "
          f"tokens: {n} visual + {args.text} text (one segment assumed)")
    rows = [(str(i), str(s.layer), str(s.keep), f"{s.keep / n:.2%}") for i, s in enumerate(stages)]
    print(_table(("STAGE", "LAYER", "KEEP", "OF N"), rows) if rows else "no pruning stage: nothing is pruned")
    print(f"input retention:         {retention['input']:.4%}")
    print(f"layer-average retention: {retention['layer_average']:.4%}")
    print(f"prefill FLOPs:           {pruned / 1e12:.3f} TFLOPs")
    print(f"FLOPs ratio:             {ratio:.4f} ({1 - ratio:.2%} fewer than unpruned)")
    return 0


# -- helpers ----------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def _describe(entry: Entry) -> str:
    """One line: the registered description, or the first sentence of the object's docstring
    (a preset without either is described by the config it builds)."""
    doc = inspect.getdoc(entry.obj) or ""
    text = entry.description
    if not text or doc.startswith(text):
        paragraph = " ".join(doc.split("\n\n")[0].split())
        text = paragraph.split(". ")[0].rstrip(".") + "." if paragraph else ""
    if not text and entry.kind == "preset":
        text = entry.obj().description
    return _first_line(text)


def _first_line(text: str) -> str:
    return " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""


def _version(distribution: str) -> str:
    if distribution == BUILTIN_SOURCE:
        return __version__
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, no trailing blanks; the last column wraps to the
    terminal's width (continuation lines start under it)."""
    import shutil
    import textwrap

    widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers))]
    indent = sum(w + 2 for w in widths[:-1])
    room = max(30, shutil.get_terminal_size((100, 24)).columns - indent)
    lines = []
    for row in (headers, *rows):
        head = "".join(str(cell).ljust(width + 2) for cell, width in zip(row[:-1], widths[:-1], strict=True))
        wrapped = textwrap.wrap(str(row[-1]), room) or [""]
        lines.append((head + wrapped[0]).rstrip())
        lines.extend(" " * indent + more for more in wrapped[1:])
    return "\n".join(lines)
