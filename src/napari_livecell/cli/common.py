"""What every subcommand shares: one-line errors and progress bars."""

from __future__ import annotations

import sys

# errors a user can fix: printed as one line, never as a traceback
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    PermissionError,
    KeyError,
)


class CommandError(Exception):
    """A failure to report as one line and exit code 2."""


def progress_bar(total: int, description: str, unit: str = "img"):
    """A tqdm bar on stderr that disappears when done."""
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, leave=False)


def weights_argument(value: str | None) -> str | None:
    """A ``--model`` value as the core takes it: ``default`` (or nothing) is the shipped model."""
    return None if value in (None, "default") else value
