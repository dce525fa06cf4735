"""Model shapes the efficiency benchmark knows, and how to build them with random weights."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class ModelShape:
    """A benchmark model: prunekit.adapters.random_models family and size, plus default video settings.

    ``scene_frames`` is the default length (in frames) of the synthetic scenes the video features are
    made of (see `benchmarks.efficiency.scenes`); ``text_tokens`` the prompt length around the video.
    """

    key: str
    family: str
    size: str
    frames: int
    scene_frames: int
    text_tokens: tuple[int, int] = (20, 100)
    build_options: dict = field(default_factory=dict)
    input_options: dict = field(default_factory=dict)
    description: str = ""


SHAPES: dict[str, ModelShape] = {
    s.key: s
    for s in (
        ModelShape("llava-ov-7b", "llava_onevision", "7b", 32, 4,
                   description="LLaVA-OneVision-7B: SigLIP-so400m + Qwen2-7B, 196 tokens/frame + 1 newline"),
        ModelShape("llava-video-7b", "llava_video", "7b", 64, 8, build_options={"spatial_pool_mode": "average"},
                   description="LLaVA-Video-7B-Qwen2 (grid layout, average pooling): 13x(13+1) = 182 tokens/frame"),
        ModelShape("qwen2-vl-7b", "qwen2_vl", "7b", 32, 4, input_options={"height": 392, "width": 392},
                   description="Qwen2-VL-7B at 392x392: 196 tokens per temporal patch of 2 frames"),
        ModelShape("qwen3-vl-8b", "qwen3_vl", "8b", 32, 4, input_options={"height": 448, "width": 448},
                   description="Qwen3-VL-8B at 448x448: 196 tokens per temporal patch of 2 frames, each patch its "
                               "own timestamped block; DeepStack levels after LLM layers 0-2"),
        ModelShape("qwen3.5-9b", "qwen3_5", "9b", 32, 4, input_options={"height": 448, "width": 448},
                   description="Qwen3.5-9B (hybrid: full attention every 4th layer, Gated DeltaNet elsewhere) at "
                               "448x448: 196 tokens per temporal patch"),
        ModelShape("tiny", "llava_onevision", "tiny", 8, 2, text_tokens=(3, 5),
                   description="tiny LLaVA-OneVision (random weights, CPU smoke shape)"),
        ModelShape("tiny-llava-video", "llava_video", "tiny", 8, 2, text_tokens=(3, 5),
                   description="tiny LLaVA-Video grid layout (CPU smoke shape)"),
        ModelShape("tiny-qwen2-vl", "qwen2_vl", "tiny", 8, 2, text_tokens=(3, 5),
                   description="tiny Qwen2-VL (CPU smoke shape)"),
        ModelShape("tiny-qwen3-vl", "qwen3_vl", "tiny", 8, 2, text_tokens=(3, 5),
                   description="tiny Qwen3-VL with DeepStack (CPU smoke shape)"),
        ModelShape("tiny-qwen3.5", "qwen3_5", "tiny", 8, 2, text_tokens=(3, 5),
                   description="tiny Qwen3.5, hybrid attention (CPU smoke shape)"),
    )
}


def get_shape(key: str) -> ModelShape:
    """The `ModelShape` called ``key`` (error lists the known ones)."""
    try:
        return SHAPES[key]
    except KeyError:
        raise ValueError(f"unknown model shape {key!r}; choose from {', '.join(SHAPES)}.") from None


def build(shape: ModelShape, device: torch.device, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    """Build ``shape`` with random weights directly on ``device`` in ``dtype`` (no CPU detour for 7B)."""
    from prunekit.adapters.random_models import build_model

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = build_model(shape.family, shape.size, attn="sdpa", seed=seed, **shape.build_options)
    finally:
        torch.set_default_dtype(previous)
    return model.to(device=device, dtype=dtype).eval()


def make_inputs(model: nn.Module, shape: ModelShape, frames: int, device: torch.device, dtype: torch.dtype,
                batch: int = 1, seed: int = 0) -> dict:
    """Processor-free inputs (random text around the video placeholders), moved to ``device``."""
    from prunekit.adapters.random_models import batch_inputs, video_inputs

    before, after = shape.text_tokens
    samples = [video_inputs(model, frames, prompt_before=before, prompt_after=after, seed=seed + i, dtype=dtype,
                            **shape.input_options) for i in range(batch)]
    kwargs = samples[0].kwargs if batch == 1 else batch_inputs(samples)
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device)
            if value.is_floating_point():
                value = value.to(dtype)
        out[key] = value
    return out
