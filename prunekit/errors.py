"""Exception classes raised by prunekit. Every message says what went wrong and what to do."""

from __future__ import annotations


class PrunekitError(Exception):
    """Base class of every error prunekit raises on purpose."""


class BudgetError(PrunekitError, ValueError):
    """A retention request that cannot be met (out of range, or infeasible for this input)."""


class UnknownStrategyError(PrunekitError, KeyError):
    """A stage, preset or adapter name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RegistryCollisionError(PrunekitError):
    """Two plugins registered the same name for the same kind."""


class ConfigError(PrunekitError, ValueError):
    """A pipeline config that cannot be parsed or validated."""


class InvalidInputError(PrunekitError, ValueError):
    """Tensors handed to a stage that violate its contract (NaN, wrong shape, empty video)."""


class UnsupportedModelError(PrunekitError, TypeError):
    """A model that no registered adapter supports."""


class VideoDecodeError(PrunekitError, OSError):
    """A video file that is missing, empty or cannot be decoded."""
