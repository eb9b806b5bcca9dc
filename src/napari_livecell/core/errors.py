"""Errors the core raises for a user's input, shared by modules that must not import each other."""

from __future__ import annotations


class ModelError(ValueError):
    """A model file that cannot be used, with the reason in the message."""


class Cancelled(RuntimeError):
    """Raised when a cancel check asks to stop between frames."""
