"""Cell Tracking Challenge (CTC) format: label TIFFs plus a lineage text file.

A CTC folder holds one 16-bit label TIFF per frame, in which a cell's id is
its track id, and a text file with one line ``L B E P`` per track: label,
first frame, last frame, parent label (0 = none). Results use
``mask000.tif`` ... and ``res_track.txt``; ground truth (``TRA`` folders)
``man_track000.tif`` ... and ``man_track.txt``. Frame numbers have 3
digits, or 4 for movies of more than 1000 frames.

The CTC requires a track to be present in every frame from ``B`` to ``E``;
a track with a missed frame is therefore written as two tracks, the second
with the first as parent, exactly as the CTC's own ground truth does.
"""

from __future__ import annotations

import os
import re
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from napari_livecell.core.limits import MAX_DENSE_ID, check_label_shape, dense_ids
from napari_livecell.core.tracking.track import LINEAGE_COLUMNS


def _frame(labels, t: int) -> np.ndarray:
    frame = labels[t]
    if hasattr(frame, "compute"):
        frame = frame.compute()
    return np.asarray(frame)


def ctc_file_names(n_frames: int, ground_truth: bool = False) -> tuple[list[str], str]:
    """Mask file names and lineage file name of a CTC folder of ``n_frames`` frames."""
    digits = 4 if n_frames > 1000 else 3
    prefix, track_file = ("man_track", "man_track.txt") if ground_truth else ("mask", "res_track.txt")
    return [f"{prefix}{t:0{digits}d}.tif" for t in range(n_frames)], track_file


def write_ctc(
    folder: str | os.PathLike,
    labels,
    graph: dict[int, list[int]] | None = None,
    *,
    ground_truth: bool = False,
) -> pd.DataFrame:
    """Write a tracked label stack in the Cell Tracking Challenge format.

    Parameters
    ----------
    folder : str or os.PathLike
        Output folder (created). Every file is written atomically.
    labels : array-like
        ``(T, Y, X)`` stack whose ids are track ids (numpy, dask, memmap;
        read frame by frame, twice).
    graph : dict of int to list of int, optional
        ``{daughter: [mother]}`` (napari's Tracks graph).
    ground_truth : bool
        Write ``man_track*.tif`` / ``man_track.txt`` (a ``TRA`` folder)
        instead of ``mask*.tif`` / ``res_track.txt``.

    Returns
    -------
    pandas.DataFrame
        The lineage written: ``id, first_frame, last_frame, parent``. Ids
        equal the input's, except for tracks that skip frames: the part
        after each gap gets a new id (the largest id + 1, ...), whose
        parent is the part before.
    """
    import tifffile

    from napari_livecell.core.atomic import write_text_atomic, write_with

    graph = graph or {}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_frames = labels.shape[0]
    present = []
    for t in range(n_frames):
        ids = np.unique(_frame(labels, t))
        present.append(ids[ids > 0])
    next_id = max((int(ids.max()) for ids in present if ids.size), default=0) + 1
    # per input id: current output id, last frame seen
    current: dict[int, tuple[int, int]] = {}
    spans: dict[int, list[int]] = {}
    renamed: list[dict[int, int]] = []
    for t, ids in enumerate(present):
        renames: dict[int, int] = {}
        for track in ids.tolist():
            if track in current and current[track][1] == t - 1:
                out_id = current[track][0]
                spans[out_id][1] = t
            elif track in current:  # back after a gap: a new CTC track, child of the old one
                out_id, previous = next_id, current[track][0]
                next_id += 1
                spans[out_id] = [t, t, previous]
            else:
                out_id = track
                mothers = graph.get(track, [0])
                spans[out_id] = [t, t, int(mothers[0]) if mothers else 0]
            current[track] = (out_id, t)
            if out_id != track:
                renames[track] = out_id
        renamed.append(renames)
    # a daughter's mother is the last part of the mother's track
    last_part = {track: out_id for track, (out_id, _) in current.items()}
    for out_id, span in spans.items():
        if span[2] and out_id in graph and span[2] in last_part:
            span[2] = last_part[span[2]]
    if next_id > 2**32:
        raise ValueError(
            f"track id {next_id - 1} does not fit the CTC's 32-bit masks: renumber the tracks first"
        )
    dtype = np.uint16 if next_id <= 65536 else np.uint32
    names, track_file = ctc_file_names(n_frames, ground_truth)
    for t in range(n_frames):
        frame = _frame(labels, t)
        if renamed[t]:
            # a search among the renamed ids: a table up to the largest id would cost 8 bytes per id
            old = np.asarray(sorted(renamed[t]), dtype=np.int64)
            new = np.asarray([renamed[t][key] for key in old.tolist()], dtype=np.int64)
            where = np.minimum(np.searchsorted(old, frame), len(old) - 1)
            frame = np.where(old[where] == frame, new[where], frame)
        frame = frame.astype(dtype)
        write_with(folder / names[t], partial(tifffile.imwrite, data=frame, compression="zlib"))
    lineage = pd.DataFrame(
        [[out_id, *span] for out_id, span in sorted(spans.items())], columns=LINEAGE_COLUMNS, dtype=np.int64
    )
    write_text_atomic(folder / track_file, format_lineage(lineage))
    return lineage


def format_lineage(lineage) -> str:
    """``L B E P`` lines of a lineage table (DataFrame or ``(N, 4)`` array)."""
    rows = np.asarray(lineage, dtype=np.int64).reshape(-1, 4)
    return "".join(f"{a} {b} {c} {d}\n" for a, b, c, d in rows.tolist())


class CtcFormatError(ValueError):
    """A Cell Tracking Challenge folder that cannot be read, with the reason in one line."""


def read_lineage(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``man_track.txt`` / ``res_track.txt`` file into ``id, first_frame, last_frame, parent``.

    Raises
    ------
    CtcFormatError
        For a line that is not four integers ``L B E P`` with ``L >= 1``,
        ``0 <= B <= E`` and ``P >= 0``, naming the line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise CtcFormatError(f"{path.name} is not readable text: {error}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path.name} line {number}"
        if len(fields) != 4:
            raise CtcFormatError(f"{where}: expected 4 integers 'L B E P', got {len(fields)} field(s)")
        try:
            values = [int(field) for field in fields]
        except ValueError:
            raise CtcFormatError(
                f"{where}: expected 4 integers 'L B E P', got {line.strip()[:60]!r}"
            ) from None
        track, first, last, parent = values
        if not (1 <= track < 2**63 and 0 <= first <= last < 2**31 and 0 <= parent < 2**63):
            raise CtcFormatError(
                f"{where}: {line.strip()[:60]!r} is not a track (L >= 1, 0 <= B <= E, P >= 0)"
            )
        rows.append(values)
    return pd.DataFrame(np.asarray(rows, dtype=np.int64).reshape(-1, 4), columns=LINEAGE_COLUMNS)


def _mask_number(path: Path) -> int:
    numbers = re.findall(r"(\d+)", path.stem)
    if not numbers:
        raise CtcFormatError(f"{path.name} has no frame number in its name (mask000.tif, mask001.tif, ...)")
    return int(numbers[-1])


def find_ctc(folder: str | os.PathLike) -> tuple[list[Path], Path]:
    """Mask files (in frame order) and lineage file of a CTC folder.

    ``folder`` may be a result folder (``res_track.txt``), a ``TRA`` folder
    (``man_track.txt``) or a ground-truth folder holding ``TRA``.

    Raises
    ------
    FileNotFoundError
        For a folder with no lineage file.
    CtcFormatError
        For a mask whose name holds no frame number.
    """
    folder = Path(folder)
    for where, track_file, pattern in (
        (folder, "res_track.txt", "mask*.tif"),
        (folder, "man_track.txt", "man_track*.tif"),
        (folder / "TRA", "man_track.txt", "man_track*.tif"),
    ):
        if (where / track_file).is_file():
            masks = sorted(where.glob(pattern), key=_mask_number)
            return masks, where / track_file
    raise FileNotFoundError(f"{folder} holds no res_track.txt or man_track.txt")


def _mask_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a mask TIFF from its first page (no pixels read)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages.first
            return tuple(int(n) for n in page.shape), np.dtype(page.dtype)
    except Exception as error:  # tifffile raises many types for a damaged file
        raise CtcFormatError(f"{path.name} is not a readable TIFF ({type(error).__name__})") from None


def _check_masks(masks: list[Path]) -> tuple[tuple[int, int], np.dtype]:
    """One frame shape for every mask, and the integer dtype that holds them all, from their headers."""
    shape, dtype = _mask_header(masks[0])
    first = dtype
    if len(shape) != 2 or dtype.kind not in "iu":
        raise CtcFormatError(f"{masks[0].name} is {shape} {dtype}: a CTC mask is one 2-D integer image")
    for path in masks[1:]:
        other, other_dtype = _mask_header(path)
        if other != shape or other_dtype.kind not in "iu":
            raise CtcFormatError(
                f"{path.name} is {' x '.join(map(str, other))} {other_dtype}, unlike "
                f"{masks[0].name}'s {' x '.join(map(str, shape))} {first}: every mask must match"
            )
        dtype = np.result_type(dtype, other_dtype)
    if dtype.kind not in "iu":  # uint64 with a signed type: no integer holds both
        raise CtcFormatError(f"the masks mix {first} and unsigned 64-bit ids: save them as one type")
    return shape, dtype


def _read_mask(path: Path, shape: tuple[int, int], keys: np.ndarray | None, dtype=None) -> np.ndarray:
    """One mask, checked against the folder's shape; ids mapped to ``1..N`` when ``keys`` is given."""
    import tifffile

    try:
        frame = tifffile.imread(path)
    except Exception as error:  # tifffile raises many types for a damaged file
        raise CtcFormatError(f"{path.name} is not a readable TIFF ({type(error).__name__})") from None
    if frame.shape != shape or frame.dtype.kind not in "iu":
        raise CtcFormatError(
            f"{path.name} is {frame.shape} {frame.dtype}, unlike the folder's first mask {shape}"
        )
    if frame.size and frame.dtype.kind == "i" and int(frame.min()) < 0:
        raise CtcFormatError(f"{path.name} holds the negative id {int(frame.min())}")
    if keys is None:
        if frame.size and int(frame.max()) > MAX_DENSE_ID:
            raise CtcFormatError(
                f"{path.name} holds id {int(frame.max())}, which the lineage file does not list"
            )
        return frame if dtype is None else frame.astype(dtype, copy=False)
    return _relabel(frame, keys, path.name)


def _relabel(frame: np.ndarray, keys: np.ndarray, name: str) -> np.ndarray:
    """Ids mapped to their rank among ``keys`` (1..N), 0 kept; an id not among them is refused."""
    where = np.searchsorted(keys, frame)
    found = keys[np.minimum(where, len(keys) - 1)] == frame
    cells = frame != 0
    if (cells & ~found).any():
        missing = int(frame[cells & ~found][0])
        raise CtcFormatError(f"{name} holds id {missing}, which the lineage file does not list")
    return np.where(cells, where + 1, 0).astype(np.int32)


def read_ctc(folder: str | os.PathLike, lazy: bool = False):
    """Read a Cell Tracking Challenge folder back into a label stack and lineage.

    Every mask's header is checked first (one 2-D integer shape for all), so
    a folder read lazily fails at once, not when frame 40 is shown. Track ids
    past :data:`~napari_livecell.core.limits.MAX_DENSE_ID` (napari's Tracks
    layer and the trackers size tables by the largest id) are relabelled
    ``1..N`` in order, in the masks and the lineage alike;
    ``lineage.attrs["relabelled"]`` then holds the number of ids.

    Parameters
    ----------
    folder : str or os.PathLike
        Result folder, ``TRA`` folder or ground-truth folder (see :func:`find_ctc`).
    lazy : bool
        Return a dask array that reads each frame when needed.

    Returns
    -------
    labels : numpy.ndarray or dask.array.Array
        ``(T, Y, X)`` stack, ids are track ids.
    lineage : pandas.DataFrame
        ``id, first_frame, last_frame, parent``; pass it to
        :func:`napari_livecell.core.tracking.track.graph_from_lineage` for
        napari's Tracks graph.

    Raises
    ------
    CtcFormatError
        For a damaged lineage file or mask, masks of different shapes, or an
        id the lineage does not list when ids must be relabelled.
    napari_livecell.core.limits.LimitError
        When the stack (read whole) would pass the label limit.
    """
    masks, track_file = find_ctc(folder)
    lineage = read_lineage(track_file)
    if not masks:
        raise FileNotFoundError(f"no mask TIFFs beside {track_file}")
    shape, dtype = _check_masks(masks)
    check_label_shape(shape, masks[0].name, max(dtype.itemsize, 4))
    if not lazy:
        check_label_shape((len(masks), *shape), Path(folder).name, max(dtype.itemsize, 4))
    ids = lineage[["id", "parent"]].to_numpy().ravel()
    keys = dense_ids(ids)
    if keys is not None:
        rank = {int(key): index + 1 for index, key in enumerate(keys.tolist())}
        lineage = lineage.assign(
            id=[rank[int(v)] for v in lineage["id"]],
            parent=[rank.get(int(v), 0) for v in lineage["parent"]],
        )
        lineage.attrs["relabelled"] = len(keys)
    if lazy:
        import dask
        import dask.array as da

        out = np.dtype(np.int32) if keys is not None else dtype
        frames = [
            da.from_delayed(dask.delayed(_read_mask)(path, shape, keys, out), shape, out) for path in masks
        ]
        return da.stack(frames), lineage
    return np.stack([_read_mask(path, shape, keys, dtype) for path in masks]), lineage
