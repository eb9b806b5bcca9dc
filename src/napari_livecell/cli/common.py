"""What every subcommand shares: one-line errors, checked numbers and names, output checks, progress bars."""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# errors a user can fix: printed as one line, never as a traceback
USER_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    PermissionError,
    KeyError,
)


class CommandError(Exception):
    """A failure to report as one line and exit code 2."""


def describe_os_error(error: OSError) -> str:
    """An ``OSError`` as one readable line: the reason and the file(s) it concerns.

    ``str(OSError)`` reads ``[Errno 20] Not a directory: 'x'``; this gives
    ``Not a directory: x`` (and ``a -> b`` for a failed rename).
    """
    if error.strerror and error.filename is not None:
        target = os.fsdecode(error.filename)
        if error.filename2 is not None:
            target += f" -> {os.fsdecode(error.filename2)}"
        return f"{error.strerror}: {target}"
    return str(error) or type(error).__name__


def _first_file_above(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` that is a file, not a folder."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def ensure_output_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create an output folder if needed and prove that files can be written in it.

    Called before any work, so that a run that could not save its results
    does not start.

    Parameters
    ----------
    path : path
        The folder.
    option : str
        How the user named it (``--out``, ``--triton``), for the message.

    Returns
    -------
    Path
        The folder, now existing and writable.

    Raises
    ------
    CommandError
        One line naming the folder and the reason: it is a file, it cannot be
        created (a parent is a file, no permission, read-only file system), or
        a file cannot be written in it.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{option} {folder} is a file, not a folder: give a folder")
    if not folder.exists():
        blocker = _first_file_above(folder)
        if blocker is not None:
            raise CommandError(f"cannot create output folder {folder}: {blocker} is a file")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise CommandError(f"cannot create output folder {folder}: {reason}") from None
    try:
        with tempfile.TemporaryFile(prefix=".napari-livecell-write-test-", dir=folder):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise CommandError(f"cannot write to output folder {folder}: {reason}") from None
    return folder


def ensure_output_file(path: str | os.PathLike, option: str = "output") -> Path:
    """Check that a file can be written at ``path`` (its folder is created if needed).

    An existing file is replaced later (atomically); an existing folder is refused.

    Raises
    ------
    CommandError
        ``path`` is a folder, or its folder cannot be created or written to.
    """
    target = Path(path)
    if target.is_dir():
        raise CommandError(f"{option} {target} is a folder: give a file name")
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise CommandError(f"cannot write {target}: {parent} is a file, not a folder")
    ensure_output_folder(parent, option=f"the folder of {option}")
    return target


def progress_bar(total: int | None, description: str, unit: str = "img", position: int | None = None):
    """A tqdm bar on stderr that disappears when done."""
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, leave=False, position=position)


def weights_argument(value: str | None) -> str | None:
    """A ``--model`` value as the core takes it: ``default`` (or nothing) is the shipped model."""
    return None if value in (None, "default") else value


def checked_pixel_size(value: float | None) -> float | None:
    """``--pixel-size`` as given, or a one-line error for one that is not a positive number."""
    from napari_livecell.core.images import check_pixel_size

    try:
        return check_pixel_size(value)
    except ValueError as error:
        raise CommandError(f"--pixel-size: {error}") from None


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``napari-livecell: error: ...``, exit 2)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        command = self.prog.removeprefix("napari-livecell").strip()
        where = f" {command}" if command else ""
        self.exit(2, f"napari-livecell{where}: error: {' '.join(message.split())} (see --help)\n")


def int_in(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``minimum`` to ``maximum``, else a one-line error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is out of range: use {minimum} to {maximum}")
        return value

    parse.__name__ = "whole number"  # what argparse names the type in its own messages
    return parse


def float_in(minimum: float, maximum: float = math.inf, open_minimum: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number within the bounds (above ``minimum`` when ``open_minimum``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        low_ok = value > minimum if open_minimum else value >= minimum
        if not math.isfinite(value) or not low_ok or value > maximum:
            low = f"above {minimum:g}" if open_minimum else f"from {minimum:g}"
            high = "" if math.isinf(maximum) else f" to {maximum:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: use a finite number {low}{high}")
        return value

    parse.__name__ = "number"
    return parse


positive_float = float_in(0.0, open_minimum=True)  # distances


def pixel_size_um(text: str) -> float:
    """An argparse ``type``: micrometres per pixel, a positive finite number."""
    from napari_livecell.core.images import check_pixel_size

    try:
        size = check_pixel_size(float(text))
    except ValueError:
        size = None
    if size is None:
        raise argparse.ArgumentTypeError(f"pixel size must be a positive number of micrometres, not {text!r}")
    return size


pixel_size_um.__name__ = "pixel size"
fraction = float_in(0.0, 1.0)  # thresholds

# a network input side: below one stride there is no image; far above, allocations fail
IMGSZ_RANGE = (32, 8192)
imgsz_int = int_in(*IMGSZ_RANGE)


def file_name_argument(what: str) -> Callable[[str], str]:
    """An argparse ``type``: a name that becomes one file or folder name (no separators, ``..``...)."""
    from napari_livecell.core.atomic import UnsafeNameError, safe_component

    def parse(text: str) -> str:
        try:
            return safe_component(text, what)
        except UnsafeNameError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = "name"
    return parse
