"""HieraVid's named pipelines (hieravid-30/20/10). Each factory returns a fresh `PipelineConfig`."""

from __future__ import annotations

from collections.abc import Callable

from prunekit.config import PipelineConfig
from prunekit.strategies.registration import register_preset

HIERAVID_CITATION = (
    "HieraVid: Hierarchical Token Pruning for Fast Video Large Language Models, arXiv 2604.01881.")

# p0 (before the LLM, by merging), then p1..p3 of the survivors at L/4, L/2, 3L/4 (hieravid.md table)
HIERAVID_FRACTIONS = {
    30: (0.5, 0.3, 0.3, 0.57),
    20: (0.5, 0.5, 0.7, 0.8),
    10: (0.7, 0.6, 0.85, 0.9),
}
HIERAVID_LAYER_AVERAGE = {30: 0.300, 20: 0.210, 10: 0.110}


def hieravid(nominal: int) -> PipelineConfig:
    """HieraVid at a nominal layer-averaged retention of 30, 20 or 10 percent (paper fractions)."""
    return PipelineConfig.parse({
        "name": f"hieravid-{nominal}",
        "description": (
            f"HieraVid {nominal}%: similarity segmentation (tau 0.6, beta 0.4), same-position merge "
            f"before the LLM, per-segment MV budget offsets, conditional DPP at layers L/4, L/2, 3L/4; "
            f"the paper's fractions realize {HIERAVID_LAYER_AVERAGE[nominal]:.1%} layer-averaged."),
        "citation": HIERAVID_CITATION,
        "segmenter": {"name": "similarity", "tau": 0.6, "beta": 0.4},
        "merger": {"name": "same_position"},
        "allocator": {"name": "mv_offset"},
        "selector": {"name": "dpp", "relevance": "attention"},
        "scheduler": {"name": "progressive", "prune_fractions": list(HIERAVID_FRACTIONS[nominal])},
    })


def hieravid_preset(nominal: int) -> Callable[[], PipelineConfig]:
    """A zero-argument factory for ``hieravid-<nominal>``."""

    def factory() -> PipelineConfig:
        return hieravid(nominal)

    factory.__doc__ = (f"HieraVid at {nominal}% (paper fractions, {HIERAVID_LAYER_AVERAGE[nominal]:.1%} "
                       "layer-averaged): segment, frame and layer-level pruning.")
    return factory


for _nominal in (30, 20, 10):
    register_preset(f"hieravid-{_nominal}", hieravid_preset(_nominal))
