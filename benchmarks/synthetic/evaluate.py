"""Score a video LLM on synthetic-suite items: accuracy per question type.

Multiple choice is scored by the logits of the options' words at the answer position (every option of
the suite is one token, so this is the options' log-likelihood; one forward pass, which runs through
any hooks ``prunekit.apply`` installed); open-ended questions by greedy ``generate`` and exact match
of the first word. ``keep=`` drops visual tokens by hand before the
language model (original positions kept), for checks that do not use the prunekit runtime.

    python -m benchmarks.synthetic.evaluate [--split test] [--model-dir DIR] [--drop random --retain 0.1]
    python -m benchmarks.synthetic.evaluate --preset hieravid-10          # through prunekit.apply
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from prunekit import video
from prunekit.tiny import OPTION_LETTERS, build_prompt

from .generator import NUM_FRAMES, QUESTION_TYPES, Item

# keep(features [N, D] of the visual tokens without the trailing newline, rng) -> indices to keep
KeepFn = Callable[[torch.Tensor, np.random.Generator], Sequence[int]]


@dataclass
class EvalResult:
    accuracy: dict[str, float]  # per question type, plus "overall"
    n: dict[str, int]
    predictions: list[dict] = field(default_factory=list)

    def table(self) -> str:
        rows = [f"| {k} | {self.n[k]} | {100 * v:.1f} |" for k, v in self.accuracy.items()]
        return "\n".join(["| type | items | accuracy % |", "|---|---|---|", *rows])


def evaluate(model, processor, items: Sequence[Item], *, frames: Callable[[Item], np.ndarray] | None = None,
             keep: KeepFn | None = None, seed: int = 0, progress: bool = False) -> EvalResult:
    """Accuracy of ``model`` on ``items`` (per type and overall) and one prediction record per item.

    ``frames(item)`` gives the clip (default: decode ``item.video`` with ``prunekit.video.load``).
    Each multiple-choice record holds ``option_logprobs`` (log-softmax over the options' words, in option
    order), the answer distribution that fidelity measures (agreement, KL) compare.
    """
    frames = frames or (lambda it: video.load(it.video, NUM_FRAMES))
    tok = processor.tokenizer
    device = next(model.parameters()).device
    rng = np.random.default_rng(seed)
    preds = []
    iterator = items
    if progress:
        from tqdm import tqdm

        iterator = tqdm(items, desc="synthetic eval", unit="item")
    for item in iterator:
        inputs = processor(text=build_prompt(item.question, item.options), videos=frames(item),
                           return_tensors="pt").to(device)
        record = {"id": item.id, "type": item.type, "answer": item.answer}
        with torch.no_grad():
            if item.options is not None:
                logits = _last_logits(model, inputs, keep, rng)
                scores = torch.log_softmax(logits[option_ids(tok, item.options)].float(), -1)
                record["prediction"] = OPTION_LETTERS[int(scores.argmax())]
                record["option_logprobs"] = [round(float(s), 5) for s in scores]
            else:
                record["prediction"] = _open_answer(model, tok, inputs, keep, rng)
        record["correct"] = record["prediction"].lower() == item.answer.lower()
        preds.append(record)
    return _summarise(preds)


def option_ids(tok, options: Sequence[str]) -> list[int]:
    """The token id of each option's word (the suite's options are single known words)."""
    ids = [tok(o, add_special_tokens=False)["input_ids"] for o in options]
    if any(len(i) != 1 or i[0] == tok.unk_token_id for i in ids):
        raise ValueError(f"every option must be one known token for word scoring, got {options} -> {ids}")
    return [i[0] for i in ids]


def _summarise(preds: list[dict]) -> EvalResult:
    by_type = defaultdict(list)
    for p in preds:
        by_type[p["type"]].append(p["correct"])
    order = [t for t in QUESTION_TYPES if t in by_type] + sorted(set(by_type) - set(QUESTION_TYPES))
    acc = {t: float(np.mean(by_type[t])) for t in order}
    n = {t: len(by_type[t]) for t in order}
    acc["overall"] = float(np.mean([p["correct"] for p in preds])) if preds else float("nan")
    n["overall"] = len(preds)
    return EvalResult(acc, n, preds)


def _last_logits(model, inputs, keep: KeepFn | None, rng) -> torch.Tensor:
    if keep is None:
        return model(**inputs, logits_to_keep=1).logits[0, -1]
    embeds, positions = _dropped_embeds(model, inputs, keep, rng)
    out = model.model.language_model(inputs_embeds=embeds, position_ids=positions,
                                      attention_mask=torch.ones(positions.shape, dtype=torch.long,
                                                                device=positions.device))
    return model.lm_head(out.last_hidden_state[0, -1])


def _open_answer(model, tok, inputs, keep: KeepFn | None, rng) -> str:
    if keep is None:
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
        text = tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    else:  # answers are one word: the greedy first token is the answer
        text = tok.decode([int(_last_logits(model, inputs, keep, rng).argmax())], skip_special_tokens=True)
    words = text.strip().split()
    return words[0].strip(".").lower() if words else ""


def _dropped_embeds(model, inputs, keep: KeepFn, rng) -> tuple[torch.Tensor, torch.Tensor]:
    """Input embeddings with only the kept visual tokens (+ the newline), and their original positions."""
    cfg = model.config
    ids = inputs["input_ids"]
    feats = model.model.get_video_features(pixel_values_videos=inputs["pixel_values_videos"],
                                           vision_feature_layer=cfg.vision_feature_layer,
                                           vision_feature_select_strategy=cfg.vision_feature_select_strategy
                                           ).pooler_output[0]  # [N + 1, D]
    embeds = model.get_input_embeddings()(ids)
    is_video = ids[0] == cfg.video_token_id
    embeds[0, is_video] = feats.to(embeds.dtype)
    video_pos = torch.nonzero(is_video).flatten()
    kept = torch.as_tensor(sorted(set(int(i) for i in keep(feats[:-1], rng))), dtype=torch.long)
    kept = torch.cat([kept, torch.tensor([len(feats) - 1])])  # the newline is a layout token: kept
    keep_mask = ~is_video.cpu()
    keep_mask[video_pos.cpu()[kept]] = True
    positions = torch.nonzero(keep_mask).flatten().to(ids.device)
    return embeds[:, positions], positions[None]


# ---------------------------------------------------------------------------- naive manual drops


def random_keep(retain: float) -> KeepFn:
    """Keep a uniformly random ``retain`` share of the visual tokens (newline kept on top)."""
    def keep(feats, rng):
        n = len(feats)
        return rng.choice(n, max(1, round(retain * (n + 1)) - 1), replace=False)
    return keep


def uniform_keep(retain: float) -> KeepFn:
    """Keep evenly spaced visual tokens (a fixed spatio-temporal lattice, blind to content)."""
    def keep(feats, rng):
        n = len(feats)
        k = max(1, round(retain * (n + 1)) - 1)
        return np.unique(np.linspace(0, n - 1, k).round().astype(int))
    return keep


def novelty_keep(retain: float, tokens_per_frame: int = 16) -> KeepFn:
    """Keep the tokens that change most from the same position in the previous frame (content-aware)."""
    def keep(feats, rng):
        n = len(feats)
        k = max(1, round(retain * (n + 1)) - 1)
        f = feats.float().reshape(-1, tokens_per_frame, feats.shape[-1])  # [F, P, D]
        prev = torch.cat([f[:1] * 0 + f.mean((0, 1)), f[:-1]])  # frame 0 compared with the clip mean
        score = (f - prev).norm(dim=-1).flatten()
        return torch.topk(score, k).indices.tolist()
    return keep


DROPS = {"random": random_keep, "uniform": uniform_keep, "novelty": novelty_keep}


def main(argv=None) -> None:
    from prunekit.tiny import load_tiny

    from .suite import ensure_split

    p = argparse.ArgumentParser(description="Evaluate the tiny video LLM on the synthetic suite.")
    p.add_argument("--split", default="test", choices=["val", "test", "fresh"])
    p.add_argument("--n", type=int, default=None, help="number of items (default: the whole split)")
    p.add_argument("--model-dir", default=None)
    p.add_argument("--drop", choices=sorted(DROPS), default=None, help="manual pre-LLM token drop")
    p.add_argument("--retain", type=float, default=0.1)
    p.add_argument("--preset", default=None, help="prune with this prunekit preset (prunekit.apply)")
    p.add_argument("--budget", type=float, default=None, help="the preset's layer-averaged budget (default: its own)")
    p.add_argument("--json", default=None, help="write the result here")
    args = p.parse_args(argv)
    if args.preset and args.drop:
        p.error("--preset and --drop are alternatives: pick one")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, processor = load_tiny(model_dir=args.model_dir)
    items = ensure_split(args.split, args.n)
    keep = DROPS[args.drop](args.retain) if args.drop else None
    with contextlib.ExitStack() as stack:
        if args.preset:
            import prunekit

            stack.enter_context(prunekit.apply(model, args.preset, budget=args.budget))
        res = evaluate(model, processor, items, keep=keep, progress=True)
    print(res.table())
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"accuracy": res.accuracy, "n": res.n, "predictions": res.predictions}, f, indent=1)


if __name__ == "__main__":
    main()
