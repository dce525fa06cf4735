"""HieraVid level 2: conditional DPP over all frames of a segment."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from prunekit.interfaces import FrameSelector, StageConfig
from prunekit.ops.dpp import conditional_kernel, greedy_map
from prunekit.ops.nosync import pad_rows
from prunekit.strategies.registration import register_stage
from prunekit.types import SelectionContext


def relevance_spread(relevance: torch.Tensor | None, n: int, keep: int) -> torch.Tensor:
    """Split ``n`` tokens (sequence order) into ``keep`` contiguous buckets
    ``[floor(b*n/keep), floor((b+1)*n/keep))``, the authors' boundaries; keep each bucket's most
    relevant token (the first one on ties, or without relevance)."""
    starts = torch.div(torch.arange(keep) * n, keep, rounding_mode="floor")  # [keep]
    bucket = torch.searchsorted(starts, torch.arange(n), right=True) - 1  # [n]
    if relevance is None:
        relevance = torch.zeros(n)
    by_relevance = torch.argsort(-relevance.double().cpu(), stable=True)
    order = by_relevance[torch.argsort(bucket[by_relevance], stable=True)]
    first = torch.ones(n, dtype=torch.bool)
    first[1:] = bucket[order][1:] != bucket[order][:-1]
    return torch.sort(order[first]).values


@register_stage
class ConditionalDPPSelector(FrameSelector):
    """Greedy MAP of a DPP with kernel ``diag(r) S diag(r)``: ``S`` the cosine similarity of the
    segment's hidden states, ``r`` the min-max normalised last-query attention.

    ``relevance="negated_attention"`` reproduces the authors' code (inherited from CDPruner), where
    low-attention tokens count as relevant; ``"none"`` gives a plain (DivPrune-like) DPP.
    ``first_stage="relevance_spread"`` uses the authors' latest variant at the first in-LLM stage.
    All segments run as one padded batch.
    """

    class Config(StageConfig):
        name: Literal["dpp"] = "dpp"
        relevance: Literal["attention", "negated_attention", "none"] = Field(
            "attention", description="relevance r: last-query attention, its negation (authors' code) or none")
        first_stage: Literal["dpp", "relevance_spread"] = Field(
            "dpp", description="first in-LLM stage: DPP, or the most relevant token of each of k buckets")

    @property
    def needs_relevance(self) -> bool:  # type: ignore[override]
        return self.config.relevance != "none"

    def _relevance(self, context: SelectionContext) -> torch.Tensor | None:
        r = context.relevance
        if r is None or self.config.relevance == "none":
            return None
        return 1.0 - r if self.config.relevance == "negated_attention" else r

    def select(self, features: torch.Tensor, keep: int, context: SelectionContext) -> torch.Tensor:
        return self.select_segments([features], [keep], [context])[0]

    def select_segments(self, features: list[torch.Tensor], keeps: list[int],
                        contexts: list[SelectionContext]) -> list[torch.Tensor]:
        if not features:
            return []
        relevances = [self._relevance(c) for c in contexts]
        if self.config.first_stage == "relevance_spread" and contexts[0].llm_stage == 0:
            return [relevance_spread(r, f.shape[0], k) for f, r, k in zip(features, relevances, keeps)]
        device = features[0].device
        padded, valid = pad_rows(features)  # one batch, whatever the number of segments
        padded = padded.float()
        if all(r is None for r in relevances):
            rel = torch.ones(valid.shape, device=device)
        else:
            parts = [torch.ones(f.shape[0], device=device) if r is None else r.to(device)
                     for f, r in zip(features, relevances)]
            rel = pad_rows(parts, fill=1.0)[0].float()
        kernel = conditional_kernel(padded, rel)
        checks = contexts[0].checks  # the sample's queue: the kernel's error counters are read with its checks
        return greedy_map(kernel, torch.tensor(keeps), valid, fill_score=rel,  # host counts: no sync
                          error_counters=None if checks is None else checks.error_counters)
