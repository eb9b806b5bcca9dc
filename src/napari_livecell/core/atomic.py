"""Safe file writes: atomic (a failed export never leaves half a file behind), inside their folder.

Every file or folder name built from input (a review dataset's image names, a
Triton model's name, an output stem) goes through :func:`safe_component`, so
that no crafted name (``../../X``, ``/etc/x``, ``CON``) can make a writer
leave the folder it was given.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place on success.

    The temporary file keeps the target's suffix so that writers that infer
    the format from the name (tifffile, imageio) still work. On any error the
    temporary file is removed and an existing ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        # mkstemp makes the file private (0600); give it what a plain open() would
        os.chmod(temporary_path, _mode_for(target))
        os.replace(temporary_path, target)
    finally:
        if temporary_path.exists():
            temporary_path.unlink()


def _mode_for(target: Path) -> int:
    """An existing file's permissions, or a new file's under the process umask."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux: read it, instead of setting it (os.umask changes it for every thread)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_with(path: str | os.PathLike, writer: Callable[[Path], object]) -> Path:
    """Call ``writer(temporary_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as temporary:
        writer(temporary)
    return Path(path)


# Windows refuses these as file names, with or without an extension
RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)
MAX_BYTES = 255  # a path component's limit on ext4, APFS and NTFS
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeNameError(ValueError):
    """A name that cannot be used as one file or folder name, with the reason."""


def safe_component(name: object, what: str = "name") -> str:
    """``name`` itself when it is one harmless path component; else :class:`UnsafeNameError`.

    Parameters
    ----------
    name : object
        The name (from a file, an index, a command line option).
    what : str
        What the name is, for the message (``"image name"``, ``"--triton-model"``).

    Returns
    -------
    str
        ``name``, unchanged.

    Raises
    ------
    UnsafeNameError
        Not a string, empty, ``.`` or ``..``, holding a path separator, a
        drive, a NUL or another control character, ending in a dot or a space
        (Windows drops them), a reserved device name (``CON``, ``NUL``,
        ``COM1``...), or longer than 255 bytes.
    """
    if not isinstance(name, str):
        raise UnsafeNameError(f"{what} {name!r} is not text")
    shown = repr(name) if len(name) <= 80 else repr(name[:77] + "...")
    reason = _problem(name)
    if reason:
        raise UnsafeNameError(f"{what} {shown} cannot name a file: {reason}")
    return name


def _problem(name: str) -> str:
    if not name.strip():
        return "it is empty"
    if name in (".", ".."):
        return "it names a folder, not a file"
    if Path(name).is_absolute() or name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "it is an absolute path"
    if "/" in name or "\\" in name or os.sep in name or (os.altsep and os.altsep in name):
        return "it holds a path separator"
    if any(ord(character) < 32 or ord(character) == 127 for character in name):
        return "it holds a control character"
    if name[-1] in ". ":
        return "it ends in a dot or a space"
    if name.split(".")[0].upper().rstrip() in RESERVED:
        return "it is a reserved device name"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return f"it is longer than {MAX_BYTES} bytes"
    return ""


def child_path(folder: str | os.PathLike, name: object, suffix: str = "", what: str = "name") -> Path:
    """``folder / (name + suffix)`` for a safe ``name``, checked to lie inside ``folder``."""
    component = safe_component(name, what) + suffix
    safe_component(component, what)
    path = Path(folder) / component
    if Path(os.path.abspath(path)).parent != Path(os.path.abspath(folder)):  # belt and braces
        raise UnsafeNameError(f"{what} {name!r} would leave {folder}")
    return path
