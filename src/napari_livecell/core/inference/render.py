"""Drawing cell outlines onto an image, and the files the CLI writes per image (labels, outlines)."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

OUTLINE_COLOR = (255, 220, 0)  # yellow reads well on gray phase contrast
OUTLINE_BLOCK_PIXELS = 1 << 20  # outlines are found one band of about this many pixels at a time


def outline_mask(labels: np.ndarray) -> np.ndarray:
    """Pixels on the inner border of every cell (a cell touching another keeps its own border).

    Worked out in bands of rows (each with its neighbouring rows), so that a
    400-megapixel label image needs the mask and one band's temporaries, not
    a padded copy and four comparisons of the whole image.
    """
    labels = np.asarray(labels)
    height, width = labels.shape
    border = np.empty(labels.shape, dtype=bool)
    rows = max(1, OUTLINE_BLOCK_PIXELS // max(1, width))
    for start in range(0, height, rows):
        stop = min(start + rows, height)
        above, below = max(start - 1, 0), min(stop + 1, height)
        band = _outline_band(labels[above:below])
        border[start:stop] = band[start - above : start - above + stop - start]
    return border


def _outline_band(labels: np.ndarray) -> np.ndarray:
    border = np.zeros(labels.shape, dtype=bool)
    padded = np.pad(labels, 1, mode="edge")
    center = padded[1:-1, 1:-1]
    for shift_row, shift_col in ((0, 1), (2, 1), (1, 0), (1, 2)):
        neighbour = padded[shift_row : shift_row + labels.shape[0], shift_col : shift_col + labels.shape[1]]
        border |= neighbour != center
    return border & (labels > 0)


def draw_outlines(
    image: np.ndarray,
    labels: np.ndarray,
    color: tuple[int, int, int] = OUTLINE_COLOR,
) -> np.ndarray:
    """Return an RGB uint8 copy of ``image`` with every cell outlined.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` image of any real dtype
        (scaled to 8 bits as for segmentation).
    labels : numpy.ndarray
        ``(H, W)`` label image.
    color : tuple of int
        Outline colour (RGB).

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8.
    """
    from napari_livecell.core.inference.frame_input import to_uint8

    gray_or_rgb = to_uint8(image)
    if gray_or_rgb.ndim == 2:
        rgb = np.repeat(gray_or_rgb[:, :, None], 3, axis=2)
    else:
        rgb = np.ascontiguousarray(gray_or_rgb[:, :, :3])
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"image {rgb.shape[:2]} and labels {labels.shape} differ in size")
    rgb[outline_mask(labels)] = color
    return rgb


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an 8-bit (gray/RGB) or 16-bit image as PNG, quickly.

    zlib level 1 instead of Pillow's default 6: about 4x faster for a few
    percent more bytes (benchmarks/README.md).
    """
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", np.asarray(image), extension=".png", compress_level=1)


def outlines_folder(out: str | os.PathLike, stem: str) -> Path:
    """Where a stack's per-frame outline PNGs go: ``<out>/<stem>_outlines/``."""
    return Path(out) / f"{stem}_outlines"


def frame_png_name(number: int) -> str:
    """A stack frame's outline PNG, numbered in C order of the leading axes."""
    return f"frame_{number:04d}.png"


def write_segment_outputs(
    out: str | os.PathLike, stem: str, image: Any, frames: list, rgb: bool | None = None
) -> list[Path]:
    """Write ``<stem>_labels.tif`` and the outlined image(s) of one input.

    Parameters
    ----------
    out : path
        Output folder.
    stem : str
        The input's file stem.
    image : array-like
        The input image or stack (as read, after any channel choice).
    frames : list of Segmentation
        One result per frame, in C order of the stack's leading axes.
    rgb : bool, optional
        Whether the image's last axis is colour (guessed when omitted).

    Returns
    -------
    list of Path
        The labels TIFF (a stack's ids run on across frames, as in the napari
        result layer; 16-bit when they fit), then ``<stem>_outlines.png`` for
        a single frame or the folder ``<stem>_outlines/`` holding
        ``frame_0000.png``... for a stack (8-bit PNGs a viewer opens at once,
        where one RGB TIFF of a whole stack was tens of MB).
    """
    import tifffile

    from napari_livecell.core.atomic import write_with
    from napari_livecell.core.inference.predict import iter_frames
    from napari_livecell.core.segmentation import stack_labels

    out = Path(out)
    leading, image_frames = iter_frames(image, rgb)
    # one frame's ids need no offset: its own label image, not a stacked copy (1.6 GB at 400 Mpx)
    labels = stack_labels(frames, leading) if leading else frames[0].labels
    if labels.max() < 65536:
        labels = labels.astype(np.uint16)
    elif labels.dtype == np.int32:
        labels = labels.view(np.uint32)  # ids are positive: the same bits, no copy
    else:
        labels = labels.astype(np.uint32)
    labels_path = write_with(
        out / f"{stem}_labels.tif",
        lambda p: tifffile.imwrite(p, labels, compression="zlib", photometric="minisblack"),
    )
    if not leading:
        ((_, data),) = image_frames
        outlined = draw_outlines(data, frames[0].labels)
        outlines_path = write_with(out / f"{stem}_outlines.png", lambda p: p.write_bytes(png_bytes(outlined)))
        return [Path(labels_path), Path(outlines_path)]
    folder = outlines_folder(out, stem)
    folder.mkdir(exist_ok=True)
    for number, ((_, data), frame) in enumerate(zip(image_frames, frames)):
        outlined = draw_outlines(data, frame.labels)
        write_with(folder / frame_png_name(number), partial(Path.write_bytes, data=png_bytes(outlined)))
    for stale in folder.glob("frame_*.png"):  # frames of an earlier, longer stack of this name
        if stale.stem[6:].isdigit() and int(stale.stem[6:]) >= len(frames):
            stale.unlink()
    return [Path(labels_path), folder]
