"""Accuracy with bootstrap confidence intervals, and fidelity of a pruned model to the unpruned one.

Fidelity compares two runs item by item: answer agreement (same prediction) and the KL divergence
``KL(unpruned || pruned)`` of the multiple-choice answer distributions (softmax over the option
letters). Neither needs labels, and both catch changes that accuracy hides: a pruned model can be
as accurate as the unpruned one while answering different questions right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["bootstrap_ci", "paired_ratio_ci", "kl_divergence", "agreement", "mean_kl"]


def _resample(n: int, n_resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))  # [R, n]


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (e.g. 0/1 correctness per item).

    Returns ``(nan, nan)`` for no values; a constant sample gives a zero-width interval.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    means = x[_resample(x.size, n_resamples, seed)].mean(axis=1)  # [R]
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def paired_ratio_ci(numerator: Sequence[float], denominator: Sequence[float], confidence: float = 0.95,
                    n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(numerator) / mean(denominator)`` resampling items jointly.

    Used for relative accuracy (pruned over unpruned on the same items); resamples whose denominator
    mean is 0 are dropped.
    """
    a, b = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length, got {a.size} and {b.size}.")
    if a.size == 0:
        return math.nan, math.nan
    idx = _resample(a.size, n_resamples, seed)
    num, den = a[idx].mean(axis=1), b[idx].mean(axis=1)
    ratios = num[den > 0] / den[den > 0]
    if ratios.size == 0:
        return math.nan, math.nan
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(ratios, [alpha, 1 - alpha])
    return float(lo), float(hi)


def kl_divergence(p_logprobs: Sequence[float], q_logprobs: Sequence[float]) -> float:
    """``KL(p || q) = sum_i p_i (log p_i - log q_i)`` in nats, from log-probabilities of one distribution each.

    Inputs are renormalised (log-softmax), so unnormalised log-scores are fine. Terms with ``p_i = 0``
    count 0; ``q_i = 0`` where ``p_i > 0`` gives ``inf``.
    """
    p = np.asarray(p_logprobs, np.float64)
    q = np.asarray(q_logprobs, np.float64)
    if p.shape != q.shape:
        raise ValueError(f"distributions over different supports: {p.size} vs {q.size} outcomes.")
    p = p - np.logaddexp.reduce(p)
    q = q - np.logaddexp.reduce(q)
    pp = np.exp(p)
    mask = pp > 0
    with np.errstate(invalid="ignore"):
        terms = pp[mask] * (p[mask] - q[mask])
    return float(max(terms.sum(), 0.0))


def agreement(reference: Sequence[str], other: Sequence[str]) -> float:
    """Fraction of items where ``other`` predicts the same answer as ``reference``."""
    if len(reference) != len(other):
        raise ValueError(f"prediction lists differ in length: {len(reference)} vs {len(other)}.")
    if not reference:
        return math.nan
    return sum(a == b for a, b in zip(reference, other)) / len(reference)


def mean_kl(reference: Sequence[Sequence[float]], other: Sequence[Sequence[float]]) -> float:
    """Mean over items of ``KL(reference_i || other_i)`` (answer-option log-probabilities per item)."""
    if len(reference) != len(other):
        raise ValueError(f"distribution lists differ in length: {len(reference)} vs {len(other)}.")
    if not reference:
        return math.nan
    return float(np.mean([kl_divergence(p, q) for p, q in zip(reference, other)]))
