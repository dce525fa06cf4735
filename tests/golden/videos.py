"""The fixed, seeded inputs of the golden fixtures: small videos of token features and attention.

Both the fixtures' generator (run once, outside the project, against each method's reference code)
and `tests/test_golden.py` build the inputs from these functions, so a fixture stores only keep
indices. Everything is drawn from ``torch.Generator().manual_seed`` on the CPU in float64 and cast to
float32, which is reproducible across torch versions.
"""

from __future__ import annotations

import torch

FRAMES, GRID, DIM = 8, (4, 4), 32
PER_FRAME = GRID[0] * GRID[1]
RATIOS = (0.3, 0.2, 0.1)
RANDOM_SEEDS = (11, 12, 13, 14)  # random videos with 1, 2, 3 and 4 scenes


def _noise(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def _scenes(gen: torch.Generator, cuts: list[int], drift: float) -> torch.Tensor:
    """Frames ``[F, P, D]``: one random base frame per scene (``cuts`` = first frame of scenes 2..),
    plus independent noise of scale ``drift`` on every frame."""
    bounds = [0, *cuts, FRAMES]
    frames = []
    for start, end in zip(bounds, bounds[1:]):
        base = _noise(gen, PER_FRAME, DIM)
        frames += [base + drift * _noise(gen, PER_FRAME, DIM) for _ in range(end - start)]
    return torch.stack(frames)


def video(name: str) -> torch.Tensor:
    """Token features ``[F, P, D]`` (float32) of the named video (see `VIDEOS`)."""
    gen = torch.Generator().manual_seed(sum(map(ord, name)))
    if name == "static":
        feats = _scenes(gen, [], 0.05)
    elif name == "exact_copy":
        feats = _noise(gen, PER_FRAME, DIM).expand(FRAMES, PER_FRAME, DIM).clone()
    elif name == "hard_cut":
        feats = _scenes(gen, [FRAMES // 2], 0.05)
    elif name == "duplicated_frame":
        feats = _scenes(gen, list(range(1, FRAMES)), 0.0)
        feats[5] = feats[4]
    elif name.startswith("random"):
        seed = RANDOM_SEEDS[int(name[len("random"):]) - 1]
        gen = torch.Generator().manual_seed(seed)
        scenes = int(name[len("random"):])
        cuts = sorted(torch.randperm(FRAMES - 1, generator=gen)[: scenes - 1].add(1).tolist())
        feats = _scenes(gen, cuts, 0.3 + 0.4 * torch.rand(1, generator=gen, dtype=torch.float64).item())
    else:
        raise KeyError(name)
    return feats.float()


def attention(name: str) -> torch.Tensor:
    """Positive last-query attention over the video's ``F * P`` tokens (float32, sums to 1)."""
    gen = torch.Generator().manual_seed(1000 + sum(map(ord, name)))
    logits = 2.0 * _noise(gen, FRAMES * PER_FRAME)
    return torch.softmax(logits, 0).float()


def keep_count(ratio: float, n: int = FRAMES * PER_FRAME) -> int:
    """Tokens kept at ``ratio``: prunekit's input rounding (``int(round(r * n))``)."""
    return int(round(ratio * n))


VIDEOS = ("static", "exact_copy", "hard_cut", "duplicated_frame", "random1", "random2", "random3", "random4")
