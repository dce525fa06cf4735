"""Built-in named pipelines. Each factory returns a fresh `PipelineConfig`."""

from __future__ import annotations

from collections.abc import Callable

from prunekit.config import PipelineConfig

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


def baseline(selector: str) -> Callable[[], PipelineConfig]:
    """A sanity baseline keeping 30% of the tokens before the LLM with a trivial selector."""

    def factory() -> PipelineConfig:
        return PipelineConfig.parse({
            "name": selector,
            "description": f"Sanity baseline: {selector} token selection before the LLM (30% by default).",
            "selector": {"name": selector},
            "scheduler": {"name": "fixed", "layers": [0], "keep_fractions": [0.3]},
            "budget": {"retain": 0.3, "mode": "input"},
        })

    factory.__doc__ = f"Sanity baseline: {selector} token selection before the LLM."
    return factory


def hieravid_preset(nominal: int) -> Callable[[], PipelineConfig]:
    """A zero-argument factory for ``hieravid-<nominal>``."""

    def factory() -> PipelineConfig:
        return hieravid(nominal)

    factory.__doc__ = (f"HieraVid at {nominal}% (paper fractions, {HIERAVID_LAYER_AVERAGE[nominal]:.1%} "
                       "layer-averaged): segment, frame and layer-level pruning.")
    return factory


PRESETS: dict[str, Callable[[], PipelineConfig]] = {
    "hieravid-30": hieravid_preset(30),
    "hieravid-20": hieravid_preset(20),
    "hieravid-10": hieravid_preset(10),
    "uniform": baseline("uniform"),
    "random": baseline("random"),
}
