"""When is the GPU idle during a prefill, and what is the host doing then?

    python -m benchmarks.efficiency.gaps --model-shape llava-ov-7b --frames 32 --preset hieravid-30 [--fast-pooling]

Profiles one ``generate(max_new_tokens=1)`` (after warm-up) with the torch profiler, unpruned and with
``--preset``. The host side is labelled with profiler ranges: the vision tower, each decoder layer and
prunekit's own parts (the runtime's timer names, e.g. ``prunekit.plan``). From the exported trace it
takes the GPU's busy intervals (kernels, copies, memsets) from the first kernel after the vision tower
to the last one, and reports every idle gap of at least ``--min-gap-us``, labelled with the innermost
host range open at the middle of the gap: the code the GPU was waiting for. Idle time is summed per
label. GPU only (on a machine without CUDA it says so and exits with status 2).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from .probes import sync
from .scenes import SceneFeatures
from .shapes import build, get_shape, make_inputs

DEVICE_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")
LABEL_PREFIX = "gaps:"


@dataclass(frozen=True)
class Span:
    """One interval of a trace, in microseconds."""

    name: str
    start: float
    end: float


@dataclass
class GapReport:
    """GPU idle time inside a window, per host label, and the largest gaps."""

    window_us: float
    busy_us: float
    idle_by_label: dict[str, float]
    largest: list[tuple[Span, str]]

    def table(self, title: str, rows: int = 12) -> str:
        idle = self.window_us - self.busy_us
        lines = [f"== {title}: window {self.window_us / 1e3:.2f} ms, GPU busy {self.busy_us / 1e3:.2f} ms, "
                 f"idle {idle / 1e3:.2f} ms ==", "idle ms  host was in"]
        for label, us in sorted(self.idle_by_label.items(), key=lambda kv: -kv[1])[:rows]:
            lines.append(f"{us / 1e3:7.3f}  {label}")
        lines.append("largest gaps (ms, host range, kernels before -> after):")
        for gap, label in self.largest[:rows]:
            lines.append(f"{(gap.end - gap.start) / 1e3:7.3f}  {label}  ({gap.name})")
        return "\n".join(lines)


def idle_gaps(busy: Iterable[Span], window: tuple[float, float], min_gap_us: float) -> list[Span]:
    """Gaps of at least ``min_gap_us`` between the union of ``busy`` intervals inside ``window``;
    each gap is named ``"<kernel before> -> <kernel after>"``."""
    lo, hi = window
    spans = sorted((s for s in busy if s.end > lo and s.start < hi), key=lambda s: s.start)
    gaps, cursor, before = [], lo, "window start"
    for s in spans:
        if s.start - cursor >= min_gap_us:
            gaps.append(Span(f"{before[:40]} -> {s.name[:40]}", cursor, s.start))
        if s.end > cursor:
            cursor, before = s.end, s.name
    if hi - cursor >= min_gap_us:
        gaps.append(Span(f"{before[:40]} -> window end", cursor, hi))
    return gaps


def innermost(ranges: list[Span], t: float) -> str:
    """Name of the latest-starting range that contains time ``t`` (``"other host code"`` if none)."""
    best = None
    for r in ranges:
        if r.start <= t <= r.end and (best is None or r.start > best.start):
            best = r
    return best.name if best is not None else "other host code"


def analyse(trace: dict, min_gap_us: float = 20.0) -> GapReport:
    """The `GapReport` of a Chrome trace exported by the torch profiler."""
    events = trace.get("traceEvents", [])
    device = [Span(e.get("name", "?"), e["ts"], e["ts"] + e.get("dur", 0)) for e in events
              if e.get("ph") == "X" and e.get("cat") in DEVICE_CATEGORIES]
    ranges = [Span(e["name"][len(LABEL_PREFIX):] if e["name"].startswith(LABEL_PREFIX) else e["name"], e["ts"],
                   e["ts"] + e.get("dur", 0)) for e in events
              if e.get("ph") == "X" and e.get("cat") == "user_annotation"
              and (e["name"].startswith(LABEL_PREFIX) or e["name"].startswith("prunekit."))]
    if not device:
        raise ValueError("the trace has no GPU kernels: profile a CUDA run")
    vision_end = max((r.end for r in ranges if r.name == "vision tower"), default=None)
    lo = vision_end if vision_end is not None else min(s.start for s in device)
    hi = max(s.end for s in device)
    every_gap = idle_gaps(device, (lo, hi), 0.0)
    by_label: dict[str, float] = defaultdict(float)
    labelled = []
    for gap in every_gap:
        if gap.end - gap.start < min_gap_us:
            continue
        label = innermost(ranges, (gap.start + gap.end) / 2)
        by_label[label] += gap.end - gap.start
        labelled.append((gap, label))
    busy = (hi - lo) - sum(g.end - g.start for g in every_gap)
    labelled.sort(key=lambda gl: gl[0].start - gl[0].end)
    return GapReport(hi - lo, busy, dict(by_label), labelled)


@contextmanager
def labelled_modules(model: torch.nn.Module):
    """Profiler ranges around the vision tower, the language model and each decoder layer."""
    inner = getattr(model, "model", model)
    vision = getattr(inner, "vision_tower", None) or getattr(inner, "visual", None)
    named = [(vision, "vision tower"), (inner.language_model, "language model")]
    named += [(layer, f"layer {i:02d}") for i, layer in enumerate(inner.language_model.layers)]
    handles, open_ranges = [], {}
    for module, name in named:
        if module is None:
            continue

        def pre(mod, args, name=name):  # noqa: ANN001, ANN202
            open_ranges[name] = torch.autograd.profiler.record_function(LABEL_PREFIX + name).__enter__()

        def post(mod, args, out, name=name):  # noqa: ANN001, ANN202
            rf = open_ranges.pop(name, None)
            if rf is not None:
                rf.__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(pre, prepend=True), module.register_forward_hook(post)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class LabelledTimer:
    """Wraps a prunekit timer (`PruneHandle.timer`) so each part also opens a ``prunekit.<part>`` profiler
    range; install it with `PruneHandle.traced`."""

    def __init__(self, timer) -> None:  # noqa: ANN001
        self._timer = timer

    @contextmanager
    def __call__(self, name: str):  # noqa: ANN204
        with torch.autograd.profiler.record_function(f"prunekit.{name}"), self._timer(name):
            yield

    def __getattr__(self, attr: str):  # noqa: ANN204 - reset, snapshot, sync: the wrapped timer's
        return getattr(self._timer, attr)


def profile_prefill(model: torch.nn.Module, inputs: dict, warmup: int = 2) -> dict:
    """The Chrome trace of one ``generate(max_new_tokens=1)`` after ``warmup`` unprofiled ones."""
    from torch.profiler import ProfilerActivity, profile

    def run() -> None:
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=1, min_new_tokens=1, do_sample=False)

    cuda = torch.cuda.is_available()
    for _ in range(warmup):
        run()
    sync(cuda)
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with labelled_modules(model), profile(activities=activities) as prof:
        run()
        sync(cuda)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.efficiency.gaps``: print the idle-gap report, unpruned and with the preset."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-shape", default="llava-ov-7b")
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--preset", default="hieravid-30")
    p.add_argument("--fast-pooling", action="store_true", help="LLaVA-OV video pooling on the channels-last view")
    p.add_argument("--min-gap-us", type=float, default=20.0)
    p.add_argument("--rows", type=int, default=12)
    p.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks.efficiency.gaps needs a CUDA GPU: it measures idle time on the GPU timeline.")
        return 2
    import prunekit

    shape = get_shape(args.model_shape)
    frames = args.frames or shape.frames
    device = torch.device("cuda")
    model = build(shape, device, torch.bfloat16)
    inputs = make_inputs(model, shape, frames, device, torch.bfloat16)
    temporal = frames if shape.family.startswith("llava") else (frames + 1) // 2
    scenes = SceneFeatures(model, shape.scene_frames, temporal)  # the efficiency benchmark's scenes
    if args.fast_pooling:
        from prunekit.speedups import fast_video_pooling

        fast_video_pooling(model)
    reports = [analyse(profile_prefill(model, inputs), args.min_gap_us).table("unpruned", args.rows)]
    with prunekit.apply(model, args.preset) as handle, handle.traced(LabelledTimer(handle.timer)):
        reports.append(analyse(profile_prefill(model, inputs), args.min_gap_us).table(args.preset, args.rows))
    scenes.remove()
    text = f"{shape.key}, {frames} frames, {torch.cuda.get_device_name()}\n\n" + "\n\n".join(reports)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
