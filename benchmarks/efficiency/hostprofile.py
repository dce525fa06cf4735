"""Where does prunekit's host time go, and what does a decode step run? Two profiles of one model shape.

    python -m benchmarks.efficiency.hostprofile --model-shape llava-ov-7b --frames 32 --preset hieravid-30

0. **Garbage collections** per ``generate(1)`` (by generation, with their host time), unpruned and pruned.
1. **Prefill, by Python function**: ``cProfile`` over ``--prefills`` runs of ``generate(max_new_tokens=1)``
   with the preset applied, restricted to prunekit's own code (the runtime, strategies, adapters, ops),
   sorted by cumulative host time per prefill. On a GPU a function's time includes any wait for the
   device it causes, so a host sync shows up under the function that made it.
2. **Decode steps, by operator**: ``torch.profiler`` over the decode steps of ``generate`` for the
   unpruned model and the preset (the profile of ``generate(1)`` is subtracted from that of
   ``generate(1 + --decode-steps)``), per step: launches and syncs, and the operators whose GPU or
   host time differs most between the two.

Works on the CPU too (tiny shapes), where host times include the computation itself.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import io
import os
import pstats
import time
from collections.abc import Sequence

import torch

from .probes import sync
from .scenes import SceneFeatures
from .shapes import build, get_shape, make_inputs

OWN_PACKAGES = ("prunekit", "prunekit.strategies", "prunekit.adapters")
"""Packages whose functions count as prunekit's own code (found by module origin, not by path text)."""


def own_code_roots() -> tuple[str, ...]:
    """Folders holding `OWN_PACKAGES` (a venv inside a clone folder named ``prunekit`` is not among them)."""
    roots = []
    for name in OWN_PACKAGES:
        module = importlib.import_module(name)
        roots += [os.path.join(os.path.realpath(path), "") for path in module.__path__]
    return tuple(roots)


def is_own_code(path: str, roots: tuple[str, ...]) -> bool:
    """Whether the source file ``path`` belongs to one of the package folders ``roots``."""
    return not path.startswith("<") and os.path.realpath(path).startswith(roots)


def _generate(model: torch.nn.Module, inputs: dict, new_tokens: int) -> None:
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)


class GcClock:
    """Counts Python's garbage collections by generation and the host time they take (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.ms = 0.0
        self._t0 = 0.0

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.count[info["generation"]] += 1
            self.ms += (time.perf_counter() - self._t0) * 1e3


def gc_per_generate(model: torch.nn.Module, inputs: dict, runs: int, cuda: bool, new_tokens: int = 1) -> str:
    """Garbage collections (by generation) and their host ms per ``generate`` call."""
    with GcClock() as clock:
        for _ in range(runs):
            _generate(model, inputs, new_tokens)
        sync(cuda)
    per = [c / runs for c in clock.count]
    return (f"collections per generate({new_tokens}): gen0 {per[0]:.1f}, gen1 {per[1]:.1f}, gen2 {per[2]:.1f}; "
            f"{clock.ms / runs:.2f} host ms")


def prefill_profile(model: torch.nn.Module, inputs: dict, prefills: int, cuda: bool, rows: int) -> str:
    """Cumulative host ms per prefill of prunekit's functions (cProfile)."""
    profiler = cProfile.Profile()
    for _ in range(prefills):
        sync(cuda)
        profiler.enable()
        _generate(model, inputs, 1)
        sync(cuda)
        profiler.disable()
    stats = pstats.Stats(profiler)
    lines = []
    roots = own_code_roots()
    for (path, line, name), (_, calls, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if is_own_code(path, roots):
            where = "/".join(path.replace("\\", "/").split("/")[-2:])
            lines.append((cumulative / prefills * 1e3, calls / prefills, f"{where}:{line}({name})"))
    lines.sort(reverse=True)
    out = io.StringIO()
    out.write(f"{'cum ms/prefill':>14}  {'calls':>7}  function\n")
    for ms, calls, name in lines[:rows]:
        out.write(f"{ms:14.3f}  {calls:7.1f}  {name}\n")
    return out.getvalue()


def _op_table(model: torch.nn.Module, inputs: dict, new_tokens: int,
              cuda: bool) -> dict[str, tuple[int, float, float]]:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        _generate(model, inputs, new_tokens)
        sync(cuda)
    table = {}
    for e in prof.key_averages():
        gpu = getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)) if cuda else 0.0
        table[e.key] = (e.count, e.self_cpu_time_total, gpu)
    return table


def decode_profile(model: torch.nn.Module, inputs: dict, steps: int, cuda: bool,
                   repeats: int = 2) -> dict[str, tuple[float, float, float]]:
    """Per decode step: ``op -> (calls, host us, GPU us)`` (profile of 1 + steps tokens minus 1 token).

    Each length is profiled ``repeats`` times and each op keeps its least time, so one noisy run does not
    make the difference negative; what noise remains is floored at 0 (an op cannot take negative time).
    """
    _generate(model, inputs, 1 + steps)  # warm
    longer = _least([_op_table(model, inputs, 1 + steps, cuda) for _ in range(repeats)])
    shorter = _least([_op_table(model, inputs, 1, cuda) for _ in range(repeats)])
    out = {}
    for key, (calls, host, gpu) in longer.items():
        c0, h0, g0 = shorter.get(key, (0, 0.0, 0.0))
        out[key] = ((calls - c0) / steps, max(host - h0, 0.0) / steps, max(gpu - g0, 0.0) / steps)
    return out


def _least(tables: list[dict[str, tuple[int, float, float]]]) -> dict[str, tuple[int, float, float]]:
    """Per op, the calls of the first table and the least host and GPU time over ``tables``."""
    out = {}
    for key, (calls, _, _) in tables[0].items():
        rows = [t[key] for t in tables if key in t]
        out[key] = (calls, min(r[1] for r in rows), min(r[2] for r in rows))
    return out


def compare_decode(unpruned: dict, pruned: dict, label: str, rows: int) -> str:
    """The ops whose per-step GPU or host time differs most, and the per-step totals."""
    keys = set(unpruned) | set(pruned)
    zero = (0.0, 0.0, 0.0)
    out = io.StringIO()
    for title, column in (("GPU", 2), ("host", 1)):
        total_u = sum(v[column] for k, v in unpruned.items() if not k.startswith("cuda"))
        total_p = sum(v[column] for k, v in pruned.items() if not k.startswith("cuda"))
        out.write(f"\n-- per decode step, by {title} time: unpruned {total_u / 1e3:.2f} ms, {label} "
                  f"{total_p / 1e3:.2f} ms (self times summed)\n")
        ranked = sorted(keys, key=lambda k: -abs(pruned.get(k, zero)[column] - unpruned.get(k, zero)[column]))
        out.write(f"{'op':60s} {'calls u':>8} {'us u':>9} {'calls p':>8} {'us p':>9}\n")
        for k in ranked[:rows]:
            u, p = unpruned.get(k, zero), pruned.get(k, zero)
            out.write(f"{k[:60]:60s} {u[0]:8.1f} {u[column]:9.1f} {p[0]:8.1f} {p[column]:9.1f}\n")
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    import prunekit

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-shape", default="tiny")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--preset", default="hieravid-30")
    parser.add_argument("--prefills", type=int, default=5)
    parser.add_argument("--decode-steps", type=int, default=16)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--skip-decode", action="store_true")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    shape = get_shape(args.model_shape)
    frames = args.frames or shape.frames
    model = build(shape, device, dtype)
    inputs = make_inputs(model, shape, frames, device, dtype)
    temporal = frames if shape.family.startswith("llava") else (frames + 1) // 2
    SceneFeatures(model, shape.scene_frames, temporal)
    print(f"{shape.key}, {frames} frames, {int(inputs['input_ids'].shape[1])} tokens, {device}, preset {args.preset}")
    _generate(model, inputs, 1)
    print(f"unpruned: {gc_per_generate(model, inputs, args.prefills, cuda)}")
    unpruned = None if args.skip_decode else decode_profile(model, inputs, args.decode_steps, cuda)
    with prunekit.apply(model, args.preset):
        for _ in range(2):
            _generate(model, inputs, 1)  # warm-up (Triton compiles, cuDNN plans)
        print(f"{args.preset}: {gc_per_generate(model, inputs, args.prefills, cuda)}")
        print(f"\n== prefill with {args.preset}: prunekit's functions by cumulative host time ==")
        print(prefill_profile(model, inputs, args.prefills, cuda, args.rows))
        if unpruned is not None:
            pruned = decode_profile(model, inputs, args.decode_steps, cuda)
            print(f"== decode: unpruned vs {args.preset} ==")
            print(compare_decode(unpruned, pruned, args.preset, args.rows // 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
