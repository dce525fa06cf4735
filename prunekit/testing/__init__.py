"""Hypothesis strategies and conformance checks for prunekit stages, presets and plugins.

Plugin authors test their own stages against the same guarantees as the built-ins. Three modules, one
job each: `strategies` (Hypothesis strategies and profiles), `assertions` (per-example checks) and
`conformance` (the ``check_*`` runners); everything is importable from here:

```python
from prunekit.testing import check_frame_selector, check_preset

def test_my_selector_conforms():
    check_frame_selector(MySelector)

def test_my_preset_conforms():
    check_preset("acme.topk-30")
```

Needs ``hypothesis`` (``pip install "prunekit[test]"``). Each ``check_*`` runs a Hypothesis search
(settings from the active profile, see `register_profiles`) and raises `AssertionError` naming the
violated guarantee. Do not call them from inside a ``@given`` test; use the ``assert_*`` helpers and
the strategies there instead.

The guarantees (architecture §4):

1. realized retention is within one token of the target (``|realized - retain| <= 1/N``);
2. kept ids are sorted, unique and in range; text and layout tokens are never dropped;
3. every segment keeps at least one token at every stage (when feasible; else `BudgetError`);
4. counts are exact and non-increasing across stages;
5. ``retain = 1.0`` is an exact no-op.
"""

from prunekit.testing.assertions import (
    GUARANTEES,
    assert_counts,
    assert_kept_ids,
    assert_noop,
    assert_pipeline_guarantees,
    assert_retention,
    assert_schedule,
    assert_segmentation,
    assert_segments_keep_tokens,
    assert_selection,
    simulate_or_refuse,
)
from prunekit.testing.conformance import (
    check_allocator,
    check_frame_selector,
    check_layer_scheduler,
    check_merger,
    check_preset,
    check_segmenter,
)
from prunekit.testing.strategies import attentions, budgets, depths, features, layouts, register_profiles, segmentations

__all__ = [
    "register_profiles",
    "layouts",
    "features",
    "budgets",
    "depths",
    "segmentations",
    "attentions",
    "check_segmenter",
    "check_merger",
    "check_allocator",
    "check_frame_selector",
    "check_layer_scheduler",
    "check_preset",
    "simulate_or_refuse",
    "assert_pipeline_guarantees",
    "assert_retention",
    "assert_kept_ids",
    "assert_segments_keep_tokens",
    "assert_counts",
    "assert_noop",
    "assert_segmentation",
    "assert_schedule",
    "assert_selection",
    "GUARANTEES",
]
