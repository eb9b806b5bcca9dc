"""Opening an image for a streamed run: a TIFF stack is read page by page, never whole.

A TIFF becomes a dask array over tifffile's zarr view of its first series:
one block per page (or per tile of a tiled page), decoded only when the run
reaches it, compressed or not. PNG and JPEG are single frames and are read
at once (:func:`napari_livecell.core.images.read_image`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def opened_image(path: str | os.PathLike) -> Iterator[Any]:
    """Yield the image at ``path``, lazily where the format allows; the file is closed afterwards.

    Raises
    ------
    ImageReadError
        Missing file, unsupported extension, or a file that does not decode.
    """
    from napari_livecell.core.images import ImageReadError, read_image, unreadable_image

    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
        yield read_image(path)  # its own one-line errors
        return
    import dask.array as da
    import tifffile
    import zarr

    try:
        tiff = tifffile.TiffFile(path)
    except Exception as error:  # tifffile raises many types for corrupt files
        raise unreadable_image(path, error) from None
    try:
        try:
            store = tiff.series[0].aszarr()
            array = da.from_zarr(zarr.open(store, mode="r"))
        except Exception as error:  # an odd layout tifffile cannot view as zarr: read it whole
            del error
            array = np.asarray(tiff.asarray())
        if array.ndim < 2 or min(array.shape[:2]) == 0:
            raise ImageReadError(f"{path.name} holds no 2-D image (shape {array.shape})")
        yield array
    finally:
        tiff.close()
