"""Reading and finding microscopy images, with errors that name the problem."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


class ImageReadError(ValueError):
    """A path that does not hold a readable image."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a TIFF (any dtype, stacks included), PNG or JPEG.

    Raises
    ------
    ImageReadError
        Missing file, unsupported extension, or a file that does not decode.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"image not found: {path}")
    if path.is_dir():
        raise ImageReadError(f"{path} is a folder, not an image")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageReadError(f"{path.name} is not a supported image ({', '.join(IMAGE_SUFFIXES)})")
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            data = tifffile.imread(path)
        else:
            import imageio.v3 as iio

            data = iio.imread(path)
    except Exception as error:  # decoders raise many types for corrupt files
        raise ImageReadError(
            f"cannot read {path.name} as an image (corrupt or not an image): {type(error).__name__}"
        ) from None
    data = np.asarray(data)
    if data.ndim < 2 or min(data.shape[:2]) == 0:
        raise ImageReadError(f"{path.name} holds no 2-D image (shape {data.shape})")
    return data


def find_images(patterns: list[str]) -> list[Path]:
    """Expand files, folders and glob patterns into image paths (sorted, unique).

    Raises
    ------
    ImageReadError
        A pattern that matches nothing, or a folder without images.
    """
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not matches:
                raise ImageReadError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
            found += matches
        elif path.exists():
            found.append(path)
        elif glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
            matches = [p for p in matches if p.suffix.lower() in IMAGE_SUFFIXES]
            if not matches:
                raise ImageReadError(f"no images match {pattern!r}")
            found += matches
        else:
            raise ImageReadError(f"image not found: {path}")
    unique: dict[Path, None] = dict.fromkeys(p.resolve() for p in found)
    return list(unique)
