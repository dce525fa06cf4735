"""PyramidDrop (CVPR 2025): FastV's last-token top-k at L/4, L/2 and 3L/4, as a preset."""

from __future__ import annotations

from prunekit.strategies.preset_fields import declare_preset

PDROP_CITATION = (
    "Xing et al., PyramidDrop: Accelerating Your Large Vision-Language Models via Pyramid Visual "
    "Redundancy Reduction, CVPR 2025.")


declare_preset(
    "pdrop",
    "PyramidDrop (CVPR 2025): halve the visual tokens at L/4, L/2 and 3L/4 by last-token attention.",
    description=(
        "PyramidDrop, inside the LLM: at layers L/4, L/2, 3L/4 (8/16/24 for 32 layers) keep "
        "lambda=0.5 of the surviving visual tokens ranked by the last instruction token's attention "
        "(50/25/12.5%), each stage ranked by its own layer's attention. A budget is layer-averaged "
        "(mode='input' raises: nothing is pruned before the LLM)."),
    citation=PDROP_CITATION, selector={"name": "top_relevance"},
    scheduler={"name": "progressive", "prune_fractions": [0.5, 0.5, 0.5], "input_stage": False})
