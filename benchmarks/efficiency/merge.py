"""Merge several efficiency runs (one model shape each) into one report.

    python -m benchmarks.efficiency.merge OUT RUN1/efficiency.json RUN2/efficiency.json [--dpp OTHER.json] [--note TEXT]

Every ratio stays against the unpruned model of its own run; the environment shown is the first run's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from . import report
from .runner import write_outputs


def merge(paths: list[Path], dpp_from: Path | None = None, note: str = "") -> dict[str, Any]:
    """One result holding every run of ``paths`` (and the DPP section of ``dpp_from``, if given)."""
    results = [json.loads(Path(p).read_text()) for p in paths]
    merged = {"environment": results[0]["environment"], "config": results[0]["config"],
              "runs": [run for r in results for run in r["runs"]], "sources": [str(p) for p in paths],
              "note": note}
    with_dpp = [r for r in results if r.get("dpp")]
    dpp_source = json.loads(Path(dpp_from).read_text()) if dpp_from else (with_dpp[0] if with_dpp else None)
    if dpp_source and dpp_source.get("dpp"):
        merged["dpp"] = dpp_source["dpp"]
    return merged


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--dpp", type=Path, default=None, help="take the DPP section from this result")
    p.add_argument("--note", default="")
    args = p.parse_args(argv)
    write_outputs(merge(args.runs, args.dpp, args.note), args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
