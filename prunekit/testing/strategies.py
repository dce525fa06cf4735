"""Hypothesis strategies for prunekit inputs (layouts, features, budgets, depths, segmentations,
attentions) and the ``dev``/``ci`` profiles."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from prunekit.budget import Budget
from prunekit.types import Segments, VideoLayout

__all__ = ["register_profiles", "layouts", "features", "budgets", "depths", "segmentations", "attentions"]

# -- profiles -----------------------------------------------------------------------------------


def register_profiles() -> str:
    """Register the ``dev`` and ``ci`` Hypothesis profiles and load one; returns its name.

    ``ci`` (>= 200 examples, no deadline, derandomized) is loaded when ``CI=true``; otherwise
    ``dev`` (30 examples). ``PRUNEKIT_HYPOTHESIS_PROFILE`` overrides the choice.
    """
    common: dict[str, Any] = {
        "deadline": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    }
    settings.register_profile("dev", max_examples=30, **common)
    settings.register_profile("ci", max_examples=200, derandomize=True, print_blob=True, **common)
    name = os.environ.get("PRUNEKIT_HYPOTHESIS_PROFILE") or (
        "ci" if os.environ.get("CI", "").lower() == "true" else "dev")
    settings.load_profile(name)
    return name


# -- strategies ---------------------------------------------------------------------------------


@st.composite
def layouts(draw: st.DrawFn, max_frames: int = 64, max_tokens_per_frame: int = 256,
            max_tokens: int | None = None) -> VideoLayout:
    """Contiguous `VideoLayout`s: 1..``max_frames`` frames of an ``(h, w)`` grid (1..256 tokens),
    text before and after, and an optional trailing layout token (LLaVA-OV's newline).

    ``max_tokens`` caps ``F * P`` to keep examples fast.
    """
    frames = draw(st.integers(1, max_frames))
    cap = max_tokens_per_frame
    if max_tokens is not None:
        cap = max(1, min(cap, max_tokens // frames))
    h = draw(st.integers(1, cap))
    w = draw(st.integers(1, max(1, cap // h)))
    prefix = draw(st.integers(0, 16))
    trailing = draw(st.integers(0, 1))
    suffix = draw(st.integers(0, 16))
    seq_len = prefix + frames * h * w + trailing + suffix
    return VideoLayout.contiguous(prefix, frames, (h, w), seq_len, trailing_layout_tokens=trailing)


_EDITS = ("duplicate_token", "zero_token", "constant_frame", "identical_frame", "zero_frame")


@st.composite
def features(draw: st.DrawFn, layout: VideoLayout, dim: int | None = None,
             max_dim: int = 8) -> torch.Tensor:
    """``[F, P, D]`` float32 features for ``layout``, with the degenerate cases stages must survive:
    duplicated tokens, all-zero tokens and frames, constant frames and identical consecutive frames.

    Bulk values come from a drawn seed (fast); the structure (kind, edits) shrinks normally.
    """
    num_frames, per_frame = layout.num_frames, layout.tokens_per_frame
    d = dim if dim is not None else draw(st.integers(1, max_dim))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["video", "gaussian", "low_rank", "positive"]))
    noise = torch.randn(num_frames, per_frame, d, generator=gen)
    if kind == "video":  # a random walk over time with occasional scene cuts
        step = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
        cuts = torch.rand(num_frames, generator=gen) < draw(st.sampled_from([0.0, 0.1, 0.5]))
        x = noise.clone()
        for f in range(1, num_frames):
            if not cuts[f]:
                x[f] = x[f - 1] + step * noise[f]
    elif kind == "low_rank":
        rank = draw(st.integers(1, 2))
        basis = torch.randn(rank, d, generator=gen)
        x = noise[..., :rank] @ basis if d >= rank else noise
    elif kind == "positive":
        x = noise.abs() + 0.1
    else:
        x = noise
    x = x * draw(st.sampled_from([1.0, 1e-3, 1e3]))
    zero_share = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0]))
    if zero_share:
        x[torch.rand(num_frames, per_frame, generator=gen) < zero_share] = 0.0
    for _ in range(draw(st.integers(0, 4))):
        edit = draw(st.sampled_from(_EDITS))
        f = draw(st.integers(0, num_frames - 1))
        p = draw(st.integers(0, per_frame - 1))
        if edit == "duplicate_token":
            x[draw(st.integers(0, num_frames - 1)), draw(st.integers(0, per_frame - 1))] = x[f, p].clone()
        elif edit == "zero_token":
            x[f, p] = 0.0
        elif edit == "constant_frame":
            x[f] = x[f, p].clone()
        elif edit == "identical_frame" and f > 0:
            x[f] = x[f - 1].clone()
        elif edit == "zero_frame":
            x[f] = 0.0
    return x.contiguous()


def budgets(modes: Sequence[str] = ("input", "layer_average")) -> st.SearchStrategy[Budget]:
    """`Budget`s with ``retain`` in (0, 1] in each of ``modes``: mostly realistic values (>= 0.02),
    plus any float in (0, 1] and edge values (1.0, tiny ones that no schedule can meet)."""
    realistic = st.floats(min_value=0.02, max_value=1.0)
    retain = st.one_of(
        realistic,
        realistic,
        st.floats(min_value=0.0, max_value=1.0, exclude_min=True, allow_nan=False),
        st.sampled_from([1.0, 0.5, 0.3, 0.2, 0.1, 0.01, 1e-9]),
    )
    return st.builds(Budget, retain, st.sampled_from(list(modes)))


def depths(max_layers: int = 48) -> st.SearchStrategy[int]:
    """Decoder depths: mostly 4..``max_layers`` (28 = Qwen2-7B often), sometimes 1..3 (too shallow
    for multi-stage schedules)."""
    deep = st.integers(4, max_layers)
    # Hypothesis favours the first and last branches; keep the shallow one in the middle
    return st.one_of(st.just(28), deep, deep, st.integers(1, 3), deep, deep, deep)


@st.composite
def segmentations(draw: st.DrawFn, num_frames: int) -> Segments:
    """Valid `Segments` of ``num_frames`` frames (any number of contiguous segments)."""
    if num_frames == 1:
        return Segments.single(1)
    starts = draw(st.sets(st.integers(1, num_frames - 1), max_size=num_frames - 1))
    return Segments((0, *sorted(starts)), num_frames)


@st.composite
def attentions(draw: st.DrawFn, n: int) -> torch.Tensor:
    """``[n]`` non-negative attention scores: random, constant, sparse or with one spike."""
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["random", "constant", "sparse", "spike"]))
    if kind == "constant":
        return torch.full((n,), draw(st.sampled_from([0.0, 1e-4, 1.0])))
    a = torch.rand(n, generator=gen)
    if kind == "sparse":
        a = torch.where(torch.rand(n, generator=gen) < 0.8, torch.zeros_like(a), a)
    elif kind == "spike":
        a = a * 1e-3
        a[draw(st.integers(0, n - 1))] = 1.0
    return a
