"""Does the answer position look at the object the question is about? Attention mass per layer and head.

    python -m benchmarks.synthetic.attention [--model-dir DIR] [--types motion_direction,scene_object] [--items 40]

For each question type whose clip has one *target* object (the named object of ``motion_direction``; the
object of the named scene for the ``scene_object`` family), the last prompt token's attention over the
visual tokens is split into the mass on the target object's tokens and the mass on the other objects'
tokens, averaged over ``--items`` clips (eager attention, clips generated in memory). A head that
retrieves the target puts far more mass on it than on the other objects; if no head does, the model
answers without finding the object. Training-only types are drawn from the train split, the others
from val.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from .generator import QUESTION_TYPES, make_item, target_color, target_tokens

__all__ = ["attention_masses", "report", "target_color"]


def attention_masses(model, processor, qtype: str, items: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean attention mass ``[layers, heads]`` of the last prompt token on the target and on the other objects."""
    split = "val" if qtype in QUESTION_TYPES else "train"
    video_id = model.config.video_token_id
    target_mass, other_mass = [], []
    for i in range(items):
        item, clip = make_item(split, i, qtype)
        inputs = processor(text=item.prompt, videos=[clip.frames], return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs, output_attentions=True)
        visual = (inputs["input_ids"][0] == video_id).nonzero().flatten()[:-1]  # the last one is the newline
        target = torch.as_tensor(target_tokens(item, clip).reshape(-1))
        other = torch.as_tensor(clip.obj_color.reshape(-1) > 0) & ~target
        weights = torch.stack([a[0, :, -1, visual] for a in out.attentions])  # [layers, heads, tokens]
        target_mass.append(weights[..., target].sum(-1))
        other_mass.append(weights[..., other].sum(-1))
    return torch.stack(target_mass).mean(0).numpy(), torch.stack(other_mass).mean(0).numpy()


def report(qtype: str, target: np.ndarray, other: np.ndarray) -> str:
    """One line per layer: the head that favours the target most, and its two masses."""
    lines = [f"{qtype}: attention mass of the answer position, target object vs other objects"]
    for layer, (t, o) in enumerate(zip(target, other)):
        head = int(np.argmax(t - o))
        lines.append(f"  layer {layer}: best head {head}: target {t[head]:.2f}, others {o[head]:.2f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    """``python -m benchmarks.synthetic.attention``: print the attention report of each ``--types``."""
    from transformers import AutoProcessor, LlavaOnevisionForConditionalGeneration

    from prunekit.tiny import TINY_MODEL_DIR

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", default=str(TINY_MODEL_DIR))
    p.add_argument("--types", default="motion_direction,scene_object,object_background")
    p.add_argument("--items", type=int, default=40)
    args = p.parse_args(argv)
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(args.model_dir, attn_implementation="eager").eval()
    processor = AutoProcessor.from_pretrained(args.model_dir)
    for qtype in args.types.split(","):
        print(report(qtype, *attention_masses(model, processor, qtype.strip(), args.items)))


if __name__ == "__main__":
    main()
