"""Reading and finding microscopy images, with errors that name the problem."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_livecell.core.ngff import ImageReadError, is_ome_zarr, is_ome_zarr_image, open_ome_zarr

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


def computed_blocks(stack) -> Iterator[np.ndarray]:
    """The blocks of a dask array, computed one by one in C order of its block grid.

    Each block is computed from its own part of the graph (culled once per
    block) by dask's simple recursive executor. Slicing a frame out of a long
    lazy stack (``np.asarray(stack[t])``), ``block.compute()`` or
    ``dask.compute`` handle the whole graph on every call: 18 ms per frame of
    a 60-frame stack and 91 ms at 1,000 frames, more than decoding the frame.
    The graph is not optimised either: fusing puts the whole layer's subgraph
    into every block's task, which would be culled again per block
    (benchmarks/README.md, tracking).
    """
    from dask.core import flatten, get
    from dask.optimization import cull

    keys = list(flatten(stack.__dask_keys__()))
    graph = dict(stack.__dask_graph__())
    for key in keys:
        needed, _ = cull(graph, [key])
        yield np.asarray(get(needed, [key])[0])


def iter_lazy_frames(image, leading: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """``(index, frame)`` of a dask array's 2-D (or colour) frames, in C order, each computed once.

    The array is rechunked to one frame per block when it is not already
    (frames split in tiles, or several frames per block), so that the block
    grid's order is the frames' order.
    """
    n_leading = len(leading)
    one_frame_blocks = all(len(chunks) == size for chunks, size in zip(image.chunks[:n_leading], leading))
    whole_frames = all(len(chunks) == 1 for chunks in image.chunks[n_leading:])
    if not (one_frame_blocks and whole_frames):
        axes = {axis: 1 for axis in range(n_leading)}
        axes.update({axis: -1 for axis in range(n_leading, image.ndim)})
        image = image.rechunk(axes)
    for index, block in zip(np.ndindex(*leading), computed_blocks(image)):
        yield index, block.reshape(block.shape[n_leading:])


def is_lazy(image) -> bool:
    """Whether ``image`` is a dask array (computed piecewise, never whole)."""
    return hasattr(image, "__dask_graph__") and hasattr(image, "chunks")


def unreadable_image(path: Path, error: BaseException) -> ImageReadError:
    """The one line for a file no decoder could read (decoders raise many types for corrupt files)."""
    return ImageReadError(
        f"cannot read {path.name} as an image (corrupt or not an image): {type(error).__name__}"
    )


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a TIFF (any dtype, stacks included), PNG or JPEG; an OME-Zarr folder lazily.

    An OME-Zarr image comes as a dask array of its highest resolution in the
    TIFF path's layout (:func:`open_ome_zarr`): nothing is read until a block is.

    Raises
    ------
    ImageReadError
        Missing file, unsupported extension, a file that does not decode, or
        an OME-Zarr folder whose metadata or arrays do not make an image.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"image not found: {path}")
    if path.is_dir():
        if is_ome_zarr(path):
            return open_ome_zarr(path).data
        raise ImageReadError(f"{path} is a folder, not an image (nor an OME-Zarr image)")
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
        raise unreadable_image(path, error) from None
    data = np.asarray(data)
    if data.ndim < 2 or min(data.shape[:2]) == 0:
        raise ImageReadError(f"{path.name} holds no 2-D image (shape {data.shape})")
    return data


# what ``napari-livecell segment`` writes beside each input: never read back as an input
OUTPUT_SUFFIXES = ("_labels.tif", "_outlines.png", "_outlines.tif")


@dataclass
class ImageSearch:
    """Images found for a run, and the files left out on purpose.

    Attributes
    ----------
    paths : list of Path
        Images to read (resolved, sorted per pattern, unique).
    outputs : list of Path
        Files named like segmentation outputs (``*_labels.tif``,
        ``*_outlines.png``, ``*_outlines.tif``) that a folder or glob matched.
    inside_out : list of Path
        Files that a folder or glob matched inside the run's output folder.
    """

    paths: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    inside_out: list[Path] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """How many matched files were left out."""
        return len(self.outputs) + len(self.inside_out)


def is_output_name(path: str | os.PathLike) -> bool:
    """Whether a file is named like a segmentation output (``<stem>_labels.tif``, ...).

    A stack's outline frames (``<stem>_outlines/frame_0000.png``) count too.
    """
    path = Path(path)
    name = path.name.lower()
    if path.parent.name.lower().endswith("_outlines") and name.startswith("frame_"):
        return True
    return any(name.endswith(suffix) and len(name) > len(suffix) for suffix in OUTPUT_SUFFIXES)


MAX_CHANNELS = 8  # an axis this short beside two image axes holds channels, not frames or rows
LABEL_NEIGHBOUR_SHARE = 0.9  # pixels equal to their right-hand neighbour in a label image


def looks_like_labels(image) -> bool:
    """Whether an image looks like a label (or mask) image rather than a photograph.

    Label images are integer, hold background 0 and few distinct values, and
    are flat almost everywhere: nearly every pixel equals its neighbour. A
    camera image, even an 8-bit one, has noise between neighbours; a blank
    frame has one value only and is not a label image.

    Parameters
    ----------
    image : array-like
        Any image or stack (numpy or dask); large ones are judged on a sample.

    Returns
    -------
    bool
    """
    dtype = np.dtype(image.dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        return False
    if image.ndim > 2 and is_lazy(image):  # slicing a long lazy stack costs more than reading a frame
        _, sample = next(iter_lazy_frames(image, tuple(image.shape[:-2])))
    else:
        sample = np.asarray(image[(0,) * (image.ndim - 2)] if image.ndim > 2 else image)
    step = max(1, int(np.ceil(np.sqrt(sample.size / 1_000_000))))
    rows = sample[::step]  # whole rows: neighbours along a row stay neighbours
    values = np.unique(rows)
    if len(values) < 2 or values[0] != 0 or len(values) > rows.size // 20:
        return False
    same = np.mean(rows[:, 1:] == rows[:, :-1]) if rows.shape[1] > 1 else 0.0
    return bool(same >= LABEL_NEIGHBOUR_SHARE)


# inside cells, pixels equal to their neighbour in a label image: all but those on a border
# between two touching cells (>= 0.8 even for 10-px cells packed edge to edge); a camera's
# noise leaves a few percent equal, a dim 8-bit image rarely half
LABEL_FLAT_SHARE = 0.7
# pixels per distinct value, at least: a label image's values are cells of many pixels each
LABEL_PIXELS_PER_VALUE = 16


class NotLabelsError(ValueError):
    """An image given where a label image is needed (a photograph, a float array...)."""


def label_image_problem(image) -> str:
    """Why ``image`` is not a label image, ``""`` when it looks like one.

    A label image is integer and flat: inside a cell every pixel holds the
    cell's id, so nearly every cell pixel equals its neighbours and there are
    far fewer distinct values than pixels. An intensity image (phase contrast,
    fluorescence) varies from pixel to pixel. An image without cells (all 0)
    is a label image. A stack is judged on its first frame with cells among
    the first few (a large frame on a sample of whole rows).

    Parameters
    ----------
    image : array-like
        A 2-D image or a stack (numpy or dask).

    Returns
    -------
    str
        ``""``, or what the image looks like, for a one-line message.
    """
    dtype = np.dtype(image.dtype)
    if dtype == np.bool_:
        return ""
    if not np.issubdtype(dtype, np.integer):
        return f"it holds {dtype} values, not integer labels (an intensity image)"
    frames = _first_frames(image, 4)
    sample = next((frame for frame in frames if frame.any()), frames[0])
    step = max(1, int(np.ceil(np.sqrt(sample.size / 1_000_000))))
    rows = np.asarray(sample[::step])  # whole rows: neighbours along a row stay neighbours
    inside = rows != 0
    pairs = inside[:, 1:] & inside[:, :-1]
    if not pairs.any():
        return ""  # no cells (or single pixels): nothing says it is not a label image
    flat = float(np.mean(rows[:, 1:][pairs] == rows[:, :-1][pairs]))
    n_values = len(np.unique(rows[inside]))
    crowded = n_values * LABEL_PIXELS_PER_VALUE > int(inside.sum())
    if flat >= LABEL_FLAT_SHARE and not crowded:
        return ""
    return (
        f"it looks like an intensity image ({dtype}, {n_values:,} distinct values, "
        f"{flat:.0%} of neighbouring pixels equal; a label image is flat inside each cell)"
    )


def _first_frames(image, count: int) -> list[np.ndarray]:
    if image.ndim <= 2:
        return [np.asarray(image)]
    leading = tuple(image.shape[:-2])
    if is_lazy(image):  # slicing a long lazy stack costs more than reading a frame
        frames = []
        for _, frame in iter_lazy_frames(image, leading):
            frames.append(np.asarray(frame))
            if len(frames) == count or frame.any():
                break
        return frames
    flat = image.reshape(-1, *image.shape[-2:])
    return [np.asarray(flat[i]) for i in range(min(count, len(flat)))]


def check_labels(image, name: str, hint: str = "segment it first") -> None:
    """Refuse an image that is not a label image, with one line naming what it looks like.

    ``hint`` ends the line: what to do instead.

    Raises
    ------
    NotLabelsError
        ``image`` is not integer or not flat (see :func:`label_image_problem`).
    """
    problem = label_image_problem(image)
    if problem:
        raise NotLabelsError(f"{name} is not a label image: {problem}; {hint}")


def channel_axis(shape: tuple[int, ...]) -> int | None:
    """The axis of an image that may hold channels: ``-1``, ``0`` or ``None``.

    The last axis when it is short (<= :data:`MAX_CHANNELS`: ``(H, W, C)``,
    RGB included), else the first of a 3-D or deeper image when short
    (``(C, H, W)``, as ImageJ and tifffile write channels), else none.
    """
    if len(shape) < 3:
        return None
    if shape[-1] <= MAX_CHANNELS:
        return -1
    if shape[0] <= MAX_CHANNELS:
        return 0
    return None


def select_channel(image, channel: int, axis: int | None = None):
    """One channel of a multi-channel image (numpy or dask, lazily).

    Parameters
    ----------
    image : array-like
        ``(H, W, C)``, ``(C, H, W)`` or a stack with a channel axis.
    channel : int
        Channel number, from 0.
    axis : int, optional
        The channel axis; :func:`channel_axis` when omitted.

    Returns
    -------
    array-like
        The image without its channel axis.

    Raises
    ------
    ImageReadError
        No channel axis, or a channel number out of range.
    """
    axis = channel_axis(tuple(image.shape)) if axis is None else axis
    if axis is None:
        raise ImageReadError(f"an image of shape {tuple(image.shape)} has no channel axis to choose from")
    n_channels = image.shape[axis]
    if not 0 <= channel < n_channels:
        raise ImageReadError(
            f"channel {channel} does not exist: the image has {n_channels} (0..{n_channels - 1})"
        )
    return image[..., channel] if axis == -1 else image[channel]


def search_images(patterns: list[str], out: str | os.PathLike | None = None) -> ImageSearch:
    """Expand files, folders and glob patterns into image paths, leaving outputs out.

    Folders and glob patterns never yield segmentation outputs
    (:func:`is_output_name`) nor anything inside ``out``, so that a run never
    reads what it (or an earlier run) wrote. A file named explicitly is always
    taken.

    Parameters
    ----------
    patterns : list of str
        Files, OME-Zarr image folders, folders (their images and OME-Zarr
        images, not recursive) or glob patterns (``**`` recurses).
    out : path, optional
        The run's output folder.

    Returns
    -------
    ImageSearch

    Raises
    ------
    ImageReadError
        A pattern that matches nothing, or a folder without images to read
        (the message says how many files were left out, and why).
    """
    out_folder = None if out is None else Path(out).resolve()
    search = ImageSearch()
    found: list[Path] = []

    def keep(matches: list[Path], nothing: str) -> list[Path]:
        kept = []
        outputs, inside = 0, 0
        for match in matches:
            resolved = match.resolve()
            if out_folder is not None and resolved.is_relative_to(out_folder):
                search.inside_out.append(resolved)
                inside += 1
            elif is_output_name(match):
                search.outputs.append(resolved)
                outputs += 1
            else:
                kept.append(match)
        if not kept:
            reasons = []
            if inside:
                reasons.append(f"{inside} inside --out {out}")
            if outputs:
                names = ", ".join("*" + suffix for suffix in OUTPUT_SUFFIXES)
                reasons.append(f"{outputs} named like outputs ({names})")
            detail = f" ({' and '.join(reasons)}: results are never read as inputs)" if reasons else ""
            raise ImageReadError(f"{nothing}{detail}")
        return kept

    for pattern in patterns:
        path = Path(pattern)
        if is_ome_zarr_image(path):
            found.append(path)
        elif path.is_dir():
            matches = sorted(p for p in path.iterdir() if _is_image_path(p))
            found += keep(matches, f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
        elif path.exists():
            found.append(path)
        elif glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
            matches = [p for p in matches if _is_image_path(p)]
            found += keep(matches, f"no images match {pattern!r}")
        else:
            raise ImageReadError(f"image not found: {path}")
    search.paths = list(dict.fromkeys(p.resolve() for p in found))
    # a file matched by one pattern and named by another is an input, not a skipped file
    taken = set(search.paths)
    search.outputs = [p for p in dict.fromkeys(search.outputs) if p not in taken]
    search.inside_out = [p for p in dict.fromkeys(search.inside_out) if p not in taken]
    return search


def _is_image_path(path: Path) -> bool:
    """An image file, or an OME-Zarr image folder (not a labels-only store ``segment`` wrote)."""
    if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
        return True
    return path.name.lower().endswith(".zarr") and is_ome_zarr_image(path)


def input_stem(path: str | os.PathLike) -> str:
    """An input's name without its extension: ``a.tif`` -> ``a``, ``a.ome.zarr`` -> ``a``."""
    name = Path(path).name
    for suffix in (".ome.zarr", ".zarr"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def find_images(patterns: list[str], out: str | os.PathLike | None = None) -> list[Path]:
    """Expand files, folders and glob patterns into image paths (sorted, unique).

    Segmentation outputs and files inside ``out`` are left out of folders and
    globs (see :func:`search_images`).

    Raises
    ------
    ImageReadError
        A pattern that matches nothing, or a folder without images.
    """
    return search_images(patterns, out).paths


def check_pixel_size(pixel_size_um: float | None) -> float | None:
    """A pixel size as measurements take it: a positive finite float, or ``None``.

    Raises
    ------
    ValueError
        Zero, negative, infinite or NaN.
    """
    if pixel_size_um is None:
        return None
    size = float(pixel_size_um)
    if not np.isfinite(size) or size <= 0:
        raise ValueError(f"pixel size must be a positive number of micrometres, not {pixel_size_um}")
    return size
