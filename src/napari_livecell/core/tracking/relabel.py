"""Give every cell its track id: the relabelled stack of :func:`.tracking.track_cells`.

A lazy (dask) stack stays lazy: it is relabelled block by block when computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from napari_livecell.core.images import is_lazy
from napari_livecell.core.limits import MAX_DENSE_ID

from .frame_cells import _kernels, iter_frames


def _lookups(table: pd.DataFrame) -> dict[int, np.ndarray | tuple[np.ndarray, np.ndarray]]:
    """Per frame, an array mapping input label -> track id (0 for labels not in the table).

    Frames with labels past :data:`~napari_livecell.core.limits.MAX_DENSE_ID`
    get ``(sorted labels, track ids)`` instead, searched per pixel.
    """
    t = table["t"].to_numpy(dtype=np.int64)
    label = table["label"].to_numpy(dtype=np.int64)
    track = table["track_id"].to_numpy(dtype=np.int32)
    if t.size == 0:
        return {}
    # tracking's own (t, label)-ordered rows need no sort
    if not np.all((t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (label[1:] > label[:-1]))):
        rows = np.lexsort((label, t))
        t, label, track = t[rows], label[rows], track[rows]
    frames, first = np.unique(t, return_index=True)
    sizes = label[np.r_[first[1:], t.size] - 1] + 1  # each frame's largest label + 1
    if int(sizes.max()) > MAX_DENSE_ID + 1:
        # ids too large for a table indexed by id (2**40: 16 TiB): each frame's sorted labels, searched
        bounds = np.r_[first, t.size]
        return {
            int(frame): (label[bounds[i] : bounds[i + 1]], track[bounds[i] : bounds[i + 1]])
            for i, frame in enumerate(frames.tolist())
        }
    # all frames' lookups in one array, each frame's from its offset: one groupby per
    # frame cost more than relabelling it
    offsets = np.r_[0, np.cumsum(sizes)]
    flat = np.zeros(int(offsets[-1]), dtype=np.int32)
    flat[offsets[np.searchsorted(frames, t)] + label] = track
    return {int(frame): flat[offsets[i] : offsets[i + 1]] for i, frame in enumerate(frames.tolist())}


def _apply_lookup(frame: np.ndarray, lookup) -> np.ndarray:
    if lookup is None:
        return np.zeros(frame.shape, dtype=np.int32)
    if isinstance(lookup, tuple):  # (sorted labels, track ids): ids past MAX_DENSE_ID
        keys, tracks = lookup
        where = np.minimum(np.searchsorted(keys, frame), len(keys) - 1)
        return np.where(keys[where] == frame, tracks[where], 0).astype(np.int32)
    kernels = _kernels()
    if kernels is not None and frame.dtype.kind in "iu" and frame.ndim == 2:
        return kernels.relabel(frame, lookup)
    if frame.size and int(frame.max()) < len(lookup):
        return lookup[frame]
    # ids above the table's largest (none if the table came from this stack) become background
    return lookup[np.minimum(frame, len(lookup) - 1)] * (frame < len(lookup))


def relabel_stack(labels, table: pd.DataFrame):
    """Give every cell its track id: ``out[t][labels[t] == label] = track_id``.

    Parameters
    ----------
    labels : array-like
        ``(T, Y, X)`` input label stack.
    table : pandas.DataFrame
        Rows ``t, label, track_id``.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        int32 stack; lazy (relabelled chunk by chunk) when ``labels`` is a
        dask array, so a lazy stack stays lazy.
    """
    lookups = _lookups(table)
    if is_lazy(labels):
        from dask.base import tokenize

        # first frame of each block along time: dask's block_info builds a dict per block,
        # ~0.1 ms per frame at 1,000 frames; block_id is a tuple
        first_frames = np.r_[0, np.cumsum(labels.chunks[0])]

        def relabel_block(block: np.ndarray, block_id=None) -> np.ndarray:
            start = int(first_frames[block_id[0]])
            out = np.empty(block.shape, dtype=np.int32)
            for offset in range(block.shape[0]):
                out[offset] = _apply_lookup(block[offset], lookups.get(start + offset))
            return out

        # named from the table's columns: dask would otherwise tokenize (pickle) the
        # function with its lookups, ~30 ms at 1,000 frames
        token = tokenize(labels.name, *(table[column].to_numpy() for column in ("t", "label", "track_id")))
        return labels.map_blocks(relabel_block, dtype=np.int32, name=f"relabel-{token}")
    out = np.empty(labels.shape, dtype=np.int32)
    for t, frame in iter_frames(labels):
        out[t] = _apply_lookup(frame, lookups.get(t))
    return out
