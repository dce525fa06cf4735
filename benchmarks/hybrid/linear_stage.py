"""Which layer should score a pruning stage scheduled at a Qwen3.5 linear-attention layer?

    python -m benchmarks.hybrid.linear_stage [--seeds 12] [--layer 5] [--keep 0.3]

A tiny random Qwen3.5 (8 layers, full attention at 3 and 7) prunes the visual tokens to ``--keep`` at the
linear layer ``--layer`` with last-query relevance scored by the projections of (a) the next full-attention
layer, (b) the previous one, and, as a floor, (c) uniform selection. Two measures per video:

* fidelity: relative L2 error of the last-token logits against the unpruned model, and top-1 agreement
  over 4 greedy tokens;
* recall: the share of the visual tokens the *next* full-attention layer attends to most in the unpruned
  run (its top-``keep`` last-query attention) that the stage kept.

Random weights make this a check of the mechanics and of which scores track the model's own attention,
not an accuracy claim.
"""

from __future__ import annotations

import argparse

import torch

import prunekit
from prunekit import PipelineConfig
from prunekit.adapters.random_models import build_model, video_inputs
from prunekit.model_adapter import find_adapter

OPTIONS = {"next_full": ("top_relevance", "next_full"), "previous_full": ("top_relevance", "previous_full"),
           "uniform (floor)": ("uniform", "next_full")}


def _config(selector: str, layer: int, keep: float) -> PipelineConfig:
    return PipelineConfig.parse({"name": f"study-{selector}", "segmenter": "single", "selector": selector,
                                 "scheduler": {"name": "fixed", "layers": [layer], "keep_fractions": [keep]}})


def _run(model, inputs: dict, steps: int = 4) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=steps, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
    return out.sequences[0, -steps:], out.logits[0][0]


def _attended(model, inputs: dict, layer: int, count: int) -> set[int]:  # noqa: ANN001
    """Original indices of the ``count`` visual tokens the first full-attention layer after ``layer`` attends
    to most (last query, unpruned run)."""
    adapter = find_adapter(model)
    target = min(i for i in adapter.attention_layers if i >= layer)
    seen: dict = {}
    hook = adapter.layers[target].register_forward_pre_hook(
        lambda m, a, k: seen.update(hidden=a[0] if a else k["hidden_states"], pe=k["position_embeddings"]),
        with_kwargs=True)
    with torch.no_grad():
        model(**inputs)
    hook.remove()
    scores = adapter.last_query_attention(target, seen["hidden"], *seen["pe"])[0]
    visual = torch.nonzero(inputs["input_ids"][0] == model.config.video_token_id).flatten()
    return set(visual[scores[visual].topk(count).indices].tolist())


def study(seeds: int, layer: int, keep: float) -> dict[str, tuple[float, float, float]]:
    """Mean logit relative error, top-1 agreement and next-attention-layer recall per option."""
    model = build_model("qwen3_5", seed=0)
    totals = {name: [0.0, 0.0, 0.0] for name in OPTIONS}
    for seed in range(seeds):
        inputs = video_inputs(model, num_frames=16, seed=seed).kwargs
        ref_tokens, ref_logits = _run(model, inputs)
        n_visual = int((inputs["input_ids"] == model.config.video_token_id).sum())
        attended = _attended(model, inputs, layer, round(keep * n_visual))
        for name, (selector, relevance) in OPTIONS.items():
            with prunekit.apply(model, _config(selector, layer, keep),
                                adapter_options={"linear_stage_relevance": relevance}) as handle:
                tokens, logits = _run(model, inputs)
                kept = set(handle.kept_indices()[0][layer].tolist())
            totals[name][0] += float((logits - ref_logits).norm() / ref_logits.norm())
            totals[name][1] += float((tokens == ref_tokens).float().mean())
            totals[name][2] += len(attended & kept) / len(attended)
    return {name: tuple(v / seeds for v in values) for name, values in totals.items()}


def main() -> None:
    """Print the study's table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--layer", type=int, default=5)
    parser.add_argument("--keep", type=float, default=0.3)
    args = parser.parse_args()
    results = study(args.seeds, args.layer, args.keep)
    print(f"| scoring at linear layer {args.layer}, keep {args.keep:.0%} | logit rel. error | top-1 agreement "
          "| recall of next attention layer's top tokens |")
    print("|---|---|---|---|")
    for name, (error, agree, recall) in results.items():
        print(f"| {name} | {error:.4f} | {agree:.3f} | {recall:.3f} |")


if __name__ == "__main__":
    main()
