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
    dtype = np.uint16 if next_id <= 65536 else np.uint32
    names, track_file = ctc_file_names(n_frames, ground_truth)
    for t in range(n_frames):
        frame = _frame(labels, t)
        if renamed[t]:
            lookup = np.arange(int(frame.max()) + 1, dtype=np.int64)
            for old, new in renamed[t].items():
                lookup[old] = new
            frame = lookup[frame]
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


def read_lineage(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``man_track.txt`` / ``res_track.txt`` file into ``id, first_frame, last_frame, parent``."""
    text = Path(path).read_text().split()
    rows = np.asarray(text, dtype=np.int64).reshape(-1, 4)
    return pd.DataFrame(rows, columns=LINEAGE_COLUMNS)


def _mask_number(path: Path) -> int:
    return int(re.findall(r"(\d+)", path.stem)[-1])


def find_ctc(folder: str | os.PathLike) -> tuple[list[Path], Path]:
    """Mask files (in frame order) and lineage file of a CTC folder.

    ``folder`` may be a result folder (``res_track.txt``), a ``TRA`` folder
    (``man_track.txt``) or a ground-truth folder holding ``TRA``.
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


def read_ctc(folder: str | os.PathLike, lazy: bool = False):
    """Read a Cell Tracking Challenge folder back into a label stack and lineage.

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
    """
    import tifffile

    masks, track_file = find_ctc(folder)
    lineage = read_lineage(track_file)
    if not masks:
        raise FileNotFoundError(f"no mask TIFFs beside {track_file}")
    if lazy:
        import dask
        import dask.array as da

        first = tifffile.imread(masks[0])
        frames = [
            da.from_delayed(dask.delayed(tifffile.imread)(path), first.shape, first.dtype) for path in masks
        ]
        return da.stack(frames), lineage
    return np.stack([tifffile.imread(path) for path in masks]), lineage
