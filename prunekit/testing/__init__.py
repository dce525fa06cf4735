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

from prunekit.testing import assertions, conformance, strategies
from prunekit.testing.assertions import *  # noqa: F403 - the package's API is its three modules' APIs
from prunekit.testing.conformance import *  # noqa: F403
from prunekit.testing.strategies import *  # noqa: F403

__all__ = [*strategies.__all__, *assertions.__all__, *conformance.__all__]
