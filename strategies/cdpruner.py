"""CDPruner (NeurIPS 2025): a conditional DPP per frame before the LLM, as a preset."""

from __future__ import annotations

from prunekit.strategies.preset_fields import PER_FRAME, PRE_LLM, before_llm, declare_preset

CDPRUNER_CITATION = (
    "Zhang et al., Beyond Attention or Similarity: Maximizing Conditional Diversity for Token Pruning "
    "in MLLMs (CDPruner), NeurIPS 2025.")


declare_preset(
    "cdpruner",
    "CDPruner (NeurIPS 2025): conditional DPP per frame, relevance from layer-0 last-query attention.",
    description=(
        f"CDPruner, {PRE_LLM} (default 128 of 576 = 22.2%, the README's example). Per frame "
        "(CDPruner prunes each image of a batch separately): greedy MAP of a DPP with kernel "
        "diag(r) S diag(r), S the cosine similarity of the input embeddings; r is the layer-0 "
        "last-query attention (CDPruner: negated CLIP image-text similarity, which prunekit's "
        "runtime does not have)."),
    citation=CDPRUNER_CITATION, segmenter=PER_FRAME,
    selector={"name": "dpp", "relevance": "attention"}, scheduler=before_llm(128 / 576))
