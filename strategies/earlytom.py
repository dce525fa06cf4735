"""EarlyTom-style encoder level: frames fold inside the vision tower before the LLM sees them.

Wang et al., EarlyTom (CVPR 2026). `EarlyFrameMerger` folds near-identical frames at an early
vision-tower layer; the presets ``earlytom-30/10`` use it alone (`prunekit.strategies.compositions`
composes it with HieraVid's frame and layer levels).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from pydantic import Field

from prunekit.config import PipelineConfig
from prunekit.interfaces import EncoderStage, EncoderStageConfig
from prunekit.strategies.registration import register_preset, register_stage
from prunekit.types import MergeMap

EARLYTOM_CITATION = (
    "Wang et al., EarlyTom: Early Token Compression Completes Fast Video Understanding, CVPR 2026, "
    "arXiv 2605.30010.")

ENCODER_LAYER = 2
"""Vision-tower layer whose input the presets reduce: early, so most of the tower runs on fewer frames."""
SIGLIP_DEPTH = 26
"""Layers of LLaVA-OneVision-7B's SigLIP tower: the presets' layer scales to other towers' depth."""
EARLYTOM_KEEP_FRAMES = {30: 0.5, 10: 0.3}
"""Fraction of the frames that continue past the encoder layer, per nominal budget."""


def earlytom(nominal: int) -> PipelineConfig:
    """EarlyTom-like: fold near-identical frames early in the vision tower, then a max-min diverse selection of
    the LLM-input tokens down to exactly ``nominal`` percent of the video's tokens (input retention)."""
    keep_frames = EARLYTOM_KEEP_FRAMES[nominal]
    return PipelineConfig.parse({
        "name": f"earlytom-{nominal}",
        "description": (
            f"EarlyTom-like {nominal}%: frames most similar to the kept frame before them fold into it at "
            f"vision-tower layer {ENCODER_LAYER} of {SIGLIP_DEPTH} (scaled to the tower's depth) until "
            f"{keep_frames:.0%} of the frames remain (or what the budget needs), then a max-min diverse "
            "selection before the LLM keeps exactly the budget (input retention; the encoder's cut counts in it)."),
        "citation": EARLYTOM_CITATION,
        "encoder": {"name": "early_frame_merge", "layer": ENCODER_LAYER, "reference_depth": SIGLIP_DEPTH,
                    "keep_frames": keep_frames},
        "selector": {"name": "max_min_diversity"},
        "scheduler": {"name": "fixed", "layers": [0], "keep_fractions": [nominal / 100]},
        "budget": {"retain": nominal / 100, "mode": "input"},
    })


def declare_nominal(build: Callable[[int], PipelineConfig], nominal: int) -> None:
    """Declare preset ``<build's name>-<nominal>`` (underscores as dashes) from ``build(nominal)``."""
    def factory() -> PipelineConfig:
        return build(nominal)

    factory.__doc__ = (build.__doc__ or "").replace("``nominal`` percent", f"{nominal}%").split("\n")[0]
    register_preset(f"{build.__name__.replace('_', '-')}-{nominal}", factory)


for _nominal in (30, 10):
    declare_nominal(earlytom, _nominal)


@register_stage
class EarlyFrameMerger(EncoderStage):
    """Folds near-identical frames into the kept frame before them at an early vision-tower layer.

    Frame similarity is the mean cosine similarity of same-position tokens. Greedily, the frame most
    similar to its nearest kept predecessor is folded into it (its hidden states averaged in) until
    ``keep_frames`` of the frames (at least what the budget needs) remain; with ``threshold``, only
    frames at least that similar fold, so a video without redundancy keeps more frames. The first
    frame always stays. Differences from EarlyTom: plain means instead of similarity-weighted ones,
    one greedy pass instead of EMA-smoothed streaming segments, and its spatial selection is the
    pipeline's layer-0 selector.
    """

    class Config(EncoderStageConfig):
        name: Literal["early_frame_merge"] = "early_frame_merge"
        keep_frames: float = Field(0.5, gt=0, le=1, description="fraction of the frames that continue "
                                                                "(raised to what the budget needs)")
        threshold: float | None = Field(None, ge=-1, le=1, description="fold only frames at least this "
                                                                       "similar to their kept predecessor")

    def reduce(self, hidden: torch.Tensor, min_frames: int) -> tuple[torch.Tensor, MergeMap]:
        frames = hidden.shape[0]
        target = min(frames, max(min_frames, math.ceil(self.config.keep_frames * frames)))
        similarity = frame_similarity(hidden).cpu()  # [F, F], one host copy per video
        steps = torch.arange(1, frames)
        score = torch.full((frames,), -math.inf)  # similarity of each kept frame to its kept predecessor
        score[1:] = similarity[steps, steps - 1]
        pred, succ = torch.arange(-1, frames - 1), torch.arange(1, frames + 1)
        group = torch.arange(frames)  # the kept frame every frame has folded into so far
        for _ in range(frames - target):
            frame = int(score.argmax())  # ties: the earliest frame
            if self.config.threshold is not None and float(score[frame]) < self.config.threshold:
                break
            before, after = int(pred[frame]), int(succ[frame])
            score[frame] = -math.inf
            succ[before] = after
            if after < frames:
                pred[after] = before
                score[after] = similarity[after, before]
            group[group == frame] = before
        source = torch.nonzero(group != torch.arange(frames)).flatten()
        kept = torch.nonzero(group == torch.arange(frames)).flatten()
        return kept, MergeMap(source, group[source])


def frame_similarity(hidden: torch.Tensor) -> torch.Tensor:
    """``[F, F]`` mean cosine similarity of same-position tokens between frames of ``hidden [F, T, D]``."""
    unit = torch.nn.functional.normalize(hidden.float(), dim=-1)  # [F, T, D]
    per_position = torch.einsum("ftd,gtd->fg", unit, unit)  # summed over positions
    return per_position / hidden.shape[1]
