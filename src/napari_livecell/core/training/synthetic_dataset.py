"""Synthetic LIVECell-style datasets on disk: images, label TIFFs, COCO json, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .synthetic import synthesize_image, synthesize_timelapse


def livecell_file_name(cell_type: str, index: int, frame: int = 0, hours_per_frame: int = 3) -> str:
    """LIVECell-style name ``<type>_Phase_<well>_<location>_<time>_<crop>.tif``.

    Images ``index`` 0, 1, ... go through crops 1-4, locations 1-4 and wells
    A1..H12; ``frame`` sets the timestamp.
    """
    crop = index % 4 + 1
    location = index // 4 % 4 + 1
    well_index = index // 16
    well = f"{'ABCDEFGH'[well_index // 12 % 8]}{well_index % 12 + 1}"
    hours = frame * hours_per_frame
    timestamp = f"{hours // 24:02d}d{hours % 24:02d}h00m"
    return f"{cell_type}_Phase_{well}_{location}_{timestamp}_{crop}.tif"


def timelapse_name(cell_type: str, index: int) -> str:
    """Name of time-lapse ``index``: its frames' file name without the timestamp."""
    name = livecell_file_name(cell_type, index, 0)
    return name.replace("_00d00h00m", "").removesuffix(".tif")


def write_synthetic_dataset(
    out: str | Path,
    n_images: int,
    seed: int = 0,
    n_frames: int | None = None,
    cell_type: str = "SkBr3",
    n_cells: int | None = None,
    look: str = "skbr3",
    progress=None,
) -> Path:
    """Write images, label images and a LIVECell-layout COCO json.

    Parameters
    ----------
    out : str or Path
        Output folder; gets ``images/``, ``labels/``, ``annotations.json`` and
        ``synth.json`` (the arguments, so that models trained on it can say
        how to rebuild their data). Time-lapses also get their ground-truth
        tracks in the Cell Tracking Challenge layout,
        ``tracks/<time-lapse name>/man_track000.tif ...`` (label ids = track
        ids) and ``man_track.txt`` (lineage: id, first frame, last frame,
        parent); see :func:`timelapse_name`.
    n_images : int
        Number of independent images, or of time-lapses when ``n_frames`` is set.
    seed : int
        Seed; the same seed gives the same files.
    n_frames : int, optional
        Write time-lapses of this many frames (one file per frame, LIVECell
        naming with successive timestamps).
    cell_type : str
        Cell-type prefix of the file names.
    n_cells : int, optional
        Cells per image (random in 20..600 when omitted).
    look : str
        Cell look, a name in :data:`napari_livecell.core.training.synthetic.LOOKS`.
    progress : callable, optional
        Called with ``(done, total)`` after each image.

    Returns
    -------
    Path
        The COCO json path.
    """
    import tifffile

    from napari_livecell.core.formats.coco import CocoImage, build_coco, write_coco
    from napari_livecell.core.formats.ctc import write_ctc
    from napari_livecell.core.segmentation import Segmentation

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(seed).spawn(n_images)
    entries: list[CocoImage] = []
    for index, child in enumerate(seeds):
        rng = np.random.default_rng(child)
        if n_frames is None:
            sample = synthesize_image(rng, n_cells=n_cells, look=look)
            frames = [(0, sample.image, sample.labels)]
        else:
            sample = synthesize_timelapse(rng, n_frames=n_frames, n_cells=n_cells, look=look)
            frames = list(zip(range(n_frames), sample.image, sample.labels))
            lineage = sample.lineage
            assert lineage is not None  # a time-lapse always has one
            graph = {int(track): [int(parent)] for track, _, _, parent in lineage if parent > 0}
            write_ctc(
                out / "tracks" / timelapse_name(cell_type, index),
                sample.track_labels,
                graph,
                ground_truth=True,
            )
        for frame, image, labels in frames:
            name = livecell_file_name(cell_type, index, frame)
            tifffile.imwrite(out / "images" / name, image)
            tifffile.imwrite(
                out / "labels" / name.replace(".tif", "_labels.tif"),
                labels.astype(np.uint16),
                compression="zlib",
            )
            entries.append(
                CocoImage(
                    image_id=len(entries) + 1,
                    file_name=name,
                    segmentation=Segmentation.from_labels(labels),
                    frame=frame if n_frames is not None else None,
                )
            )
        if progress is not None:
            progress(index + 1, n_images)
    json_path = out / "annotations.json"
    write_coco(json_path, build_coco(entries))
    provenance = {
        "n": n_images,
        "seed": seed,
        "frames": n_frames,
        "cells": n_cells,
        "cell_type": cell_type,
        "look": look,
    }
    (out / "synth.json").write_text(json.dumps(provenance, indent=2))
    return json_path
