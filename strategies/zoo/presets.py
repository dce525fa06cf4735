"""The zoo's named pipelines: each peer method with its paper's defaults, composed from stages.

"Input" ratios count the visual tokens that enter the LLM; "layer-averaged" ratios count visual
tokens summed over all layers / (N * L). Any `Budget` replaces the default fractions (their shape is
kept); in-LLM-only methods (FastV, PDrop) cannot take ``mode="input"`` and raise `BudgetError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prunekit.config import PipelineConfig

from .divprune import DIVPRUNE_CITATION
from .dycoke import DYCOKE_CITATION
from .fastvid import FASTVID_CITATION
from .framefusion import FRAMEFUSION_CITATION
from .holitom import HOLITOM_CITATION
from .prunevid import PRUNEVID_CITATION
from .vidcom2 import VIDCOM2_CITATION

FASTV_CITATION = (
    "Chen et al., An Image is Worth 1/2 Tokens After Layer 2: Plug-and-Play Inference Acceleration for "
    "Large Vision-Language Models, ECCV 2024.")
PDROP_CITATION = (
    "Xing et al., PyramidDrop: Accelerating Your Large Vision-Language Models via Pyramid Visual "
    "Redundancy Reduction, CVPR 2025.")
VISIONZIP_CITATION = (
    "Yang et al., VisionZip: Longer is Better but Not Necessary in Vision Language Models, CVPR 2025.")
CDPRUNER_CITATION = (
    "Zhang et al., Beyond Attention or Similarity: Maximizing Conditional Diversity for Token Pruning "
    "in MLLMs (CDPruner), NeurIPS 2025.")

PRE_LLM = "before the LLM (layer 0); the ratio counts visual tokens entering the LLM"


def _before_llm(fraction: float) -> dict[str, Any]:
    return {"name": "fixed", "layers": [0], "keep_fractions": [fraction]}


PER_FRAME = {"name": "fixed_length", "frames_per_segment": 1}


# name -> (one-line summary, PipelineConfig fields). The summary is the registry's description.
SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "fastv": (
        "FastV (ECCV 2024): after layer 2, keep the 50% of visual tokens the last token attends most.",
        dict(description=(
            "FastV, inside the LLM: from layer K=2 on keep the R=50% visual tokens with the highest "
            "head-averaged last-token attention of layer K-1, as FastV's code ranks with the attention "
            "map the previous layer returned. R counts visual tokens kept from layer K on; a budget "
            "is layer-averaged (mode='input' raises: nothing is pruned before the LLM)."),
             citation=FASTV_CITATION, selector={"name": "top_relevance", "attention_layer": "previous"},
             scheduler={"name": "fixed", "layers": [2], "keep_fractions": [0.5]})),
    "pdrop": (
        "PyramidDrop (CVPR 2025): halve the visual tokens at L/4, L/2 and 3L/4 by last-token attention.",
        dict(description=(
            "PyramidDrop, inside the LLM: at layers L/4, L/2, 3L/4 (8/16/24 for 32 layers) keep "
            "lambda=0.5 of the surviving visual tokens ranked by the last instruction token's attention "
            "(50/25/12.5%), each stage ranked by its own layer's attention. A budget is layer-averaged "
            "(mode='input' raises: nothing is pruned before the LLM)."),
             citation=PDROP_CITATION, selector={"name": "top_relevance"},
             scheduler={"name": "progressive", "prune_fractions": [0.5, 0.5, 0.5], "input_stage": False})),
    "framefusion": (
        "FrameFusion (ICCV 2025): same-position merge before the LLM, then one last-token top-k prune.",
        dict(description=(
            "FrameFusion: cascaded merge of tokens whose same-position similarity to the previous "
            "token is >= 0.6, before the LLM, in rounds while >= 10% of the tokens qualify, up to "
            "1 - cost of them; if the merge alone does not reach the cost, one last-token top-k prune "
            "at the layer where merging stopped (ranked by the previous layer's attention), down to "
            "the exact budget. Ratio: FrameFusion's cost, the layer-averaged visual-token budget "
            "(default 0.3). With mode='input' the merge is topped up by layer-0 attention."),
             citation=FRAMEFUSION_CITATION, merger={"name": "cascaded_similarity"},
             selector={"name": "top_relevance", "attention_layer": "previous"},
             scheduler={"name": "fixed", "layers": [0], "keep_fractions": [0.3]},
             budget={"retain": 0.3, "mode": "layer_average"})),
    "visionzip": (
        "VisionZip (CVPR 2025), per frame: 54/64 dominant tokens by attention, the rest merged into context.",
        dict(description=(
            f"VisionZip, {PRE_LLM} (default 25%, 49 of 196 tokens per frame). Per frame: 54/64 of the "
            "quota are dominant tokens (layer-0 last-query attention replaces SigLIP attention), the "
            "rest are contextual tokens into which the other tokens are merged by similarity."),
             citation=VISIONZIP_CITATION, segmenter=PER_FRAME, merger={"name": "visionzip"},
             selector={"name": "top_relevance"}, scheduler=_before_llm(0.25))),
    "divprune": (
        "DivPrune (CVPR 2025): greedy max-min diverse subset of all visual tokens before the LLM.",
        dict(description=(
            f"DivPrune, {PRE_LLM} (default SUBSET_RATIO 9.8%): greedy max-min cosine-distance "
            "diversity over all visual tokens of the video."),
             citation=DIVPRUNE_CITATION, selector={"name": "max_min_diversity"}, scheduler=_before_llm(0.098))),
    "cdpruner": (
        "CDPruner (NeurIPS 2025): conditional DPP per frame, relevance from layer-0 last-query attention.",
        dict(description=(
            f"CDPruner, {PRE_LLM} (default 128 of 576 = 22.2%, the README's example). Per frame "
            "(CDPruner prunes each image of a batch separately): greedy MAP of a DPP with kernel "
            "diag(r) S diag(r), S the cosine similarity of the input embeddings; r is the layer-0 "
            "last-query attention (CDPruner: negated CLIP image-text similarity, which prunekit's "
            "runtime does not have)."),
             citation=CDPRUNER_CITATION, segmenter=PER_FRAME,
             selector={"name": "dpp", "relevance": "attention"}, scheduler=_before_llm(128 / 576))),
    "dycoke": (
        "DyCoke (CVPR 2025): temporal token merging in 4-frame windows before the LLM (K=0.7).",
        dict(description=(
            f"DyCoke TTM, {PRE_LLM} (default 47.5% = (1 + 3 * 0.3) / 4 for K=0.7): in windows of 4 "
            "frames keep the first frame and the tokens of frames 1-3 least similar to their reference "
            "frame. DyCoke's decode-time dynamic KV selection is not included; DyCoke's own 'retained "
            "ratio' counts decode-time tokens."),
             citation=DYCOKE_CITATION, segmenter={"name": "fixed_length", "frames_per_segment": 4},
             selector={"name": "dycoke_ttm"}, scheduler=_before_llm(0.475))),
    "prunevid": (
        "PruneVid (ACL 2025): segment + static/dynamic merge before the LLM, attention prune at layer 10.",
        dict(description=(
            "PruneVid: DPC-KNN segments (F/4 clusters), static tokens (tau 0.8) averaged over time, "
            "DPC-KNN spatial merge before the LLM (default 17% enter the LLM, PruneVid's LLaVA-OV "
            "setting); at layer 10 keep alpha=0.4 of every frame's tokens by last-query attention. "
            "Ratio counts tokens entering the LLM; a layer-averaged budget keeps the shape."),
             citation=PRUNEVID_CITATION, segmenter={"name": "dpc_segments"}, merger={"name": "prunevid"},
             selector={"name": "top_relevance", "per_frame": True},
             scheduler={"name": "fixed", "layers": [0, 10], "keep_fractions": [0.17, 0.17 * 0.4],
                        "reference_depth": 28})),
    "fastvid": (
        "FastVID (NeurIPS 2025): DySeg segments, salient + density context tokens, anchor merge (10%).",
        dict(description=(
            f"FastVID, {PRE_LLM} (default retention 10%): DySeg (c=8, tau=0.9), per frame 60% salient "
            "tokens by layer-0 attention and 40% density-peak context tokens on anchor frames (every "
            "4th from the segment end) into which the segment's other tokens merge."),
             citation=FASTVID_CITATION, segmenter={"name": "dyseg"}, merger={"name": "fastvid"},
             selector={"name": "top_relevance"}, scheduler=_before_llm(0.10))),
    "holitom": (
        "HoliTom (NeurIPS 2025): global static windows, temporal + spatial merge before the LLM (10%).",
        dict(description=(
            f"HoliTom without its inner-LLM merge, {PRE_LLM} (default 10% with tau=0.65; the paper "
            "uses tau=0.8 at 15-25%): dynamic-programming static windows, static tokens averaged over "
            "time and DPC-KNN merged, dynamic tokens kept by layer-0 attention."),
             citation=HOLITOM_CITATION, segmenter={"name": "static_windows", "tau": 0.65},
             merger={"name": "holitom", "tau": 0.65}, selector={"name": "top_relevance"},
             scheduler=_before_llm(0.10))),
    "vidcom2": (
        "VidCom2 (EMNLP 2025): frame budgets by uniqueness, most distinct tokens per frame (25%).",
        dict(description=(
            f"VidCom2, {PRE_LLM} (default R_RATIO 25%): one segment per frame, budgets weighted by "
            "frame uniqueness, then the tokens least similar to the video and frame centres."),
             citation=VIDCOM2_CITATION, segmenter=PER_FRAME, allocator={"name": "uniqueness"},
             selector={"name": "distinct"}, scheduler=_before_llm(0.25))),
}


def _factory(name: str) -> Callable[[], PipelineConfig]:
    summary, fields = SPECS[name]

    def factory() -> PipelineConfig:
        return PipelineConfig.parse({"name": name, **fields})

    factory.__name__, factory.__doc__ = name, summary
    return factory


PRESETS: dict[str, Callable[[], PipelineConfig]] = {name: _factory(name) for name in SPECS}
