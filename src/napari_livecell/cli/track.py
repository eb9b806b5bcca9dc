"""``napari-livecell track``: link the cells of a segmented time-lapse and export what labs use."""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_livecell.cli.common import CommandError, int_in, pixel_size_um, positive_float, progress_bar

# what to do with an intensity image given as labels
LABELS_HINT = "segment it first (napari-livecell segment) and give its _labels.tif"


def add_parser(commands) -> None:
    """Register the subcommand."""
    track = commands.add_parser(
        "track",
        help="track cells over time in a label stack: one id per cell, lineage, growth curves",
        description=(
            "Link the cells of a (T, Y, X) label stack (a multi-frame TIFF, or a folder of one "
            "label TIFF per frame in name order) into tracks, and write the relabelled stack, "
            "tracks CSV, per-track features, review flags and growth curves (CSV + PNG)."
        ),
    )
    track.add_argument(
        "labels",
        metavar="LABELS_STACK",
        help="label stack TIFF, a folder of label TIFFs, or an OME-Zarr store (its labels/cells)",
    )
    track.add_argument("--out", required=True, help="output folder")
    track.add_argument("--ctc", action="store_true", help="also write a Cell Tracking Challenge folder")
    track.add_argument("--roi", action="store_true", help="also write an ImageJ/Fiji ROI set (.zip)")
    track.add_argument(
        "--max-distance",
        type=positive_float,
        default=None,
        help="farthest a cell moves between frames, px (default: the median cell diameter)",
    )
    track.add_argument(
        "--max-gap", type=int_in(0, 1000), default=1, help="frames a cell may be missed (default 1)"
    )
    track.add_argument("--no-divisions", action="store_true", help="do not look for divisions")
    track.add_argument(
        "--linker",
        choices=("overlap", "laptrack"),
        default="overlap",
        help="overlap (default, fast) or laptrack (the reference, 20-100x slower; docs/tracking.md)",
    )
    track.add_argument(
        "--pixel-size", type=pixel_size_um, default=None, help="micrometres per pixel (growth CSV)"
    )
    track.set_defaults(handler=run)


def read_stack(path: Path):
    """A ``(T, Y, X)`` label stack: a TIFF read whole; a folder of frames or OME-Zarr labels read lazily."""
    import numpy as np
    import tifffile

    from napari_livecell.core.images import check_labels

    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    from napari_livecell.core.formats.ome_zarr import has_labels, read_labels

    if path.is_dir() and has_labels(path):  # an OME-Zarr store's labels/cells, read frame by frame
        from napari_livecell.core.images import input_stem

        stack = read_labels(path).data
        if stack.ndim != 3:
            raise CommandError(f"{path.name}: labels/cells is not a (T, Y, X) stack (shape {stack.shape})")
        check_labels(stack, str(path), LABELS_HINT)
        return stack, input_stem(path)
    if path.is_dir():
        import dask
        import dask.array as da

        frames = sorted(p for p in path.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
        if not frames:
            raise CommandError(f"{path} holds no .tif label frames")
        first = check_label_ids(tifffile.imread(frames[0]), frames[0])
        if first.ndim != 2:
            raise CommandError(f"{frames[0].name} is not a 2-D label frame (shape {first.shape})")
        # read lazily: a long movie is measured one frame at a time (each frame's ids checked as it is read)
        check_labels(first, str(frames[0]), LABELS_HINT)
        reads = [dask.delayed(read_label_frame)(p) for p in frames]
        return da.stack([da.from_delayed(r, first.shape, first.dtype) for r in reads]), path.name
    try:
        stack = tifffile.imread(path)
    except (tifffile.TiffFileError, ValueError) as error:
        raise CommandError(f"{path} is not a readable TIFF ({error})") from error
    stack = np.squeeze(stack)
    if stack.ndim != 3:
        raise CommandError(f"{path} is not a (T, Y, X) label stack (shape {stack.shape})")
    check_labels(stack, str(path), LABELS_HINT)
    return check_label_ids(stack, path), path.stem


def read_label_frame(path: Path):
    """One label frame of a folder, its ids checked like a whole stack's."""
    import tifffile

    return check_label_ids(tifffile.imread(path), path)


def check_label_ids(labels, path: Path):
    """``labels`` when their ids are 0 (background) or positive, else a one-line :class:`CommandError`."""
    import numpy as np

    if not np.issubdtype(labels.dtype, np.integer):
        raise CommandError(f"{path} holds {labels.dtype} values, not integer labels")
    if labels.size and np.issubdtype(labels.dtype, np.signedinteger) and labels.min() < 0:
        count = int(np.count_nonzero(labels < 0))
        raise CommandError(
            f"{path} holds negative label ids ({count} pixels, down to {int(labels.min())}): "
            "labels are 0 for background and positive ids for cells"
        )
    return labels


def run(args: argparse.Namespace) -> int:
    """Track, then write every output into ``--out``."""
    import numpy as np
    import tifffile

    from napari_livecell.core.analysis.growth import growth_curves, write_growth_csv, write_growth_png
    from napari_livecell.core.atomic import write_text_atomic, write_with
    from napari_livecell.core.tracking.track import (
        iter_frames,
        iter_track_cells,
        review_flags,
        write_tracks_csv,
    )

    if args.max_gap < 0:
        raise CommandError("--max-gap must be 0 or more")
    labels, name = read_stack(Path(args.labels))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_frames = labels.shape[0]
    steps = iter_track_cells(
        labels,
        max_distance=args.max_distance,
        max_gap=args.max_gap,
        divisions=not args.no_divisions,
        linker=args.linker,
    )
    # frames are the unit: each pass over the stack (measuring, relabelling) counts 0..T
    with progress_bar(n_frames, "track: measuring", unit="frame") as bar:
        stage = "measuring"
        while True:
            try:
                step, done, _ = next(steps)
            except StopIteration as finished:
                result = finished.value
                break
            if step != stage:
                stage = step
                bar.set_description(f"track: {stage}")
                bar.reset(total=n_frames)
            bar.update((n_frames * done if stage == "linking" else done) - bar.n)

    def write_stack(temporary: Path) -> None:
        frames = (frame for _, frame in iter_frames(result.labels))
        tifffile.imwrite(
            temporary,
            frames,
            shape=result.labels.shape,
            dtype=np.int32,
            compression="zlib",
            photometric="minisblack",
        )

    written = [write_with(out / f"{name}_tracked.tif", write_stack)]
    written.append(write_tracks_csv(out / f"{name}_tracks.csv", result.table, result.graph))
    written.append(
        write_text_atomic(
            out / f"{name}_track_features.csv", result.features.to_csv(index=False, float_format="%.4g")
        )
    )
    flags = review_flags(result.table)
    written.append(
        write_text_atomic(out / f"{name}_review.csv", flags.to_csv(index=False, float_format="%.4g"))
    )
    growth = growth_curves(result.labels, pixel_size_um=args.pixel_size)
    written.append(write_growth_csv(out / f"{name}_growth.csv", growth))
    written.append(write_growth_png(out / f"{name}_growth.png", growth, title=name))
    if args.ctc:
        from napari_livecell.core.formats.ctc import write_ctc

        write_ctc(out / f"{name}_ctc", result.labels, result.graph)
        written.append(out / f"{name}_ctc")
    if args.roi:
        from napari_livecell.core.formats.roi import write_roi_zip

        written.append(write_roi_zip(out / f"{name}_rois.zip", result.labels))
    n_tracks = int(result.table["track_id"].nunique()) if not result.table.empty else 0
    divisions = len({parents[0] for parents in result.graph.values()})
    print(
        f"{len(result.table)} cells in {n_frames} frames: {n_tracks} tracks, {divisions} divisions, "
        f"{len(flags)} to review; wrote {', '.join(p.name for p in written)} in {out}"
    )
    return 0
