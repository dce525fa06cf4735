"""The built-in strategies' declarations: method modules decorate with `register_stage` and call
`register_preset`; ``prunekit.strategies._plugin`` registers everything declared here."""

from __future__ import annotations

from prunekit.registration import Declarations

BUILTIN = Declarations()
register_stage = BUILTIN.stage
register_preset = BUILTIN.preset
