"""Presets that compose several methods' stages (each method module stays independent of the others).

``earlytom-hieravid-30/10``: EarlyTom's encoder-level frame folding, then HieraVid's segment, frame
and layer levels.
"""

from __future__ import annotations

from prunekit.config import PipelineConfig
from prunekit.strategies.earlytom import (
    EARLYTOM_CITATION,
    EARLYTOM_KEEP_FRAMES,
    ENCODER_LAYER,
    SIGLIP_DEPTH,
    declare_nominal,
)
from prunekit.strategies.hieravid.presets import HIERAVID_CITATION, HIERAVID_FRACTIONS, hieravid


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


for _nominal in (30, 10):
    declare_nominal(earlytom_hieravid, _nominal)
