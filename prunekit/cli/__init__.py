"""The ``prunekit`` command line: one argparse parser, subcommands contributed by modules.

Each module named in `COMMAND_MODULES` exposes ``add_parsers(subparsers)``, which adds its
subcommands and binds each to a handler with ``set_defaults(func=handler)``. A handler takes the
parsed `argparse.Namespace`, prints to stdout and returns an exit code (None means 0). Errors are
raised as `prunekit.errors.PrunekitError`; `main` prints them as one line, never a traceback, and
exits 2. Usage errors are one line too. A subcommand that parses its own options later (so that
``--help`` need not import torch) sets ``takes_extra=True``; it then gets the unparsed words as
``args.extra``.

Nothing imported at parser-building time imports torch: ``prunekit --help`` and ``--version`` are fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from prunekit._version import __version__
from prunekit.errors import ConfigError, PrunekitError

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

COMMAND_MODULES: tuple[str, ...] = ("prunekit.cli.run", "prunekit.cli.bench", "prunekit.cli.catalog")
"""Modules that add subcommands, in the order they appear in ``prunekit --help``."""

EXIT_USAGE = 2


class OneLineErrorParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line that names the command's ``--help``."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE (see 'PROG --help')`` to stderr and exit 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand of `COMMAND_MODULES`."""
    parser = OneLineErrorParser(
        prog="prunekit",
        description="Composable, budget-exact visual-token pruning for video LLMs.",
    )
    parser.add_argument("--version", action="version", version=f"prunekit {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 usage or prunekit error)."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "takes_extra", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    args.extra = extra
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: choose a command (see '{parser.prog} --help').", file=sys.stderr)
        return EXIT_USAGE
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _load_plugins()
        _report_warnings(caught)
        return int(handler(args) or 0)
    except PrunekitError as exc:
        return _error(str(exc))
    except BrokenPipeError:  # e.g. `prunekit schema | head`: the reader left, nothing to report
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return 0
    except OSError as exc:  # e.g. a config file that exists but cannot be read
        return _error(str(exc))
    except Exception as exc:  # pydantic and YAML errors that escaped the config helpers
        wrapped = _as_config_error(exc)
        if wrapped is None:
            raise
        return _error(str(wrapped))


def _load_plugins() -> None:
    from prunekit.plugins import get_registry

    get_registry()


def _report_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Show plugin warnings as one ``prunekit: warning:`` line each; re-emit the others."""
    from prunekit.plugins import PluginWarning

    for w in caught:
        if issubclass(w.category, PluginWarning):
            message = str(w.message).removeprefix("prunekit: ")
            print(f"prunekit: warning: {_one_line(message)}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _as_config_error(exc: Exception) -> ConfigError | None:
    import yaml
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()]
        return ConfigError(f"invalid config: {'; '.join(parts)}")
    if isinstance(exc, yaml.YAMLError):
        return ConfigError(f"malformed YAML: {exc}")
    return None


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _error(message: str) -> int:
    print(f"prunekit: error: {_one_line(message)}", file=sys.stderr)
    return EXIT_USAGE
