"""Where do host synchronisations come from? Run a prunekit CLI command under CUDA's sync debug mode.

    python -m benchmarks.efficiency.syncs bench efficiency --model-shape llava-ov-7b --frames 16 \\
        --strategies hieravid-30 --repeats 1 --decode-repeats 1 --profile-repeats 1 --warmup 1 --new-tokens 2

Every synchronising CUDA call (``torch.cuda.set_sync_debug_mode("warn")``) is attributed to its
Python call site (the innermost frames outside torch); the counts are printed at the end, most
frequent first. GPU only: on a machine without CUDA it says so and exits with status 2.
"""

from __future__ import annotations

import collections
import sys
import traceback
import warnings

import torch


def main(argv: list[str] | None = None, top: int = 45) -> int:
    """Run ``prunekit`` with ``argv`` and print host syncs by call site."""
    if not torch.cuda.is_available():
        print("benchmarks.efficiency.syncs needs a CUDA GPU: host synchronisations only exist there.")
        return 2
    from importlib.metadata import entry_points

    (command,) = entry_points(group="console_scripts", name="prunekit")  # the installed CLI, not its modules
    prunekit_main = command.load()

    counts: collections.Counter[str] = collections.Counter()
    show = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        if "synchroniz" not in str(message):
            return show(message, category, filename, lineno, file, line)
        frames = [f for f in traceback.extract_stack()[:-1] if "/torch/" not in f.filename
                  and "warnings" not in f.filename]
        counts[" <- ".join(f"{f.filename.split('/')[-1]}:{f.lineno}:{f.name}" for f in reversed(frames[-5:]))] += 1

    with warnings.catch_warnings():  # restores the filters and showwarning on exit
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            code = prunekit_main(list(sys.argv[1:] if argv is None else argv))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    print("== host syncs by call site (count, innermost first) ==")
    for site, n in counts.most_common(top):
        print(n, site)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
