"""Drawing cell outlines onto an image (the CLI's and the service's PNG)."""

from __future__ import annotations

import numpy as np

OUTLINE_COLOR = (255, 220, 0)  # yellow reads well on gray phase contrast


def outline_mask(labels: np.ndarray) -> np.ndarray:
    """Pixels on the inner border of every cell (a cell touching another keeps its own border)."""
    labels = np.asarray(labels)
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
    from napari_livecell.core.predict import to_uint8

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

    zlib level 1 instead of Pillow's default 6: for a 704 x 520 outlined RGB
    image 37 ms instead of 159 ms (4.3x), for 1.3 % more bytes (measured).
    """
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", np.asarray(image), extension=".png", compress_level=1)
