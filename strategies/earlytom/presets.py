"""EarlyTom-style presets: the encoder level alone, and composed with HieraVid's frame and layer levels."""

from __future__ import annotations

from collections.abc import Callable

from prunekit.config import PipelineConfig
from prunekit.strategies.presets import HIERAVID_CITATION, HIERAVID_FRACTIONS, hieravid

from .merger import EARLYTOM_CITATION

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


def earlytom_hieravid(nominal: int) -> PipelineConfig:
    """Encoder-level frame folding composed with HieraVid's segment, frame and layer levels, at exactly
    ``nominal`` percent layer-averaged retention."""
    keep_frames = EARLYTOM_KEEP_FRAMES[nominal]
    base = hieravid(nominal).to_dict()
    base.update({
        "name": f"earlytom-hieravid-{nominal}",
        "description": (
            f"Encoder + HieraVid {nominal}%: near-identical frames fold at vision-tower layer {ENCODER_LAYER} of "
            f"{SIGLIP_DEPTH} until {keep_frames:.0%} of the frames remain (or what HieraVid's first stage needs); "
            f"HieraVid's segmentation, merge, MV offsets and DPP stages (fractions {HIERAVID_FRACTIONS[nominal]}) "
            f"then run on the kept frames, at exactly {nominal}% layer-averaged retention of the original video."),
        "citation": f"{EARLYTOM_CITATION} {HIERAVID_CITATION}",
        "encoder": {"name": "early_frame_merge", "layer": ENCODER_LAYER, "reference_depth": SIGLIP_DEPTH,
                    "keep_frames": keep_frames},
        "budget": {"retain": nominal / 100, "mode": "layer_average"},
    })
    return PipelineConfig.parse(base)


def _factory(build: Callable[[int], PipelineConfig], nominal: int) -> Callable[[], PipelineConfig]:
    def factory() -> PipelineConfig:
        return build(nominal)

    factory.__doc__ = (build.__doc__ or "").replace("``nominal`` percent", f"{nominal}%").split("\n")[0]
    return factory


PRESETS: dict[str, Callable[[], PipelineConfig]] = {
    "earlytom-30": _factory(earlytom, 30),
    "earlytom-10": _factory(earlytom, 10),
    "earlytom-hieravid-30": _factory(earlytom_hieravid, 30),
    "earlytom-hieravid-10": _factory(earlytom_hieravid, 10),
}
