"""LLaVA-OV video pooling: transformers' ``apply_pooling`` against prunekit's channels-last version.

    python -m benchmarks.efficiency.pooling [--frames 32,64] [--side 27] [--dim 3584]

For each frame count, times both on random projected features ``[frames, side*side, dim]`` (CUDA
events, median of ``--repeats`` after 3 warm-up calls; bf16 on a GPU, fp32 on the CPU) and says
whether the outputs are bit-identical.
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Sequence

import torch
from transformers import LlavaOnevisionModel

from prunekit.speedups import channels_last_pooling

from .probes import median_ms


def compare(frames: int, side: int, dim: int, device: torch.device, repeats: int = 20) -> dict:
    """Times (ms) of both poolings on ``frames`` frames and whether they agree bit for bit."""
    cuda = device.type == "cuda"
    owner = types.SimpleNamespace(config=types.SimpleNamespace(
        vision_config=types.SimpleNamespace(image_size=side, patch_size=1)))
    features = torch.randn(frames, side * side, dim, device=device, dtype=torch.bfloat16 if cuda else torch.float32)
    upstream = lambda: LlavaOnevisionModel.apply_pooling(owner, features)  # noqa: E731
    channels_last = lambda: channels_last_pooling(owner, features)  # noqa: E731
    return {"frames": frames, "transformers_ms": median_ms(upstream, repeats, warmup=3, cuda=cuda),
            "channels_last_ms": median_ms(channels_last, repeats, warmup=3, cuda=cuda),
            "bit_identical": bool(torch.equal(upstream(), channels_last()))}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.efficiency.pooling``: time both poolings at each ``--frames``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", default="32,64")
    p.add_argument("--side", type=int, default=27, help="patch grid side before pooling (27 for LLaVA-OV-7B)")
    p.add_argument("--dim", type=int, default=3584, help="projected feature width (3584 for Qwen2-7B)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"LLaVA-OV video pooling, {args.side}x{args.side} grid, width {args.dim}, {name}, torch {torch.__version__}")
    for frames in (int(f) for f in args.frames.split(",")):
        r = compare(frames, args.side, args.dim, device, args.repeats)
        print(f"{frames} frames: transformers {r['transformers_ms']:.2f} ms, channels-last {r['channels_last_ms']:.2f} "
              f"ms ({r['transformers_ms'] / r['channels_last_ms']:.0f}x), bit-identical: {r['bit_identical']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
