"""Generators that report progress and end with a result: drained, or relayed with their progress."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

Result = TypeVar("Result")


def drain(steps: Generator[Any, None, Result]) -> Result:
    """Run a progress-reporting generator to its end; return its result."""
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            return finished.value


def relay(steps: Generator[Any, None, Result], wrap: Callable[[Any], Any]) -> Generator[Any, None, Result]:
    """Yield each progress report of ``steps`` through ``wrap``; return its result (``yield from`` it)."""
    while True:
        try:
            report = next(steps)
        except StopIteration as finished:
            return finished.value
        yield wrap(report)
