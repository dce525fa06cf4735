"""Merge plans that several strategies' token mergers share (groups, quotas, static-token clustering).

Above `prunekit.types` (they build `MergeMap`s), so not in `prunekit.ops`, which `types` itself uses.
"""
