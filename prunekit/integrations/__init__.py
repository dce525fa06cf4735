"""Bridges to evaluation frameworks (optional dependencies, imported lazily).

* `prunekit.integrations.lmms_eval`: a ``prunekit`` model for lmms-eval (``pip install prunekit[lmms]``).
"""
