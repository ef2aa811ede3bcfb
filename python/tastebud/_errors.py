"""Exception and warning classes shared by every tastebud module."""

from __future__ import annotations

__all__ = ["DataWarning", "FitError", "NotFittedError", "ParameterWarning"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit`` (or ``load``)."""


class FitError(RuntimeError):
    """Raised when training diverges (NaN or infinite factors)."""


class DataWarning(UserWarning):
    """Something in the data is suspicious but not fatal (e.g. users with no interactions)."""


class ParameterWarning(UserWarning):
    """A hyperparameter combination is legal but probably not what was meant."""
