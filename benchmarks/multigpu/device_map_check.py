"""Sharded-model check: a device_map-dispatched model prunes exactly like the same model on one device.

Run on a machine with at least one GPU: ``python -m prunekit.benchmarks.multigpu.device_map_check``.

With two or more GPUs the decoder layers are split across them; with one GPU the second half of the
layers runs on the CPU (the same code path: every stage must run on its layer's device). Generated
tokens must be identical to the unsharded run and the last-step logits equal within 1e-4 (fp32).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

import prunekit
from prunekit.adapters.random_models import build_model, video_inputs


def _move(obj, device: str):  # noqa: ANN001, ANN202
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(_move(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _move(v, device) for k, v in obj.items()}
    return obj


def shard(model: torch.nn.Module, devices: list[str]) -> torch.nn.Module:
    """Place the first half of the decoder layers on ``devices[0]``, the rest (and the head) on
    ``devices[-1]``, with input-moving pre-hooks like accelerate's device_map dispatch (which would
    *offload* CPU-mapped modules and run them on the GPU instead of executing them on the CPU)."""
    model.to(devices[0])
    lm = model.model.language_model
    half = len(lm.layers) // 2
    tail = [*lm.layers[half:], lm.norm, model.lm_head]
    for module in tail:
        module.to(devices[-1])
        module.register_forward_pre_hook(
            lambda m, args, kwargs, d=devices[-1]: (_move(args, d), _move(kwargs, d)), with_kwargs=True)
    return model


def run(family: str, preset: str, devices: list[str], new_tokens: int = 8) -> dict:
    """Generate with ``preset`` on one device and sharded; compare tokens and logits."""
    inputs = video_inputs(build_model(family), num_frames=16, seed=7).kwargs
    single = build_model(family, num_layers=8).to(devices[0])
    sharded = shard(build_model(family, num_layers=8), devices)

    def generate(model: torch.nn.Module) -> tuple[list[int], torch.Tensor, dict]:
        feed = {k: v.to(devices[0]) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        with prunekit.apply(model, preset) as handle, torch.no_grad():
            out = model.generate(**feed, max_new_tokens=new_tokens, do_sample=False, output_logits=True,
                                 return_dict_in_generate=True)
            stats = handle.stats().to_dict()
        return out.sequences[0, -new_tokens:].tolist(), out.logits[-1].float().cpu(), stats

    tokens_a, logits_a, stats_a = generate(single)
    tokens_b, logits_b, stats_b = generate(sharded)
    return {"family": family, "preset": preset, "devices": devices, "tokens_single": tokens_a,
            "tokens_sharded": tokens_b, "identical_tokens": tokens_a == tokens_b,
            "layer_devices": sorted({str(p.device) for p in sharded.parameters()}),
            "max_abs_logit_diff": float((logits_a - logits_b).abs().max()),
            "same_stages": stats_a["samples"][0]["stages"] == stats_b["samples"][0]["stages"]}


def main(argv: list[str] | None = None) -> int:
    """Run the check for every family and a few presets; print and save the records."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="device_map_check.json")
    parser.add_argument("--presets", default="hieravid-30,fastv,uniform")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs at least one CUDA device", file=sys.stderr)
        return 2
    count = torch.cuda.device_count()
    devices = [f"cuda:{i}" for i in range(count)] if count > 1 else ["cuda:0", "cpu"]
    presets = [p for p in args.presets.split(",") if p in prunekit.presets.list()]
    records = [run(family, preset, devices) for family in ("llava_onevision", "qwen2_vl") for preset in presets]
    for r in records:
        print(json.dumps(r))
    with open(args.out, "w") as fh:
        json.dump(records, fh, indent=1)
    ok = all(r["identical_tokens"] and r["max_abs_logit_diff"] <= 1e-4 and r["same_stages"] for r in records)
    print("device_map check:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
