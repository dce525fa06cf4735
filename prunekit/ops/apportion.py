"""Largest-remainder apportionment of an integer total under per-item bounds."""

from __future__ import annotations

import math
from collections.abc import Sequence

from prunekit.errors import BudgetError


def apportion(weights: Sequence[float], total: int, lower: Sequence[int],
              upper: Sequence[int]) -> list[int]:
    """Integer counts ``c_i`` in ``[lower_i, upper_i]`` summing to ``total``, proportional to ``weights``.

    Finds a scale ``s`` with ``sum(clamp(s * w_i)) == total`` (exactly, from the breakpoints of that
    piecewise-linear function), floors, then hands the remaining units to the largest fractional
    parts (largest-remainder / Hamilton method).
    """
    n = len(weights)
    if not (len(lower) == len(upper) == n):
        raise ValueError("weights, lower and upper must have the same length")
    lo_sum, hi_sum = sum(lower), sum(upper)
    if any(lo > hi for lo, hi in zip(lower, upper)) or not lo_sum <= total <= hi_sum:
        raise BudgetError(
            f"cannot split {total} tokens over {n} segments with bounds summing to "
            f"[{lo_sum}, {hi_sum}]; ask for a budget between those counts."
        )
    w = [max(float(x), 0.0) for x in weights]
    if sum(w) <= 0 or any(math.isnan(x) for x in w):
        w = [1.0] * n

    real = _water_fill(w, total, lower, upper)
    counts = [max(lo, min(hi, math.floor(x))) for x, lo, hi in zip(real, lower, upper)]
    remainder = total - sum(counts)
    order = sorted(range(n), key=lambda i: (-(real[i] - math.floor(real[i])), i))
    while remainder > 0:
        progressed = False
        for i in order:
            if remainder == 0:
                break
            if counts[i] < upper[i]:
                counts[i] += 1
                remainder -= 1
                progressed = True
        if not progressed:  # pragma: no cover - excluded by the feasibility check above
            raise BudgetError("apportionment could not place every token")
    while remainder < 0:  # only reachable through float rounding; undo from the smallest parts
        for i in reversed(order):
            if remainder == 0:
                break
            if counts[i] > lower[i]:
                counts[i] -= 1
                remainder += 1
    return counts


def _water_fill(w: list[float], total: int, lower: Sequence[int], upper: Sequence[int]) -> list[float]:
    """Real shares ``clamp(s * w_i, lower_i, upper_i)`` summing to ``total`` (requires feasibility)."""

    def clamped(s: float) -> list[float]:
        return [min(max(s * wi if wi > 0 else 0.0, lo), hi) for wi, lo, hi in zip(w, lower, upper)]

    breaks = sorted({b / wi for wi, lo, hi in zip(w, lower, upper) if wi > 0 for b in (lo, hi)} - {math.inf})
    prev_s, prev_total = 0.0, float(sum(clamped(0.0)))
    for s in breaks:
        value = float(sum(clamped(s)))
        if value >= total:  # f is linear on [prev_s, s]: interpolate
            span = value - prev_total
            t = 0.0 if span <= 0 else (total - prev_total) / span
            return clamped(prev_s + t * (s - prev_s))
        prev_s, prev_total = s, value
    return clamped(prev_s)
