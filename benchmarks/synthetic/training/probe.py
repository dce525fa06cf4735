"""Linear probes: is an object's shape in the visual tokens, and in the answer position's state?

    python -m benchmarks.synthetic.training.probe [--model-dir DIR] [--types needle_shape,scene_object] [--items 600]

For each question type, a linear classifier (70/30 split, standardised features) predicts
(1) the object shape of every visual token that shows an object, from the visual features the language
model receives, and (2) the answer's shape, from the language model's last hidden state at the answer
position. High (1) with chance-level (2) means the language model does not route shape to the answer.
Clips are generated in memory from the val split (no mp4 round trip).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ..generator import SHAPES, make_item
from . import train as T


def _batch(tok, qtype: str, indices: range) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray]:
    frames, prompts, answers, token_shapes = [], [], [], []
    for i in indices:
        item, clip = make_item("val", i, qtype)
        frames.append(clip.frames)
        prompts.append(T.encode(tok, item.prompt))
        answers.append(SHAPES.index(item.answer_text))
        token_shapes.append(clip.obj_shape.reshape(-1))  # 0 = no object, 1 + shape index
    ids = torch.full((len(prompts), max(map(len, prompts)) + 2), tok.pad_token_id)
    for j, p in enumerate(prompts):
        ids[j, : len(p)] = torch.tensor(p)
    batch = {"frames": torch.from_numpy(np.stack(frames)), "ids": ids,
             "n_prompt": torch.tensor([len(p) for p in prompts])}
    return batch, np.array(answers), np.stack(token_shapes)


def features(model, processor, tok, qtype: str, items: int, batch: int = 100):
    """Object-token features and shapes, answer-position states and answer shapes, over ``items`` clips."""
    tok_x, tok_y, state_x, state_y = [], [], [], []
    for start in range(0, items, batch):
        b, answers, token_shapes = _batch(tok, qtype, range(start, min(items, start + batch)))
        with torch.no_grad():
            last, feats = T.forward(model, processor, b)
        feats = feats[:, :-1].float().numpy()  # [B, 256, D], newline dropped
        for j in range(len(answers)):
            on = token_shapes[j] > 0
            tok_x.append(feats[j][on])
            tok_y.append(token_shapes[j][on] - 1)
        state_x.append(last[:, 0].float().numpy())
        state_y.append(answers)
    return np.concatenate(tok_x), np.concatenate(tok_y), np.concatenate(state_x), np.concatenate(state_y)


def probe_accuracy(x: np.ndarray, y: np.ndarray, steps: int = 500, seed: int = 0) -> float:
    """Held-out accuracy of a linear softmax classifier (first 70% train, rest test)."""
    torch.manual_seed(seed)
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    cut = int(0.7 * len(y))
    head = torch.nn.Linear(x.shape[1], len(SHAPES))
    opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(x[:cut]), y[:cut]).backward()
        opt.step()
    with torch.no_grad():
        return float((head(x[cut:]).argmax(1) == y[cut:]).float().mean())


def main(argv=None) -> None:
    from prunekit.tiny import load_tiny

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", default=None)
    p.add_argument("--types", default="needle_shape,scene_object")
    p.add_argument("--items", type=int, default=600)
    args = p.parse_args(argv)
    model, processor = load_tiny(model_dir=args.model_dir)
    model.eval()
    tok = T.build_tokenizer()
    for qtype in args.types.split(","):
        tx, ty, sx, sy = features(model, processor, tok, qtype, args.items)
        print(f"{qtype}: shape from object tokens {probe_accuracy(tx, ty):.2f} ({len(ty)} tokens); "
              f"answer shape from the answer state {probe_accuracy(sx, sy):.2f} ({len(sy)} items); chance 0.25")


if __name__ == "__main__":
    main()
