"""A model sharded over GPUs with accelerate's ``device_map`` dispatch prunes exactly like it does on one GPU.

    python -m benchmarks.multigpu.sharded --model-shape llava-ov-7b --frames 32 --presets hieravid-30,fastv

Builds the model once with random weights on the first device and measures it there, then dispatches
the same weights over ``--devices`` with ``accelerate.dispatch_model`` (the decoder layers split in
equal halves, the vision tower and embeddings on the first device, the norm and head on the last: the
machinery of ``from_pretrained(device_map=...)``) and measures again. Per preset:

* **correctness**: greedy tokens identical, first-step logits (each side also run twice: the
  run-to-run noise floor of the device), kept tokens per stage, the device each
  stage ran on against the device of its layer, and the CUDA copies of one ``generate(1)`` by kind
  (device-to-host reads must not grow: prunekit adds no host copies when sharded);
* **efficiency**: time to first token (host wall clock of a synchronised ``generate(1)``, median of
  ``--repeats``) and the peak memory of every device.

Writes ``sharded.json`` and ``sharded.md`` to ``--out``. Runs on the CPU too (tiny shapes, ``--devices
cpu,cpu``), where it checks the same code path without copies or memory figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

import prunekit

from ..efficiency.runner import environment
from ..efficiency.scenes import SceneFeatures
from ..efficiency.shapes import build, get_shape, make_inputs

UNPRUNED = "unpruned"


def device_map(model: nn.Module, devices: Sequence[str]) -> dict[str, str]:
    """Module name -> device: vision and embeddings on the first device, the decoder layers in equal
    consecutive parts, the final norm and the LM head on the last device."""
    lm = model.model.language_model
    names = {module: name for name, module in model.named_modules()}
    layers = list(lm.layers)
    per = -(-len(layers) // len(devices))
    mapping = {names[child]: devices[0] for child in model.model.children() if child is not lm}
    mapping.update({names[m]: devices[0] for m in lm.children() if m is not lm.layers and m is not lm.norm})
    mapping.update({names[layer]: devices[i // per] for i, layer in enumerate(layers)})
    mapping[names[lm.norm]] = devices[-1]
    mapping[names[model.lm_head]] = devices[-1]
    for name, _ in model.model.named_parameters(recurse=False):  # e.g. LLaVA-OV's image_newline
        mapping[f"model.{name}"] = devices[0]
    return mapping


def dispatch(model: nn.Module, devices: Sequence[str]) -> dict[str, str]:
    """Spread ``model`` over ``devices`` with accelerate (as ``from_pretrained(device_map=...)`` does)."""
    from accelerate import dispatch_model

    mapping = device_map(model, devices)
    with warnings.catch_warnings():  # accelerate places parameter keys too, but warns they are no modules
        warnings.filterwarnings("ignore", message="The following device_map keys do not match any submodules")
        dispatch_model(model, device_map=mapping, main_device=devices[0])
    return mapping


def _sync_all() -> None:
    for i in range(torch.cuda.device_count()):
        torch.cuda.synchronize(i)


def _generate(model: nn.Module, inputs: dict, new_tokens: int) -> tuple[list[int], torch.Tensor]:
    """Greedy tokens and the logits of the first step (the prefill's last position)."""
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                             output_logits=True, return_dict_in_generate=True)
    return out.sequences[0, -new_tokens:].tolist(), out.logits[0].float().cpu()


def _copies(model: nn.Module, inputs: dict) -> dict[str, int]:
    """CUDA memory copies of one ``generate(1)`` by kind (``Memcpy DtoH`` ...; none on the CPU)."""
    if not torch.cuda.is_available():
        return {}
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        _generate(model, inputs, 1)
        _sync_all()
    kinds = Counter()
    for event in prof.events():
        if event.name.startswith("Memcpy "):
            kinds[event.name.split(" (")[0]] += 1
    return dict(sorted(kinds.items()))


def _ttft_and_memory(model: nn.Module, inputs: dict, repeats: int) -> dict:
    cuda = torch.cuda.is_available()
    times = []
    for i in range(repeats + 1):
        if cuda:
            _sync_all()
            for d in range(torch.cuda.device_count()):
                torch.cuda.reset_peak_memory_stats(d)
        start = time.perf_counter()
        _generate(model, inputs, 1)
        if cuda:
            _sync_all()
        if i:  # the first is a warm-up
            times.append((time.perf_counter() - start) * 1e3)
    peak = [torch.cuda.max_memory_allocated(d) / 2**30 for d in range(torch.cuda.device_count())] if cuda else []
    return {"ttft_ms": statistics.median(times), "ttft_runs_ms": [round(t, 2) for t in times],
            "peak_gib_per_device": [round(p, 3) for p in peak]}


def measure(model: nn.Module, inputs: dict, preset: str, new_tokens: int, repeats: int,
            layer_device: dict[int, str]) -> dict:
    """Tokens, logits, kept counts, stage devices, copies, TTFT and memory of one preset (or unpruned)."""
    handle = prunekit.apply(model, preset) if preset != UNPRUNED else None
    try:
        tokens, logits = _generate(model, inputs, new_tokens)
        again, logits_again = _generate(model, inputs, new_tokens)  # the same device again: the noise floor
        record = {"preset": preset, "tokens": tokens, "logits": logits, "repeat_identical_tokens": tokens == again,
                  "repeat_max_abs_logit_diff": float((logits - logits_again).abs().max())}
        if handle is not None:
            stats = handle.stats().samples[0]
            kept = handle.kept_indices()[0]
            record["kept_per_stage"] = [list(stage) for stage in stats.stages]
            record["stage_devices"] = {layer: str(idx.device) for layer, idx in sorted(kept.items()) if layer > 0}
            record["layer_devices"] = {layer: layer_device[layer] for layer in record["stage_devices"]}
        record["copies"] = _copies(model, inputs)
        record.update(_ttft_and_memory(model, inputs, repeats))
        return record
    finally:
        if handle is not None:
            handle.remove()


def _layer_devices(model: nn.Module) -> dict[int, str]:
    return {i: str(next(layer.parameters()).device) for i, layer in enumerate(model.model.language_model.layers)}


def _agree_until(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def compare(single: dict, sharded: dict) -> dict:
    """The correctness verdict of one preset: single device against sharded.

    The prefill logits must match as closely as each device matches itself on a second run, and the
    generated tokens must be identical, unless a device does not reproduce its own tokens (greedy decode
    of a random-weight bf16 model can flip a near-tie between runs on one GPU; the unpruned row shows it).
    """
    row = {"preset": single["preset"], "identical_tokens": single["tokens"] == sharded["tokens"],
           "tokens_agree_until": _agree_until(single["tokens"], sharded["tokens"]),
           "max_abs_logit_diff": float((single["logits"] - sharded["logits"]).abs().max()),
           "repeat_identical_tokens": single["repeat_identical_tokens"] and sharded["repeat_identical_tokens"],
           "repeat_max_abs_logit_diff": max(single["repeat_max_abs_logit_diff"],
                                            sharded["repeat_max_abs_logit_diff"]),
           "same_kept_per_stage": single.get("kept_per_stage") == sharded.get("kept_per_stage"),
           "stages_on_their_layer_device": sharded.get("stage_devices") == sharded.get("layer_devices"),
           "stage_devices": sharded.get("stage_devices", {}),
           "host_reads_single": single["copies"].get("Memcpy DtoH", 0),
           "host_reads_sharded": sharded["copies"].get("Memcpy DtoH", 0),
           "peer_copies_sharded": sum(v for k, v in sharded["copies"].items() if k in ("Memcpy PtoP", "Memcpy DtoD"))}
    row["ok"] = bool((row["identical_tokens"] or not row["repeat_identical_tokens"])
                     and row["max_abs_logit_diff"] <= row["repeat_max_abs_logit_diff"]
                     and row["same_kept_per_stage"] and row["stages_on_their_layer_device"]
                     and row["host_reads_sharded"] <= row["host_reads_single"])
    return row


def run(shape_key: str, frames: int, presets: Sequence[str], devices: Sequence[str], new_tokens: int = 16,
        repeats: int = 5, seed: int = 0) -> dict:
    """Measure ``presets`` on one device, dispatch over ``devices``, measure again; the JSON record."""
    shape = get_shape(shape_key)
    first = torch.device(devices[0])
    dtype = torch.bfloat16 if first.type == "cuda" else torch.float32
    model = build(shape, first, dtype, seed=seed)
    temporal = frames if shape.family.startswith("llava") else (frames + 1) // 2
    scenes = SceneFeatures(model, shape.scene_frames, temporal, seed=seed)
    inputs = make_inputs(model, shape, frames, first, dtype, seed=seed)
    names = [UNPRUNED, *presets]
    single = {p: measure(model, inputs, p, new_tokens, repeats, _layer_devices(model)) for p in names}
    mapping = dispatch(model, devices)
    sharded = {p: measure(model, inputs, p, new_tokens, repeats, _layer_devices(model)) for p in names}
    scenes.remove()
    rows = [compare(single[p], sharded[p]) for p in names]
    efficiency = [{"preset": p, "ttft_single_ms": single[p]["ttft_ms"], "ttft_sharded_ms": sharded[p]["ttft_ms"],
                   "peak_gib_single": single[p]["peak_gib_per_device"],
                   "peak_gib_sharded": sharded[p]["peak_gib_per_device"]} for p in names]
    strip = lambda r: {k: v for k, v in r.items() if k != "logits"}  # noqa: E731
    return {"environment": environment(first), "model_shape": shape_key, "frames": frames,
            "sequence_length": int(inputs["input_ids"].shape[1]), "devices": list(devices),
            "device_map_layers": {k: v for k, v in mapping.items() if ".layers." in k},
            "correctness": rows, "efficiency": efficiency,
            "single": {p: strip(r) for p, r in single.items()}, "sharded": {p: strip(r) for p, r in sharded.items()},
            "ok": all(r["ok"] for r in rows)}


def markdown(result: dict) -> str:
    """The two tables of a `run` record."""
    env = result["environment"]
    lines = [f"## {result['model_shape']}, {result['frames']} frames ({result['sequence_length']} tokens) over "
             f"{' + '.join(result['devices'])}", "",
             f"{env.get('gpu') or env.get('device')}; torch {env.get('torch')}, transformers "
             f"{env.get('transformers')}; {env.get('date', '')}", "",
             "Logits: the first generated token's (the prefill); \"same device again\": each side run twice.", "",
             "| preset | identical tokens (agree until) | max abs logit diff | same device again: tokens, logit diff | "
             "same kept per stage | stage devices | stages on their layer's device | host reads (single / sharded) "
             "| peer copies |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["correctness"]:
        devices = ", ".join(f"L{k}: {v}" for k, v in r["stage_devices"].items()) or "-"
        lines.append(f"| {r['preset']} | {r['identical_tokens']} ({r['tokens_agree_until']}) | "
                     f"{r['max_abs_logit_diff']:.3g} | "
                     f"{r['repeat_identical_tokens']}, {r['repeat_max_abs_logit_diff']:.3g} | "
                     f"{r['same_kept_per_stage']} | {devices} | {r['stages_on_their_layer_device']} | "
                     f"{r['host_reads_single']} / {r['host_reads_sharded']} | {r['peer_copies_sharded']} |")
    lines += ["", "| preset | TTFT one device (ms) | TTFT sharded (ms) | peak GiB one device | peak GiB per device, "
              "sharded |", "|---|---|---|---|---|"]
    for e in result["efficiency"]:
        fmt = lambda xs: " / ".join(f"{x:.2f}" for x in xs) or "-"  # noqa: E731
        lines.append(f"| {e['preset']} | {e['ttft_single_ms']:.1f} | {e['ttft_sharded_ms']:.1f} | "
                     f"{fmt(e['peak_gib_single'][:1])} | {fmt(e['peak_gib_sharded'])} |")
    lines += ["", f"Verdict: {'PASS' if result['ok'] else 'FAIL'}"]
    return "\n".join(lines) + "\n"


def rejudge(result: dict) -> dict:
    """``result`` (a stored `run` record) with its verdicts recomputed by this version's `compare`."""
    rows = []
    for old in result["correctness"]:
        single, sharded = result["single"][old["preset"]], result["sharded"][old["preset"]]
        zeros = torch.zeros(1)
        rows.append(compare({**single, "logits": zeros}, {**sharded, "logits": zeros + old["max_abs_logit_diff"]}))
    return {**result, "correctness": rows, "ok": all(r["ok"] for r in rows)}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.multigpu.sharded``: run (or ``--rejudge``) the check, print and save it."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-shape", default="tiny")
    p.add_argument("--frames", type=int, default=None, help="default: the shape's")
    p.add_argument("--presets", default="hieravid-30,fastv")
    p.add_argument("--devices", default=None, help="comma-separated (default: every GPU, or cpu,cpu)")
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    p.add_argument("--rejudge", default=None, metavar="JSON",
                   help="recompute the verdicts of a stored sharded.json (no model is run) and write --out")
    args = p.parse_args(argv)
    if args.rejudge:
        result = rejudge(json.loads(Path(args.rejudge).read_text()))
        return _write(result, args.out)
    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    devices = args.devices.split(",") if args.devices else (gpus if len(gpus) > 1 else ["cpu", "cpu"])
    frames = args.frames or get_shape(args.model_shape).frames
    result = run(args.model_shape, frames, [x for x in args.presets.split(",") if x], devices,
                 args.new_tokens, args.repeats)
    return _write(result, args.out)


def _write(result: dict, out_dir: str | None) -> int:
    text = markdown(result)
    print(text)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sharded.json").write_text(json.dumps(result, indent=1))
        (out / "sharded.md").write_text(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
