"""What the accuracy and efficiency benchmarks run: a strategy at a budget, and how names parse into it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

UNPRUNED = "unpruned"


@dataclass(frozen=True)
class StrategySpec:
    """One benchmarked configuration: ``unpruned``, or a strategy (a preset name, ``hieravid`` for the
    paper's preset nearest the budget, or a config file) at an optional budget."""

    strategy: str
    budget: float | None = None

    @property
    def label(self) -> str:
        """``strategy`` or ``strategy@budget``: the name a result row is reported under."""
        return self.strategy if self.budget is None else f"{self.strategy}@{self.budget:g}"


def parse_strategies(names: Sequence[str], budgets: Sequence[float]) -> list[StrategySpec]:
    """``["hieravid-30", "fastv@0.3"]`` x budgets -> specs, the unpruned model first, no duplicates."""
    specs = [StrategySpec(UNPRUNED)]
    for raw in names:
        raw = raw.strip()
        if not raw or raw == UNPRUNED:
            continue
        if "@" in raw:
            name, value = raw.split("@", 1)
            specs.append(StrategySpec(name, float(value)))
        elif budgets:
            specs.extend(StrategySpec(raw, float(b)) for b in budgets)
        else:
            specs.append(StrategySpec(raw))
    seen, out = set(), []
    for s in specs:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out
